//! Value formats of settings. The config crate hands file values over typed
//! and environment values as strings; both are accepted, but nothing is
//! coerced silently (no floats as integers, no numbers as booleans).
//! Durations are human-readable (`90d`, `1h 30m`) both ways.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serializer;
use serde::de::{self, Deserializer, Visitor};

use crate::policy::{PerType, Policy, Retentions};

/// A policy's retention as the pages and `forecast` show it: for
/// `retain_until`, the job's own moment and the least it is kept after it
/// finished; else [`format_retentions`].
pub fn format_policy_retention(policy: Policy, retentions: &Retentions) -> String {
    match policy {
        Policy::RetainUntil => {
            format!("the job's own, at least {} after it finished", format_duration(retentions.minimum))
        }
        _ => format_retentions(&retentions[policy]),
    }
}

/// A policy's retentions for both job types: one value when they agree
/// (`90d`, `off`), else each type's (`import 90d, export 30d`).
pub fn format_retentions(by_type: &PerType<Option<Duration>>) -> String {
    let text = |value: Option<Duration>| value.map_or_else(|| "off".to_owned(), format_duration);
    if by_type.import == by_type.export {
        text(by_type.import)
    } else {
        format!("import {}, export {}", text(by_type.import), text(by_type.export))
    }
}

/// Formats a duration in the largest unit that divides it exactly: `90d`,
/// `36h`, `90m`, `30s`, `500ms`, `0s`. The result parses back unchanged.
pub fn format_duration(value: Duration) -> String {
    const NANOS_PER_SECOND: u128 = 1_000_000_000;
    const UNITS: [(u128, &str); 7] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    let nanos = value.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let (size, unit) = UNITS.into_iter().find(|(size, _)| nanos.is_multiple_of(*size)).expect("1ns divides everything");
    if size < NANOS_PER_SECOND && nanos > u128::from(u64::MAX) {
        // humantime reads a sub-second unit into a u64 of nanoseconds, so
        // this would not read back: seconds plus the rest instead.
        return format!("{}s {}ns", value.as_secs(), value.subsec_nanos());
    }
    format!("{}{unit}", nanos / size)
}

/// Parses a human-readable duration (`90d`, `30s`, `1h 30m`).
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|err| format!("invalid duration {text:?}: {err}"))
}

/// A non-negative integer, as a number or a string of digits.
pub(super) fn de_uint<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct UintVisitor<T>(PhantomData<T>);

    impl<T: TryFrom<u64>> UintVisitor<T> {
        fn convert<E: de::Error>(value: u64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::custom(format!("invalid value {value}: too large")))
        }
    }

    impl<T: TryFrom<u64>> Visitor<'_> for UintVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
            Self::convert(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
            let value = u64::try_from(value)
                .map_err(|_| E::custom(format!("invalid value {value}: expected a non-negative integer")))?;
            Self::convert(value)
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
            Err(E::custom(format!("invalid value {value}: expected a non-negative integer")))
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<T, E> {
            Err(E::custom(format!("invalid value {value}: expected a non-negative integer")))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            let value = text
                .trim()
                .parse::<u64>()
                .map_err(|_| E::custom(format!("invalid value {text:?}: expected a non-negative integer")))?;
            Self::convert(value)
        }
    }

    deserializer.deserialize_any(UintVisitor(PhantomData))
}

/// `true` or `false`, as a boolean or a string (any case).
pub(super) fn de_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct BoolVisitor;

    impl Visitor<'_> for BoolVisitor {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true or false")
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<bool, E> {
            Err(E::custom(format!("invalid value {value}: expected true or false")))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<bool, E> {
            Err(E::custom(format!("invalid value {value}: expected true or false")))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<bool, E> {
            Err(E::custom(format!("invalid value {value}: expected true or false")))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
            match text.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(E::custom(format!("invalid value {text:?}: expected true or false"))),
            }
        }
    }

    deserializer.deserialize_any(BoolVisitor)
}

/// A duration as text (`90d`, `1h 30m`); a bare `0` means zero.
struct DurationVisitor {
    off_allowed: bool,
}

