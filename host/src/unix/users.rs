//! Accounts from the system's password and group databases (NSS: `/etc/passwd`, LDAP, sssd …),
//! through the reentrant libc calls.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("no Unix user has uid {0}")]
    NoUid(u32),
    #[error("no Unix user is called '{0}'")]
    NoName(String),
    #[error("no Unix group is called '{0}'")]
    NoGroup(String),
    #[error("looking up Unix accounts: {0}")]
    Lookup(std::io::Error),
}

/// A Unix user as a job started for them needs it: who they are, their groups, where they live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    pub home: PathBuf,
    pub shell: String,
    /// Every group they are in, their primary group included, as `getgrouplist` says.
    pub groups: Vec<u32>,
}

/// Room for one passwd or group record and its strings, grown while libc says it is too small.
fn with_buffer<T>(mut call: impl FnMut(&mut [libc::c_char]) -> Result<Option<T>, i32>) -> Result<Option<T>, UsersError> {
    let mut size = 4096;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        match call(&mut buf) {
            Ok(found) => return Ok(found),
            Err(libc::ERANGE) if size < 1 << 20 => size *= 4,
            Err(code) => return Err(UsersError::Lookup(std::io::Error::from_raw_os_error(code))),
        }
    }
}

fn text(ptr: *const libc::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: libc filled this field with a NUL-terminated string inside our buffer.
    unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
}

fn passwd(lookup: impl Fn(*mut libc::passwd, *mut libc::c_char, libc::size_t, *mut *mut libc::passwd) -> libc::c_int) -> Result<Option<Account>, UsersError> {
    let found = with_buffer(|buf| {
        // SAFETY: passwd is plain data that getpw*_r fills; the strings point into `buf`.
        let mut record: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let code = lookup(&mut record, buf.as_mut_ptr(), buf.len(), &mut result);
        match code {
            0 if result.is_null() => Ok(None),
            0 => Ok(Some((record.pw_uid, record.pw_gid, text(record.pw_name), text(record.pw_dir), text(record.pw_shell)))),
            // "Not found" comes back as one of these from some NSS modules.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
            code => Err(code),
        }
    })?;
    let Some((uid, gid, name, home, shell)) = found else { return Ok(None) };
    let groups = group_list(&name, gid)?;
    Ok(Some(Account { uid, gid, name, home: PathBuf::from(home), shell, groups }))
}

fn group_list(name: &str, gid: u32) -> Result<Vec<u32>, UsersError> {
    let Ok(c_name) = CString::new(name) else { return Ok(vec![gid]) };
    let mut count: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; usize::try_from(count).unwrap_or(64)];
        let mut n = count;
        // SAFETY: `groups` has room for `n` entries; getgrouplist says how many it needs.
        let r = unsafe { libc::getgrouplist(c_name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if r >= 0 {
            groups.truncate(usize::try_from(n).unwrap_or(0));
            return Ok(groups);
        }
        if n <= count || n > 65_536 {
            return Err(UsersError::Lookup(std::io::Error::other(format!("the group list of {name} does not fit"))));
        }
        count = n;
    }
}

impl Account {
    pub fn by_uid(uid: u32) -> Result<Account, UsersError> {
        passwd(|rec, buf, len, result| {
            // SAFETY: the pointers are valid for the call, as `passwd` prepared them.
            unsafe { libc::getpwuid_r(uid, rec, buf, len, result) }
        })?
        .ok_or(UsersError::NoUid(uid))
    }

    pub fn by_name(name: &str) -> Result<Account, UsersError> {
        let c_name = CString::new(name).map_err(|_| UsersError::NoName(name.to_string()))?;
        passwd(|rec, buf, len, result| {
            // SAFETY: as in `by_uid`; `c_name` outlives the call.
            unsafe { libc::getpwnam_r(c_name.as_ptr(), rec, buf, len, result) }
        })?
        .ok_or_else(|| UsersError::NoName(name.to_string()))
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// The gid of the group called `name`.
pub fn group_gid(name: &str) -> Result<u32, UsersError> {
    let c_name = CString::new(name).map_err(|_| UsersError::NoGroup(name.to_string()))?;
    with_buffer(|buf| {
        // SAFETY: group is plain data that getgrnam_r fills; its strings point into `buf`.
        let mut record: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call.
        let code = unsafe { libc::getgrnam_r(c_name.as_ptr(), &mut record, buf.as_mut_ptr(), buf.len(), &mut result) };
        match code {
            0 if result.is_null() => Ok(None),
            0 => Ok(Some(record.gr_gid)),
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
            code => Err(code),
        }
    })?
    .ok_or_else(|| UsersError::NoGroup(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_uid_zero_by_name_and_by_uid() {
        let by_uid = Account::by_uid(0).expect("root exists");
        assert_eq!(by_uid.name, "root");
        assert_eq!(Account::by_name("root").expect("root by name"), by_uid);
        assert!(by_uid.in_group(0));
    }

    #[test]
    fn unknown_users_and_groups_are_errors_that_name_them() {
        let err = Account::by_name("no-such-user-gantry").expect_err("unknown");
        assert!(err.to_string().contains("no-such-user-gantry"), "{err}");
        assert!(Account::by_uid(4_000_000_000).is_err());
        assert!(group_gid("no-such-group-gantry").is_err());
        assert_eq!(group_gid("root").expect("root group"), 0);
    }
}
