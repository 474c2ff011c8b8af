//! Secrets in settings and how they are kept out of sight: `database.url`
//! may carry a password (in its userinfo or a `password=` parameter), and
//! anything shown — `check-config`, `Debug`, error messages — shows it
//! redacted. URLs are taken apart by the `url` crate and decoded by
//! `percent-encoding`; a URL that does not parse is never shown past its scheme.

use std::fmt;

use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// What replaces a password in anything shown.
pub(super) const REDACTED: &str = "REDACTED";

/// `database.url`; it may hold a password, so it is kept secret and shown only redacted.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: String) -> Self {
        DatabaseUrl(SecretString::from(url))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with the password (in the userinfo, or a `password=` query
    /// parameter) replaced by `REDACTED`; a URL without one is shown as is.
    pub fn redacted(&self) -> String {
        redact_url(self.expose())
    }

    /// The (percent-decoded) password, from the userinfo or else from a
    /// `password=` query parameter; `None` when the URL holds none.
    pub fn password(&self) -> Option<String> {
        let parsed = Url::parse(self.expose()).ok()?;
        parsed.password().map(decode).or_else(|| {
            parsed.query_pairs().find(|(name, _)| name.eq_ignore_ascii_case("password")).map(|(_, v)| v.into_owned())
        })
    }

    /// The (decoded) value of the last query parameter named one of
    /// `names`; `None` when there is none or the URL does not parse.
    pub fn parameter(&self, names: &[&str]) -> Option<String> {
        self.named_parameter(names).map(|(_, value)| value)
    }

    /// As [`parameter`](Self::parameter), with the name it was given by.
    pub fn named_parameter(&self, names: &[&str]) -> Option<(String, String)> {
        let parsed = Url::parse(self.expose()).ok()?;
        parsed
            .query_pairs()
            .filter(|(name, _)| names.contains(&name.as_ref()))
            .last()
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
    }

    /// The names of the URL's query parameters, decoded.
    pub fn parameter_names(&self) -> Vec<String> {
        Url::parse(self.expose())
            .map(|parsed| parsed.query_pairs().map(|(name, _)| name.into_owned()).collect())
            .unwrap_or_default()
    }

    /// `text` (typically a foreign error message) with the URL and its
    /// password replaced by their redacted forms.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        if !self.expose().is_empty() {
            out = out.replace(self.expose(), &self.redacted());
        }
        for secret in url_secrets(self.expose()) {
            out = replace_whole(&out, &secret, REDACTED);
        }
        out
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted()).finish()
    }
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for DatabaseUrl {}

/// Serializes the redacted form only.
impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Never echo the value in an error: it may hold a password.
        String::deserialize(deserializer).map(DatabaseUrl::new)
    }
}

/// For a URL setting shown redacted (`metrics.pushgateway`).
pub(super) fn ser_redacted_url<S: Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(value))
}

/// `raw` with the userinfo password and every `…password=` query parameter
/// replaced by `REDACTED`; unchanged when it holds no password. A URL that
/// does not parse (say, a password with an unencoded `/`) is shown as its
/// scheme only when it has an `@`: where its password ends cannot be known.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut parsed) = Url::parse(raw) else {
        if !raw.contains('@') {
            // No userinfo, so no password (an empty setting, a typo).
            return raw.to_owned();
        }
        return match raw.split_once(':') {
            Some((scheme, _)) if is_scheme(scheme) => format!("{scheme}:{REDACTED}"),
            _ => REDACTED.to_owned(),
        };
    };
    let secret_params = parsed.query().is_some_and(|query| {
        query.split('&').any(|pair| pair.split_once('=').is_some_and(|(name, _)| is_password_param(name)))
    });
    if parsed.password().is_none() && !secret_params {
        // Shown as written: the url crate would normalise it (a trailing `/`, say).
        return raw.to_owned();
    }
    if parsed.password().is_some() && parsed.set_password(Some(REDACTED)).is_err() {
        return REDACTED.to_owned();
    }
    if let Some(query) = parsed.query().filter(|_| secret_params) {
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_password_param(name) => format!("{name}={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        parsed.set_query(Some(&query));
    }
    parsed.to_string()
}

fn is_scheme(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn is_password_param(name: &str) -> bool {
    decode(name).to_ascii_lowercase().ends_with("password")
}

/// Every form in which a secret of `raw` could show up in a message: the
/// passwords as written and decoded, and `…password=` parameter values.
fn url_secrets(raw: &str) -> Vec<String> {
    let Ok(parsed) = Url::parse(raw) else {
        return Vec::new();
    };
    let mut secrets = Vec::new();
    if let Some(password) = parsed.password() {
        secrets.push(password.to_owned());
        secrets.push(decode(password));
    }
    for pair in parsed.query().unwrap_or_default().split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && is_password_param(name)
        {
            secrets.push(value.to_owned());
            secrets.push(decode(value));
        }
    }
    for (name, value) in parsed.query_pairs() {
        if is_password_param(&name) {
            secrets.push(value.into_owned());
        }
    }
    secrets.retain(|secret| !secret.is_empty() && secret != REDACTED);
    // Longest first, so that a secret containing another is replaced whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.dedup();
    secrets
}

