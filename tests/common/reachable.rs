//! Whether a shared database server answers, for the benchmark smoke tests.
//! Standalone like `require.rs`, which they include beside it: a server that
//! does not answer skips that part of a test with a notice, or fails the
//! test when CI requires the server.

use std::time::Duration;

use sqlx::Connection;

use crate::require::Requirement;

/// Whether the server at `url` answers within 5 s; `skipped` names the part
/// of the test that is skipped when it does not.
pub async fn reachable<C: Connection>(url: &str, requirement: Requirement, skipped: &str) -> bool {
    let answer = match tokio::time::timeout(Duration::from_secs(5), C::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 5 s".to_owned()),
    };
    match answer {
        Ok(()) => true,
        Err(reason) if requirement.is_required() => {
            panic!("{requirement:?} is required ({}=1) but unreachable: {reason}", requirement.var())
        }
        Err(reason) => {
            eprintln!("skipping {skipped}: {requirement:?} unreachable ({reason})");
            false
        }
    }
}
