//! Login attempts per client address in a fixed window: guessing a secret or a password over
//! HTTP gets a handful of tries a minute. An attempt is counted *before* its credentials are
//! checked, so a burst of concurrent guesses can't all be checked while the failures of the
//! first are still being counted; a successful attempt gives its count back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    allowed: u32,
    window: Duration,
    attempts: parking_lot::Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimiter {
    pub fn new(allowed: u32, window: Duration) -> Self {
        LoginLimiter { allowed, window, attempts: parking_lot::Mutex::new(HashMap::new()) }
    }

    /// Counts an attempt from `ip`, or `Err(seconds to wait)` when it has used up its window.
    pub fn begin(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut attempts = self.attempts.lock();
        attempts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        let entry = attempts.entry(ip).or_insert((now, 0));
        if entry.1 >= self.allowed {
            return Err((self.window.saturating_sub(now.duration_since(entry.0))).as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }

    /// An attempt that did not fail on its credentials does not count.
    pub fn give_back(&self, ip: IpAddr) {
        if let Some(entry) = self.attempts.lock().get_mut(&ip) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_address_gets_its_attempts_and_then_waits_and_others_do_not() {
        let limiter = super::LoginLimiter::new(2, std::time::Duration::from_secs(60));
        let (a, b) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        // Two attempts in flight at once use both: a third is refused before any is checked.
        assert!(limiter.begin(a).is_ok());
        assert!(limiter.begin(a).is_ok());
        assert!(limiter.begin(a).is_err());
        assert!(limiter.begin(b).is_ok());
        // One of them succeeded: its count comes back.
        limiter.give_back(a);
        assert!(limiter.begin(a).is_ok());
        assert!(limiter.begin(a).is_err());
    }
}
