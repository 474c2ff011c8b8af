//! Who may see the pages, and the headers every page carries.
//!
//! With `ui.password_file` set (required when `metrics.listen` is not a
//! loopback address) a page asks for that password: HTTP basic
//! authentication with any user name, or `Authorization: Bearer PASSWORD`.
//! Their SHA-256 digests are compared in constant time, so the time taken
//! tells nothing of the password, not even its length; a wrong one costs
//! what [`Failures`] says. Without a password (loopback only) a page is
//! answered only to a request that names a loopback host with the server's
//! port, so that a web page whose name resolves to 127.0.0.1 (DNS
//! rebinding) cannot read them through the operator's browser. `/metrics`
//! and the probes are not part of these routes: they never ask.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::failures::Failures;
use super::pages;
use crate::config::{ConfigError, UiSettings};
use crate::credentials;

/// Who may see the pages.
pub enum Access {
    /// Anyone on this host (a loopback address, without a password file),
    /// through a loopback name with this port.
    Open { port: u16 },
    /// Those who give the password whose SHA-256 digest this is.
    Password { digest: [u8; 32], failures: Failures },
}

/// What a request's credentials are worth.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Admitted,
    /// None given (a browser's first request): answered with the challenge.
    NoCredentials,
    Wrong,
}

impl Access {
    /// From the settings and the address served: with `ui.password_file`
    /// set, the password it holds, which must be at least
    /// [`UiSettings::MIN_PASSWORD_CHARS`] characters long.
    pub fn from_settings(ui: &UiSettings, listen: SocketAddr) -> Result<Access, ConfigError> {
        if !ui.requires_password() {
            return Ok(Access::Open { port: listen.port() });
        }
        let password =
            credentials::read_long_password("ui.password_file", &ui.password_file, UiSettings::MIN_PASSWORD_CHARS)
                .map_err(|error| ConfigError(error.to_string()))?;
        crate::metrics::ui_auth_failures_listed();
        let digest = Sha256::digest(password.expose_secret().as_bytes()).into();
        Ok(Access::Password { digest, failures: Failures::new() })
    }

    fn verdict(&self, headers: &HeaderMap) -> Verdict {
        let Access::Password { digest, .. } = self else { return Verdict::Admitted };
        let Some(given) = headers.get(header::AUTHORIZATION) else { return Verdict::NoCredentials };
        match offered_password(given) {
            Some(offered) if bool::from(Sha256::digest(offered.as_bytes()).ct_eq(digest)) => Verdict::Admitted,
            _ => Verdict::Wrong,
        }
    }
}

/// The password in an `Authorization` header: basic (any user name) or bearer.
fn offered_password(given: &HeaderValue) -> Option<String> {
    let (scheme, credentials) = given.to_str().ok()?.trim().split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(BASE64.decode(credentials).ok()?).ok()?;
        decoded.split_once(':').map(|(_user, password)| password.to_owned())
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(credentials.to_owned())
    } else {
        None
    }
}

/// Whether `host` (a `Host` header) names this host's loopback interface
/// with `port`: `localhost`, `127.x.y.z` or `[::1]`, with the port (which
/// only port 80 may leave out).
fn is_loopback_host(host: &str, port: u16) -> bool {
    let Ok(authority) = host.parse::<axum::http::uri::Authority>() else { return false };
    let port_matches = authority.port_u16().map_or(port == 80, |given| given == port);
    let name = authority.host().trim_end_matches('.');
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    port_matches && loopback
}

/// Answers a page's request only when [`Access`] admits it: 421 to a
/// foreign `Host` when the pages are open, 429 to an address that gave too
/// many wrong passwords, 401 with a challenge without the password.
pub async fn require_password(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    match access.as_ref() {
        Access::Open { port } => {
            let host = request.headers().get(header::HOST).and_then(|host| host.to_str().ok());
            if !host.is_some_and(|host| is_loopback_host(host, *port)) {
                return (
                    StatusCode::MISDIRECTED_REQUEST,
                    format!("the status pages answer to localhost:{port} or 127.0.0.1:{port} only\n"),
                )
                    .into_response();
            }
            next.run(request).await
        }
        Access::Password { failures, .. } => {
            let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
            let now = Instant::now();
            if let Some(peer) = peer
                && let Err(wait) = failures.check(peer.ip(), now)
            {
                return too_many_failures(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
            }
            match access.verdict(request.headers()) {
                Verdict::Admitted => next.run(request).await,
                Verdict::NoCredentials => challenge(),
                Verdict::Wrong => {
                    if let Some(peer) = peer {
                        failures.record(peer, now);
                    }
                    challenge()
                }
            }
        }
    }
}

fn challenge() -> Response {
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

fn too_many_failures(retry_after_seconds: u64) -> Response {
    let mut response = pages::error_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many wrong passwords from this address: try again in a few seconds.",
    )
    .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
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

    fn password(text: &str) -> Access {
        Access::Password { digest: Sha256::digest(text.as_bytes()).into(), failures: Failures::new() }
    }

    #[test]
    fn the_password_opens_by_basic_or_bearer_and_nothing_else_does() {
        let access = password("pa:ss wörd");
        let basic = |credentials: &str| format!("Basic {}", BASE64.encode(credentials));
        assert_eq!(access.verdict(&with_authorization(&basic("anyone:pa:ss wörd"))), Verdict::Admitted);
        assert_eq!(access.verdict(&with_authorization(&basic(":pa:ss wörd"))), Verdict::Admitted);
        for refused in [basic("anyone:pa:ss"), basic("pa:ss wörd"), "Bearer pa".into(), "Digest x".into(), "".into()] {
            assert_eq!(access.verdict(&with_authorization(&refused)), Verdict::Wrong, "{refused}");
        }
        assert_eq!(access.verdict(&HeaderMap::new()), Verdict::NoCredentials);
        assert_eq!(Access::Open { port: 1 }.verdict(&HeaderMap::new()), Verdict::Admitted);
        let bearer = password("t0ken");
        assert_eq!(bearer.verdict(&with_authorization("Bearer t0ken")), Verdict::Admitted);
        assert_eq!(bearer.verdict(&with_authorization("Bearer t0ken2")), Verdict::Wrong);
    }

    #[test]
    fn open_pages_answer_loopback_names_with_the_port_only() {
        for host in
            ["localhost:9464", "LOCALHOST:9464", "localhost.:9464", "127.0.0.1:9464", "127.3.2.1:9464", "[::1]:9464"]
        {
            assert!(is_loopback_host(host, 9464), "{host}");
        }
        for host in [
            "attacker.example:9464",
            "localhost:9465",
            "localhost",
            "127.0.0.1",
            "10.0.0.1:9464",
            "[::2]:9464",
            "localhost.attacker.example:9464",
            "127.0.0.1.nip.io:9464",
            "",
            "localhost:9464/x",
        ] {
            assert!(!is_loopback_host(host, 9464), "{host}");
        }
        assert!(is_loopback_host("localhost", 80) && is_loopback_host("127.0.0.1:80", 80));
    }
}
