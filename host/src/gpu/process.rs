//! User, command line and gantry job of a process, from `/proc`, for the processes NVML lists by
//! pid. Read once per sample: everything downstream (the scheduler's accounting, the sampler's
//! split of memory into gantry's and everybody else's) uses what the sample carries.

use crate::model::{JobId, JOB_ID_VAR};
use std::collections::HashMap;

/// Caches user names by uid: a sample of eight GPUs would otherwise look up the same few users
/// dozens of times a second.
#[derive(Default)]
pub struct ProcessNames {
    users: HashMap<u32, Option<String>>,
}

impl ProcessNames {
    /// The owner's name, the full command line and the gantry job it runs for, each `None` if
    /// the process is gone, hidden from us, or not a job's.
    pub fn describe(&mut self, pid: u32) -> ProcessFacts {
        let user = uid_of(pid).and_then(|uid| self.users.entry(uid).or_insert_with(|| user_name(uid)).clone());
        let job = crate::procfs::environment_value(pid, JOB_ID_VAR).and_then(|v| v.parse::<JobId>().ok());
        ProcessFacts { user, command: command_line(pid), job }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProcessFacts {
    pub user: Option<String>,
    pub command: Option<String>,
    pub job: Option<JobId>,
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
        let facts = names.describe(std::process::id());
        assert!(facts.user.is_some_and(|u| !u.is_empty()));
        assert!(facts.command.is_some_and(|c| c.contains("gantry")));
        assert_eq!(facts.job, None);
    }

    #[test]
    fn a_missing_process_has_no_description() {
        assert_eq!(ProcessNames::default().describe(u32::MAX - 7), ProcessFacts::default());
    }
}
