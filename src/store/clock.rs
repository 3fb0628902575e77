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
/// Years outside 0000–9999 are clamped. Hand-rolled because it runs for every document read.
pub(crate) fn format_rfc3339(micros: i64) -> String {
    const MIN: i64 = -62_167_219_200_000_000; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
    let micros = micros.clamp(MIN, MAX);
    let seconds = micros.div_euclid(1_000_000);
    let sub_micros = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = String::with_capacity(32);
    push_digits(&mut out, year, 4);
    out.push('-');
    push_digits(&mut out, month, 2);
    out.push('-');
    push_digits(&mut out, day, 2);
    out.push('T');
    push_digits(&mut out, second_of_day / 3600, 2);
    out.push(':');
    push_digits(&mut out, second_of_day / 60 % 60, 2);
    out.push(':');
    push_digits(&mut out, second_of_day % 60, 2);
    out.push('.');
    push_digits(&mut out, sub_micros, 6);
    out.push_str("+00:00");
    out
}

fn push_digits(out: &mut String, value: i64, width: u32) {
    let mut divisor = 10_i64.pow(width - 1);
    while divisor > 0 {
        let digit = (value / divisor % 10).unsigned_abs() as u8;
        out.push(char::from(b'0' + digit));
        divisor /= 10;
    }
}

/// (year, month, day) of a day count since 1970-01-01, in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
    fn formatting_agrees_with_the_time_crate() {
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
        );
        let mut micros: i64 = -62_167_219_200_000_000;
        let step = 7_919_654_321_987; // about 92 days, odd, so every field moves
        while micros < 253_402_300_799_999_999 {
            let expected =
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
                    .unwrap()
                    .format(&format)
                    .unwrap();
            assert_eq!(format_rfc3339(micros), expected, "{micros}");
            micros += step;
        }
        assert_eq!(format_rfc3339(i64::MIN), "0000-01-01T00:00:00.000000+00:00");
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59.999999+00:00");
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
