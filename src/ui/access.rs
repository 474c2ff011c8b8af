//! Who may see the pages, and the headers every page carries.
//!
//! With `ui.password_file` set (required when `metrics.listen` is not a
//! loopback address) a page asks for that password: HTTP basic
//! authentication with any user name, or `Authorization: Bearer PASSWORD`,
//! compared in constant time. `/metrics` and the probes never ask: they are
//! not part of these routes.

use std::sync::{Arc, LazyLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::pages;
use crate::config::{ConfigError, UiSettings};
use crate::credentials;

/// Who may see the pages.
pub enum Access {
    /// Anyone who reaches the address (a loopback address, without a password file).
    Open,
    /// Those who give this password.
    Password(SecretString),
}

impl Access {
    /// From the settings: with `ui.password_file` set, the password it holds.
    pub fn from_settings(ui: &UiSettings) -> Result<Access, ConfigError> {
        if ui.requires_password() {
            let password = credentials::read_password("ui.password_file", &ui.password_file)
                .map_err(|error| ConfigError(error.to_string()))?;
            Ok(Access::Password(password))
        } else {
            Ok(Access::Open)
        }
    }

    fn admits(&self, headers: &HeaderMap) -> bool {
        let Access::Password(password) = self else { return true };
        let Some(given) = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()) else {
            return false;
        };
        let Some((scheme, credentials)) = given.trim().split_once(' ') else { return false };
        let credentials = credentials.trim();
        let offered = if scheme.eq_ignore_ascii_case("basic") {
            let Some(decoded) = BASE64.decode(credentials).ok().and_then(|bytes| String::from_utf8(bytes).ok()) else {
                return false;
            };
            match decoded.split_once(':') {
                Some((_user, password)) => password.to_owned(),
                None => return false,
            }
        } else if scheme.eq_ignore_ascii_case("bearer") {
            credentials.to_owned()
        } else {
            return false;
        };
        offered.as_bytes().ct_eq(password.expose_secret().as_bytes()).into()
    }
}

/// Answers 401 with a challenge unless the request carries the password.
pub async fn require_password(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    if access.admits(request.headers()) {
        return next.run(request).await;
    }
    let mut response = pages::error_page(
        StatusCode::UNAUTHORIZED,
        "These pages need the password of ui.password_file (basic authentication, any user name, or a bearer token).",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="retentiond", charset="UTF-8""#));
    response
}

/// The page's policy: nothing may load but its own inline style sheet
/// (by its hash) and `data:` images, nothing may frame it, forms go to itself.
static CONTENT_SECURITY_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = BASE64.encode(Sha256::digest(pages::STYLE.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src data:; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).expect("the policy is ASCII")
});

/// Adds the security headers to every answer of the pages' routes.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY.clone());
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_password_opens_by_basic_or_bearer_and_nothing_else_does() {
        let access = Access::Password(SecretString::from("pa:ss wörd"));
        let basic = |credentials: &str| format!("Basic {}", BASE64.encode(credentials));
        assert!(access.admits(&with_authorization(&basic("anyone:pa:ss wörd"))));
        assert!(access.admits(&with_authorization(&basic(":pa:ss wörd"))));
        for refused in [basic("anyone:pa:ss"), basic("pa:ss wörd"), "Bearer pa".into(), "Digest x".into(), "".into()] {
            assert!(!access.admits(&with_authorization(&refused)), "{refused}");
        }
        assert!(!access.admits(&HeaderMap::new()));
        assert!(Access::Open.admits(&HeaderMap::new()));
        let bearer = Access::Password(SecretString::from("t0ken"));
        assert!(bearer.admits(&with_authorization("Bearer t0ken")));
        assert!(!bearer.admits(&with_authorization("Bearer t0ken2")));
    }
}
