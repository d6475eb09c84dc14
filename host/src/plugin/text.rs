//! What a plugin says, made safe to pass on. Names and versions are checked when a component
//! loads (refused unless they are plain); every other text a plugin returns (error strings,
//! diagnostics, stderr) is escaped and cut here, before anything logs, stores or prints it, so
//! no plugin can write escape sequences to a terminal, forge log lines or bloat an answer.

/// Most bytes kept of one message a plugin returns (an `err` string, a diagnostic, its stderr).
pub const MESSAGE_BYTES: usize = 4096;

/// Most diagnostics kept of one parse.
pub const MAX_DIAGNOSTICS: usize = 100;

const NAME_BYTES: usize = 64;

/// `text` with control characters escaped (`\u{1b}`), cut at `max` bytes on a character
/// boundary with `…` marking the cut.
pub fn shown(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for c in text.chars() {
        if out.len() >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A plugin's name selects it in `gantry.toml` and shows in lists, logs and metric labels: 1 to
/// 64 of `a-z`, `0-9` and `-`, not starting with `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty() && name.len() <= NAME_BYTES && !name.starts_with('-') && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plain { Ok(()) } else { Err(format!("its name '{}' is not 1 to {NAME_BYTES} of a-z, 0-9 and '-'", shown(name, NAME_BYTES))) }
}

/// A version as semver writes them: 1 to 64 of `0-9`, `A-Z`, `a-z`, `.`, `+` and `-`.
pub fn check_version(version: &str) -> Result<(), String> {
    let plain = !version.is_empty() && version.len() <= NAME_BYTES && version.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
    if plain { Ok(()) } else { Err(format!("its version '{}' is not a plain version like 1.2.0", shown(version, NAME_BYTES))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_cuts() {
        assert_eq!(shown("plain text", 100), "plain text");
        assert_eq!(shown("\x1b[2J\nforged", 100), "\\u{1b}[2J\\u{a}forged");
        assert_eq!(shown("ééééé", 4), "éé…");
        assert_eq!(shown(&"x".repeat(10_000), MESSAGE_BYTES).len(), MESSAGE_BYTES + '…'.len_utf8());
    }

    #[test]
    fn names_and_versions_are_plain() {
        assert!(check_name("policy-best-fit").is_ok());
        for bad in ["", "Policy", "-x", "a b", "\x1b[2Jparser-compete", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_version("1.2.0-rc.1+build.5").is_ok());
        assert!(check_version("1.0\n").is_err());
    }
}