/// `text` with `secret` replaced. A short secret (under 8 characters) is
/// replaced only where it is not part of a longer word: a password such as
/// `on` must not turn "Connection" into "CREDACTEDnectiREDACTED", which would
/// also show where it occurs. A longer one is replaced wherever it appears.
pub(super) fn replace_whole(text: &str, secret: &str, replacement: &str) -> String {
    if secret.chars().count() >= 8 {
        return text.replace(secret, replacement);
    }
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(secret) {
        let before = rest[..at].chars().next_back().or_else(|| out.chars().next_back());
        let after = rest[at + secret.len()..].chars().next();
        let glued_before = is_word(before) && secret.starts_with(char::is_alphanumeric);
        let glued_after = is_word(after) && secret.ends_with(char::is_alphanumeric);
        let whole = !glued_before && !glued_after;
        out.push_str(&rest[..at]);
        out.push_str(if whole { replacement } else { secret });
        rest = &rest[at + secret.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_a_short_password_leaves_words_alone() {
        let url = DatabaseUrl::new("postgres://u:on@127.0.0.1:1/db".into());
        assert_eq!(url.scrub("Connection refused for u:on@host"), "Connection refused for u:REDACTED@host");
        let url = DatabaseUrl::new("postgres://u:s3cr3tpassw0rd@db/jobs".into());
        assert_eq!(url.scrub("xs3cr3tpassw0rdx"), "xREDACTEDx");
    }

    #[test]
    fn redaction() {
        let url = DatabaseUrl::new("postgres://retention:s3cr%40t@db.example:5432/jobs?sslmode=require".into());
        assert_eq!(url.redacted(), "postgres://retention:REDACTED@db.example:5432/jobs?sslmode=require");
        assert_eq!(url.password().as_deref(), Some("s3cr@t"));
        assert_eq!(
            format!("{url:?}"),
            "DatabaseUrl(\"postgres://retention:REDACTED@db.example:5432/jobs?sslmode=require\")"
        );

        let url = DatabaseUrl::new("postgres://db/jobs?user=retention&password=s3cret&sslmode=require".into());
        assert_eq!(url.redacted(), "postgres://db/jobs?user=retention&password=REDACTED&sslmode=require");
        assert_eq!(url.password().as_deref(), Some("s3cret"));

        let url = DatabaseUrl::new("postgresql://u:pw1@db/jobs?sslpassword=pw2".into());
        assert_eq!(url.redacted(), "postgresql://u:REDACTED@db/jobs?sslpassword=REDACTED");

        // Other parameters are shown as written, not re-encoded.
        let url = DatabaseUrl::new("postgres://u:pw@db/jobs?sslrootcert=/etc/ssl/ca.pem&sslmode=verify-full".into());
        assert_eq!(url.redacted(), "postgres://u:REDACTED@db/jobs?sslrootcert=/etc/ssl/ca.pem&sslmode=verify-full");

        for plain in
            ["sqlite://retentiond.db", "sqlite::memory:", "postgres://retention@db:5432/jobs", "postgres://db/jobs"]
        {
            let url = DatabaseUrl::new(plain.into());
            assert_eq!(url.redacted(), plain);
            assert_eq!(url.password(), None);
        }

        // Not a URL (a `/` in the password): nothing past the scheme is shown.
        let url = DatabaseUrl::new("postgres://u:pa/ss@db/jobs".into());
        assert_eq!(url.redacted(), "postgres:REDACTED");
        assert_eq!(redact_url("not a url, u@db"), "REDACTED");
        assert_eq!(redact_url(""), "");
        assert_eq!(redact_url("gw:9091"), "gw:9091");

        let url = DatabaseUrl::new("postgres://u:s3cr%40t@db/jobs".into());
        let scrubbed = url.scrub("connecting to postgres://u:s3cr%40t@db/jobs: password s3cr@t rejected");
        assert_eq!(scrubbed, "connecting to postgres://u:REDACTED@db/jobs: password REDACTED rejected");
        let url = DatabaseUrl::new("postgres://db/jobs?password=a%26b%20c".into());
        assert_eq!(url.scrub("got a%26b%20c and a&b c"), "got REDACTED and REDACTED");
    }
}
