//! The few facts gantry reads from `/proc/PID/stat`.

/// Field `n` (counting from 3, the state, as `proc(5)` numbers them from 1) of `/proc/PID/stat`,
/// or `None` if the process is gone.
fn stat_field(pid: u32, n: usize) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// Start time in clock ticks since boot: with the pid, it names a process unambiguously.
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_field(pid, 22).and_then(|t| u64::try_from(t).ok())
}

/// The value of `name` in a process's initial environment, or `None` if it has none or the
/// process is gone or not ours to read.
pub fn environment_value(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|b| *b == 0).find_map(|entry| {
        let rest = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        String::from_utf8(rest.to_vec()).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process() {
        let pid = std::process::id();
        assert!(start_ticks(pid).is_some_and(|t| t > 0));
        assert_eq!(start_ticks(u32::MAX - 3), None);
        let path = std::env::var("PATH").ok();
        assert_eq!(environment_value(pid, "PATH"), path);
        assert_eq!(environment_value(pid, "GANTRY_SURELY_UNSET_VARIABLE"), None);
    }
}
