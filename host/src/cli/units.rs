//! What people type for amounts on the command line: sizes, durations, KEY=VALUE pairs.

/// `7d`, `12h`, `30m`, `90s`.
pub fn duration(text: &str) -> Result<std::time::Duration, String> {
    sweep::seconds(text).map(std::time::Duration::from_secs)
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
    use super::parse_memory;

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
