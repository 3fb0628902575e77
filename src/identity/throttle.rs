//! In-memory throttles for logins and signups, on the database clock.
//!
//! Failed logins are counted per account (the case-folded email, whether or not it exists, so
//! throttling reveals nothing) and per client address; signups per client address. Counts live
//! in memory: a restart forgets them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// Time between two requests for the same purpose and email.
pub const REQUEST_COOLDOWN: Duration = Duration::from_secs(60);

/// Limits for the built-in throttles. On by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed logins allowed per account within `window`; then every login to it (even with
    /// the right password) is refused until the oldest failure leaves the window. Default 10.
    pub login_failures_per_account: u32,
    /// Failed logins allowed per client address within `window`. Default 50.
    pub login_failures_per_address: u32,
    /// Signups allowed per client address within `window` (server-trusted callers are exempt).
    /// Default 20.
    pub signups_per_address: u32,
    /// The sliding window of all three limits. Default 15 minutes.
    pub window: Duration,
}

impl ThrottleConfig {
    /// No throttling at all: for test fixtures that log in and sign up in bulk.
    pub fn off() -> Self {
        ThrottleConfig {
            login_failures_per_account: u32::MAX,
            login_failures_per_address: u32::MAX,
            signups_per_address: u32::MAX,
            window: Duration::from_secs(1),
        }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            login_failures_per_account: 10,
            login_failures_per_address: 50,
            signups_per_address: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    LoginAccount(String),
    LoginAddress(IpAddr),
    SignupAddress(IpAddr),
    /// A one-time-code request: (purpose, email). One per cooldown.
    CodeRequest(&'static str, String),
}

/// Most keys tracked before expired ones are swept.
const SWEEP_AT: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    config: ThrottleConfig,
    events: Mutex<HashMap<Key, Vec<i64>>>,
}

impl Throttle {
    pub(crate) fn new(config: ThrottleConfig) -> Self {
        Throttle {
            config,
            events: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, key: &Key) -> u32 {
        match key {
            Key::LoginAccount(_) => self.config.login_failures_per_account,
            Key::LoginAddress(_) => self.config.login_failures_per_address,
            Key::SignupAddress(_) => self.config.signups_per_address,
            Key::CodeRequest(..) => 1,
        }
    }

    fn window_micros(&self, key: &Key) -> i64 {
        let window = match key {
            Key::CodeRequest(..) => REQUEST_COOLDOWN,
            _ => self.config.window,
        };
        i64::try_from(window.as_micros()).unwrap_or(i64::MAX)
    }

    /// Refuses with `RateLimited` if `key` has used up its limit at `now` (microseconds).
    pub(crate) fn check(&self, key: &Key, now: i64) -> Result<()> {
        let window = self.window_micros(key);
        let mut events = self.events.lock();
        let Some(times) = events.get_mut(key) else {
            return Ok(());
        };
        times.retain(|t| now - t < window);
        let limit = self.limit(key) as usize;
        if times.len() >= limit {
            let oldest_relevant = times[times.len() - limit];
            let retry_after = (oldest_relevant + window - now).max(0);
            return Err(Error::rate_limited(
                u64::try_from(retry_after).unwrap_or(0).div_ceil(1_000_000),
            ));
        }
        Ok(())
    }

    /// Records one event (a failure or a signup) for `key`.
    pub(crate) fn record(&self, key: Key, now: i64) {
        let window = self.window_micros(&key);
        let mut events = self.events.lock();
        if events.len() >= SWEEP_AT {
            events.retain(|_, times| times.iter().any(|t| now - t < window));
        }
        events.entry(key).or_default().push(now);
    }

    /// Forgets the events of `key` (a successful login clears its account's failures).
    pub(crate) fn reset(&self, key: &Key) {
        self.events.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_then_releases_after_the_window() {
        let throttle = Throttle::new(ThrottleConfig {
            login_failures_per_account: 3,
            ..ThrottleConfig::default()
        });
        let key = Key::LoginAccount("a@b.c".into());
        for i in 0..3 {
            throttle.check(&key, i).unwrap();
            throttle.record(key.clone(), i);
        }
        let error = throttle.check(&key, 10).unwrap_err();
        assert_eq!(
            *error.kind(),
            crate::ErrorKind::RateLimited {
                retry_after_secs: 900
            }
        );
        throttle.check(&key, 15 * 60 * 1_000_000).unwrap();
        throttle.reset(&key);
        throttle.check(&key, 20).unwrap();
    }
}
