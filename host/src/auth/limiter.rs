//! Failed logins per client address in a fixed window: guessing a secret or a password over
//! HTTP gets a handful of tries a minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    allowed: u32,
    window: Duration,
    failures: parking_lot::Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimiter {
    pub fn new(allowed: u32, window: Duration) -> Self {
        LoginLimiter { allowed, window, failures: parking_lot::Mutex::new(HashMap::new()) }
    }

    /// `Err(seconds to wait)` when this address used up its failures.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        failures.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        match failures.get(&ip) {
            Some((start, count)) if *count >= self.allowed => Err((self.window - now.duration_since(*start)).as_secs().max(1)),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        let entry = failures.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_address_is_stopped_after_its_failures_and_others_are_not() {
        let limiter = super::LoginLimiter::new(2, std::time::Duration::from_secs(60));
        let (a, b) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        limiter.failed(a);
        assert!(limiter.check(a).is_ok());
        limiter.failed(a);
        assert!(limiter.check(a).is_err());
        assert!(limiter.check(b).is_ok());
    }
}
