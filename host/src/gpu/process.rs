//! User and command line of a process, from `/proc`, for the processes NVML lists by pid.

use std::collections::HashMap;

/// Caches user names by uid: a sample of eight GPUs would otherwise look up the same few users
/// dozens of times a second.
#[derive(Default)]
pub struct ProcessNames {
    users: HashMap<u32, Option<String>>,
}

impl ProcessNames {
    /// The owner's name and the full command line, each `None` if the process is gone or hidden.
    pub fn describe(&mut self, pid: u32) -> (Option<String>, Option<String>) {
        let user = uid_of(pid).and_then(|uid| self.users.entry(uid).or_insert_with(|| user_name(uid)).clone());
        (user, command_line(pid))
    }
}

fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> =
        raw.split(|b| *b == 0).filter(|p| !p.is_empty()).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    if parts.is_empty() { None } else { Some(parts.join(" ")) }
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, both owned here and sized as passed.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return Some(uid.to_string());
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
    Some(unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_process() {
        let mut names = ProcessNames::default();
        let (user, command) = names.describe(std::process::id());
        assert!(user.is_some_and(|u| !u.is_empty()));
        assert!(command.is_some_and(|c| c.contains("gantry")));
    }

    #[test]
    fn a_missing_process_has_no_description() {
        assert_eq!(ProcessNames::default().describe(u32::MAX - 7), (None, None));
    }
}
