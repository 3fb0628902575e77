//! The injectable clock behind every timestamp and expiry.
//!
//! Production code uses [`SystemClock`]. Tests hand a [`ManualClock`] to
//! [`DbBuilder::clock`](crate::DbBuilder::clock) and move time forward instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use larder::{Clock, ManualClock};
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// let before = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now().duration_since(before).unwrap(), Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros_since_epoch: Arc<AtomicI64>,
}

impl ManualClock {
    /// A manual clock reading the current system time; it stays there until moved.
    pub fn new() -> Self {
        Self::at(SystemTime::now())
    }

    /// A manual clock reading `time`.
    pub fn at(time: SystemTime) -> Self {
        ManualClock {
            micros_since_epoch: Arc::new(AtomicI64::new(to_micros(time))),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros_since_epoch.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock to `time` (which may be earlier than now).
    pub fn set(&self, time: SystemTime) {
        self.micros_since_epoch
            .store(to_micros(time), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_micros(self.micros_since_epoch.load(Ordering::SeqCst))
    }
}

/// Microseconds since the Unix epoch; negative before it, saturating far outside.
pub(crate) fn to_micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_micros())
            .map(|m| -m)
            .unwrap_or(i64::MIN),
    }
}

pub(crate) fn from_micros(micros: i64) -> SystemTime {
    if micros >= 0 {
        UNIX_EPOCH + Duration::from_micros(micros.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

/// RFC 3339 with a fixed width (microseconds, `+00:00` offset), so the text sorts like the time.
pub(crate) fn format_rfc3339(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let sub_micros = micros.rem_euclid(1_000_000);
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            sub_micros
        ),
        // Outside the representable range (year ±9999): clamp rather than fail a read.
        Err(_) if micros < 0 => "0000-01-01T00:00:00.000000+00:00".to_owned(),
        Err(_) => "9999-12-31T23:59:59.999999+00:00".to_owned(),
    }
}

/// Parses an RFC 3339 timestamp (any offset) into microseconds since the epoch.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_fixed_width_and_offset() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            format_rfc3339(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456+00:00"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999999+00:00");
    }

    #[test]
    fn parses_any_offset() {
        let micros = 1_700_000_000_123_456;
        assert_eq!(parse_rfc3339(&format_rfc3339(micros)), Some(micros));
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20.123456+02:00"),
            Some(micros)
        );
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123456Z"), Some(micros));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn micros_round_trip_before_and_after_epoch() {
        for micros in [-5_000_000, -1, 0, 1, 1_700_000_000_000_000] {
            assert_eq!(to_micros(from_micros(micros)), micros);
        }
    }
}
