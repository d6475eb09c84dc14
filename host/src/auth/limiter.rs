//! Login attempts per client address, and per account, in a fixed window: guessing a secret or
//! a password over HTTP gets a handful of tries a minute, and spreading the guesses at one
//! account over many addresses gets no more. An attempt is counted *before* its credentials are
//! checked, so a burst of concurrent guesses can't all be checked while the failures of the
//! first are still being counted; a successful attempt gives its count back. Nothing here
//! concerns the daemon's Unix socket, where callers are known by uid and never log in: an
//! admin can't be locked out of it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What attempts are counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attempter {
    Address(IpAddr),
    /// An account's login name, lowercased.
    Account(String),
}

pub struct LoginLimiter {
    allowed: u32,
    window: Duration,
    attempts: parking_lot::Mutex<HashMap<Attempter, (Instant, u32)>>,
}

impl LoginLimiter {
    pub fn new(allowed: u32, window: Duration) -> Self {
        LoginLimiter { allowed, window, attempts: parking_lot::Mutex::new(HashMap::new()) }
    }

    /// Counts an attempt against each of `who`, or `Err(seconds to wait)` (counting nothing)
    /// when one of them has used up its window.
    pub fn begin(&self, who: &[Attempter]) -> Result<(), u64> {
        let now = Instant::now();
        let mut attempts = self.attempts.lock();
        attempts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        for key in who {
            if let Some((start, count)) = attempts.get(key)
                && *count >= self.allowed
            {
                return Err((self.window.saturating_sub(now.duration_since(*start))).as_secs().max(1));
            }
        }
        for key in who {
            attempts.entry(key.clone()).or_insert((now, 0)).1 += 1;
        }
        Ok(())
    }

    /// An attempt that did not fail on its credentials does not count.
    pub fn give_back(&self, who: &[Attempter]) {
        let mut attempts = self.attempts.lock();
        for key in who {
            if let Some(entry) = attempts.get_mut(key) {
                entry.1 = entry.1.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Attempter::{Account, Address};

    #[test]
    fn an_address_gets_its_attempts_and_then_waits_and_others_do_not() {
        let limiter = super::LoginLimiter::new(2, std::time::Duration::from_secs(60));
        let (a, b) = ([Address("10.0.0.1".parse().expect("ip"))], [Address("10.0.0.2".parse().expect("ip"))]);
        // Two attempts in flight at once use both: a third is refused before any is checked.
        assert!(limiter.begin(&a).is_ok());
        assert!(limiter.begin(&a).is_ok());
        assert!(limiter.begin(&a).is_err());
        assert!(limiter.begin(&b).is_ok());
        // One of them succeeded: its count comes back.
        limiter.give_back(&a);
        assert!(limiter.begin(&a).is_ok());
        assert!(limiter.begin(&a).is_err());
    }

    #[test]
    fn guesses_at_one_account_from_many_addresses_are_counted_together() {
        let limiter = super::LoginLimiter::new(2, std::time::Duration::from_secs(60));
        let from = |i: u8| [Address(std::net::IpAddr::from([10, 0, 0, i])), Account("ada@lab.org".into())];
        assert!(limiter.begin(&from(1)).is_ok());
        assert!(limiter.begin(&from(2)).is_ok());
        assert!(limiter.begin(&from(3)).is_err(), "a third address gets no third guess at the account");
        // The refused attempt counted nothing: address 3 may still try another account.
        assert!(limiter.begin(&[Address(std::net::IpAddr::from([10, 0, 0, 3])), Account("bob@lab.org".into())]).is_ok());
        assert!(limiter.begin(&[Address(std::net::IpAddr::from([10, 0, 0, 3]))]).is_ok());
    }
}
