//! Certificates for TLS tests, made with the `openssl` command line: a
//! certificate authority of the test's own, and server and client
//! certificates it signs. Keys are P-256 (quick to make), valid for two days.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::require::Requirement;

/// The openssl binary; `/usr/bin/openssl` on Debian.
pub fn openssl_available() -> bool {
    Command::new("openssl").arg("version").output().is_ok_and(|out| out.status.success())
}

/// Says why TLS test `test` cannot run and returns `false`; fails instead
/// when the TLS tests are required (`RETENTIOND_TEST_REQUIRE_TLS`).
#[track_caller]
pub fn skip(test: &str, missing: &str) -> bool {
    Requirement::Tls.skip(&format!("TLS test {test}"), missing);
    false
}

/// Whether openssl is there to make certificates (see [`skip`]).
pub fn openssl_or_skip(test: &str) -> bool {
    openssl_available() || skip(test, "openssl is not installed")
}

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(out.status.success(), "openssl {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A certificate and its private key (PEM files).
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority that lives in `dir`.
pub struct TestCa {
    dir: PathBuf,
    name: String,
    pub cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    /// A new self-signed CA named `name` (its files are `name.crt`, `name.key`).
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        TestCa { dir: dir.to_owned(), name: name.to_owned(), cert, key }
    }

    /// A certificate for `common_name` with the subject alternative names
    /// `sans` (`DNS:localhost`, `IP:127.0.0.1`), good for servers and clients.
    pub fn issue(&self, stem: &str, common_name: &str, sans: &[&str]) -> Issued {
        let (cert, key) = (self.dir.join(format!("{stem}.crt")), self.dir.join(format!("{stem}.key")));
        let csr = self.dir.join(format!("{stem}.csr"));
        let extensions = self.dir.join(format!("{stem}.ext"));
        let mut lines = vec![
            "basicConstraints=critical,CA:FALSE".to_owned(),
            "keyUsage=critical,digitalSignature,keyEncipherment".to_owned(),
            "extendedKeyUsage=serverAuth,clientAuth".to_owned(),
        ];
        if !sans.is_empty() {
            lines.push(format!("subjectAltName={}", sans.join(",")));
        }
        std::fs::write(&extensions, lines.join("\n") + "\n").unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={common_name}"),
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                csr.to_str().unwrap(),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                csr.to_str().unwrap(),
                "-CA",
                self.cert.to_str().unwrap(),
                "-CAkey",
                self.key.to_str().unwrap(),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                extensions.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        Issued { cert, key }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}
