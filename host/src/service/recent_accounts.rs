//! The Unix accounts looked up in the last few seconds, by uid.
//!
//! Every request on the socket names its caller by the uid the kernel gives, and a submission
//! needs that caller's groups as well: without this, two user-database lookups (files read, or
//! a directory service asked) and two hops to a blocking thread for each `gantry submit`, for
//! an answer that changes only when an administrator edits a user or a group. Such a change is
//! seen here within [`FRESH`]; a user's own login session sees it no sooner than its next login.

use crate::unix::{Account, UsersError};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an account, once looked up, answers for its uid.
const FRESH: Duration = Duration::from_secs(5);
/// Most uids remembered; past it the memory starts again empty.
const MAX_ACCOUNTS: usize = 4096;

#[derive(Default)]
pub(super) struct RecentAccounts {
    entries: parking_lot::Mutex<HashMap<u32, (Instant, Account)>>,
}

impl RecentAccounts {
    /// The account of `uid`, from the user database unless it was read in the last [`FRESH`].
    /// A failed lookup is never remembered.
    pub(super) async fn by_uid(&self, uid: u32) -> Result<Account, UsersError> {
        if let Some((at, account)) = self.entries.lock().get(&uid)
            && at.elapsed() < FRESH
        {
            return Ok(account.clone());
        }
        let account = tokio::task::spawn_blocking(move || Account::by_uid(uid))
            .await
            .map_err(|e| UsersError::Lookup(std::io::Error::other(format!("a blocking task failed: {e}"))))??;
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ACCOUNTS {
            entries.clear();
        }
        entries.insert(uid, (Instant::now(), account.clone()));
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_account_is_read_once_within_its_freshness_and_again_after() {
        let recent = RecentAccounts::default();
        let uid = crate::unix::euid();
        let account = recent.by_uid(uid).await.expect("this process's own user exists");
        assert_eq!(account, Account::by_uid(uid).expect("lookup"));
        let mut stale = account.clone();
        stale.name = "renamed since".into();
        recent.entries.lock().insert(uid, (Instant::now(), stale.clone()));
        assert_eq!(recent.by_uid(uid).await.expect("remembered").name, "renamed since", "a fresh entry answers without a lookup");
        recent.entries.lock().insert(uid, (Instant::now() - FRESH, stale));
        assert_eq!(recent.by_uid(uid).await.expect("read again"), account, "an entry older than FRESH is read again");
    }

    #[tokio::test]
    async fn a_uid_without_an_account_is_an_error_each_time() {
        let recent = RecentAccounts::default();
        let nobody = u32::MAX - 7;
        assert!(matches!(recent.by_uid(nobody).await, Err(UsersError::NoUid(uid)) if uid == nobody));
        assert!(recent.entries.lock().is_empty(), "a failed lookup is not remembered");
    }
}
