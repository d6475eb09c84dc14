//! What people type for amounts on the command line (sizes, durations, KEY=VALUE pairs), and how
//! the CLI writes them back: spans of time, query values.

/// `7d`, `12h`, `30m`, `90s`.
pub fn duration(text: &str) -> Result<std::time::Duration, String> {
    sweep::seconds(text).map(std::time::Duration::from_secs)
}

/// A span for people: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn duration_text(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        5400..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A query value with the characters that would end or change it escaped.
pub fn url_encode(text: &str) -> String {
    text.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~@".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

pub fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("'{text}' is not a size like 20G or 512M"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => 1.0,
        "g" | "gb" | "gib" => 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0,
        other => return Err(format!("unknown unit '{other}' in '{text}' (use M, G or T)")),
    };
    Ok((value * scale).ceil() as u64)
}

pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (k, v) = text.split_once('=').ok_or_else(|| format!("'{text}' is not KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{duration_text, parse_memory};

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!([duration_text(45_000), duration_text(720_000), duration_text(11_100_000), duration_text(187_200_000)], ["45 s", "12 min", "3 h 5 min", "2 d 4 h"]);
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("20G"), Ok(20480));
        assert_eq!(parse_memory("1.5GiB"), Ok(1536));
        assert_eq!(parse_memory("512M"), Ok(512));
        assert_eq!(parse_memory("300"), Ok(300));
        assert!(parse_memory("20X").is_err());
        assert!(parse_memory("G").is_err());
    }
}
