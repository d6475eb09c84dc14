//! The clock every part of gantry stamps records with, and the timestamp format of the seeds.

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time the scheduler goes by: the system's, or a replay's, which moves only when the replay
/// moves it (no process runs and nothing sleeps, so a day of jobs replays in seconds).
#[derive(Clone, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    Virtual(std::sync::Arc<std::sync::atomic::AtomicU64>),
}

impl Clock {
    pub fn starting_at(ms: u64) -> Clock {
        Clock::Virtual(std::sync::Arc::new(std::sync::atomic::AtomicU64::new(ms)))
    }

    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => now_ms(),
            Clock::Virtual(at) => at.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Moves a virtual clock to `ms` (never back); the system's is not ours to set.
    pub fn advance_to(&self, ms: u64) {
        if let Clock::Virtual(at) = self {
            at.fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Seed 001's timestamps: ISO 8601 in UTC without a zone (`2025-12-03T02:14:39`).
pub fn iso_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The start of the calendar month (UTC) that `ms` falls in, which budgets count from.
pub fn month_start_ms(ms: u64) -> u64 {
    let days = ms / 86_400_000;
    let (_, _, day) = civil(days);
    (days - (day as u64 - 1)) * 86_400_000
}

/// Year, month and day of `days` since 1970-01-01 (H. Hinnant's algorithm).
fn civil(days: u64) -> (i64, i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_timestamps() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00");
        assert_eq!(iso_time(1_764_637_200_000), "2025-12-02T01:00:00");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00");
        assert!(now_ms() > 1_700_000_000_000);
        assert_eq!(iso_time(month_start_ms(1_764_637_200_000)), "2025-12-01T00:00:00");
        assert_eq!(iso_time(month_start_ms(951_782_400_000)), "2000-02-01T00:00:00");
        assert_eq!(month_start_ms(951_782_400_000 - 1), 949_363_200_000, "a leap month's last millisecond");
    }
}
