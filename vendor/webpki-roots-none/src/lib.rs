//! No certificate authorities. sqlx trusts the roots of this crate plus the
//! CA file a connection names; with none here, the file alone is trusted,
//! as libpq does. retentiond puts the system's CA certificates into that
//! file itself when the operator asks for them (`sslrootcert=system`, or no
//! `sslrootcert` at all): see src/tls.rs.
#![no_std]

use rustls_pki_types::TrustAnchor;

/// Empty: every root comes from the connection's CA file.
pub const TLS_SERVER_ROOTS: &[TrustAnchor<'static>] = &[];