impl DurationVisitor {
    fn examples(&self) -> &'static str {
        if self.off_allowed { "e.g. 90d, 12h, 30s or 1h 30m, or off" } else { "e.g. 90d, 12h, 30s or 1h 30m" }
    }

    fn refuse<E: de::Error>(&self, what: impl fmt::Display) -> E {
        E::custom(format!("{what}; expected {}", self.examples()))
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration, {}", self.examples())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        match value {
            0 => Ok(Some(Duration::ZERO)),
            _ => Err(self.refuse(format_args!("invalid duration {value}: a unit is needed"))),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        match value {
            0 => Ok(Some(Duration::ZERO)),
            _ => Err(self.refuse(format_args!("invalid duration {value}: a unit is needed"))),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Err(self.refuse(format_args!("invalid duration {value}")))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Err(self.refuse(format_args!("invalid duration {value}")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if self.off_allowed && text.trim().eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        parse_duration(text).map(Some).map_err(|message| self.refuse(message))
    }
}

/// `Duration` fields: human-readable text.
pub(super) mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let value = deserializer.deserialize_any(DurationVisitor { off_allowed: false })?;
        Ok(value.expect("off is refused"))
    }
}

/// Policy fields: a duration, or `off` (`None`).
pub(super) mod policy_duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.serialize_str(&format_duration(*value)),
            None => serializer.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_any(DurationVisitor { off_allowed: true })
    }
}

/// `retention.by_type` fields: as [`policy_duration`], and `None` when not set.
pub(super) mod override_duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Option<Duration>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => policy_duration::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Duration>>, D::Error> {
        policy_duration::deserialize(deserializer).map(Some)
    }
}

/// `database.sslmode`: a mode's name, or empty for none (`None`).
pub(super) mod optional_ssl_mode {
    use super::*;
    use crate::config::SslMode;

    pub fn serialize<S: Serializer>(value: &Option<SslMode>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value.map_or("", SslMode::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SslMode>, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        SslMode::parse(&text).map(Some).map_err(de::Error::custom)
    }
}

/// `schedule.window`: a list of windows (`["22:00-06:00"]`), or one text
/// of windows separated by commas (`"22:00-06:00, 12:00-13:00"`, as an
/// environment variable gives it); empty: none. Written as a list.
pub(super) mod windows {
    use super::*;
    use crate::scheduler::{Window, parse_windows};

    pub fn serialize<S: Serializer>(value: &[Window], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(value.iter().map(Window::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Window>, D::Error> {
        struct WindowsVisitor;

        impl<'de> Visitor<'de> for WindowsVisitor {
            type Value = Vec<Window>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of windows such as [\"22:00-06:00\"], or one text of windows separated by commas")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<Window>, E> {
                parse_windows(text).map_err(E::custom)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Window>, A::Error> {
                let mut windows = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    windows.push(text.parse().map_err(de::Error::custom)?);
                }
                Ok(windows)
            }
        }

        deserializer.deserialize_any(WindowsVisitor)
    }
}

/// `database.replicas`: a list of URLs, or one text of URLs separated by
/// commas (as an environment variable gives it); empty: none. Written
/// redacted. A value is never echoed in an error: it may hold a password.
pub(super) mod replica_urls {
    use super::*;
    use crate::config::DatabaseUrl;

    pub fn serialize<S: Serializer>(value: &[DatabaseUrl], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(value.iter().map(DatabaseUrl::redacted))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<DatabaseUrl>, D::Error> {
        struct UrlsVisitor;

        impl<'de> Visitor<'de> for UrlsVisitor {
            type Value = Vec<DatabaseUrl>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of database URLs, or one text of URLs separated by commas")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<DatabaseUrl>, E> {
                Ok(text
                    .split(',')
                    .map(str::trim)
                    .filter(|url| !url.is_empty())
                    .map(|url| DatabaseUrl::new(url.into()))
                    .collect())
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<DatabaseUrl>, A::Error> {
                let mut urls = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    urls.push(DatabaseUrl::new(url.trim().to_owned()));
                }
                Ok(urls)
            }
        }

        deserializer.deserialize_any(UrlsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn durations_format_in_the_largest_exact_unit() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(90 * DAY), "90d"),
            (Duration::from_secs(36 * 3600), "36h"),
            (Duration::from_secs(90 * 60), "90m"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1500us"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_secs(DAY + 1), "86401s"),
            // 585 years and 1us: too many microseconds for humantime's nanosecond counter.
            (Duration::new(18_461_196_000, 1_000), "18461196000s 1000ns"),
        ];
        for (value, text) in cases {
            assert_eq!(format_duration(value), text);
            assert_eq!(parse_duration(text), Ok(value), "{text} parses back");
        }
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        // humantime's months and years come back in exact seconds.
        let month = parse_duration("1M").unwrap();
        assert_eq!(parse_duration(&format_duration(month)), Ok(month));
    }
}
