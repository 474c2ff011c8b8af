//! The query strings of the pages: only the keys a page knows, each at most
//! once, every value checked. Anything else is answered 400 with a message
//! saying what is wrong, before the store is asked anything.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// Rows per page when the query string does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most rows a page shows.
pub const MAX_PAGE_SIZE: u32 = 500;
/// The longest query string a page reads.
const MAX_QUERY_LENGTH: usize = 2048;

/// A query string a page cannot use, and why.
#[derive(Debug)]
pub struct BadRequest(pub String);

/// A page's validated query string.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `raw`; `known` lists the keys the page takes.
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Params, BadRequest> {
        let raw = raw.unwrap_or_default();
        if raw.len() > MAX_QUERY_LENGTH {
            return Err(BadRequest(format!("the query string is longer than {MAX_QUERY_LENGTH} bytes")));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            if !known.contains(&key.as_ref()) {
                let takes = if known.is_empty() {
                    "this page takes no parameters".to_owned()
                } else {
                    format!("this page takes {}", known.join(", "))
                };
                return Err(BadRequest(format!("unknown parameter {key:?}: {takes}")));
            }
            if pairs.iter().any(|(seen, _)| *seen == key) {
                return Err(BadRequest(format!("parameter {key} is given more than once")));
            }
            if value.chars().any(char::is_control) {
                return Err(BadRequest(format!("parameter {key} contains a control character")));
            }
            pairs.push((key.into_owned(), value.into_owned()));
        }
        Ok(Params(pairs))
    }

    /// The value of `key`, trimmed; an empty one (a form's empty field) counts as none.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(name, _)| name == key).map(|(_, value)| value.trim()).filter(|value| !value.is_empty())
    }

    /// The number `key` gives, which must lie in `range`.
    pub fn number<T>(&self, key: &str, range: RangeInclusive<T>) -> Result<Option<T>, BadRequest>
    where
        T: FromStr + PartialOrd + Display,
    {
        let Some(text) = self.text(key) else { return Ok(None) };
        let out_of_range =
            || BadRequest(format!("{key} must be a whole number from {} to {}", range.start(), range.end()));
        let number: T = text.parse().map_err(|_| out_of_range())?;
        if range.contains(&number) { Ok(Some(number)) } else { Err(out_of_range()) }
    }

    /// Rows per page: `limit`, from 1 to [`MAX_PAGE_SIZE`].
    pub fn page_size(&self) -> Result<u32, BadRequest> {
        Ok(self.number("limit", 1..=MAX_PAGE_SIZE)?.unwrap_or(DEFAULT_PAGE_SIZE))
    }

    /// An id that a page of a list starts below or after: 1 or more.
    pub fn id(&self, key: &str) -> Result<Option<i64>, BadRequest> {
        self.number(key, 1..=i64::MAX)
    }

    /// A moment, RFC 3339.
    pub fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, BadRequest> {
        let Some(text) = self.text(key) else { return Ok(None) };
        DateTime::parse_from_rfc3339(text)
            .map(|time| Some(time.to_utc()))
            .map_err(|_| BadRequest(format!("{key} must be an RFC 3339 time such as 2026-11-21T12:00:00Z")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<Params, BadRequest>) -> String {
        match result {
            Ok(_) => panic!("accepted"),
            Err(BadRequest(message)) => message,
        }
    }

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_refused_with_a_reason() {
        let known = ["limit", "before", "job"];
        assert_eq!(
            message(Params::parse(Some("x=1"), &known)),
            r#"unknown parameter "x": this page takes limit, before, job"#
        );
        assert_eq!(message(Params::parse(Some("x=1"), &[])), r#"unknown parameter "x": this page takes no parameters"#);
        assert_eq!(message(Params::parse(Some("limit=1&limit=2"), &known)), "parameter limit is given more than once");
        assert_eq!(message(Params::parse(Some("job=a%0Ab"), &known)), "parameter job contains a control character");
        let long = format!("job={}", "a".repeat(MAX_QUERY_LENGTH));
        assert!(message(Params::parse(Some(&long), &known)).contains("longer than"));

        let params = Params::parse(Some("limit=501&before=-3&job=+a%26b+"), &known).unwrap();
        assert_eq!(params.page_size().unwrap_err().0, "limit must be a whole number from 1 to 500");
        assert_eq!(params.id("before").unwrap_err().0, format!("before must be a whole number from 1 to {}", i64::MAX));
        assert_eq!(params.text("job"), Some("a&b"));

        let params = Params::parse(Some("limit=&before=7"), &known).unwrap();
        assert_eq!(params.page_size().unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(params.id("before").unwrap(), Some(7));
        assert_eq!(params.text("job"), None);
    }
}
