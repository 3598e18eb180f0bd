//! TLS: the certificate and key from PEM files, served through a resolver
//! whose certificate can be swapped while the server runs (on SIGHUP, or when
//! the files change), so that new connections get the new certificate and
//! established ones carry on with theirs.
//!
//! rustls with the ring provider (README: Quickstart with TLS).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why the certificate or key could not be used; one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS_CERT {0}: cannot be read: {1}")]
    CertUnreadable(PathBuf, io::Error),
    #[error("TLS_CERT {0}: no PEM certificate in it ({1})")]
    NoCertificate(PathBuf, String),
    #[error("TLS_KEY {0}: cannot be read: {1}")]
    KeyUnreadable(PathBuf, io::Error),
    #[error("TLS_KEY {0}: no PEM private key in it (PKCS#8, RSA or EC) ({1})")]
    NoKey(PathBuf, String),
    #[error("TLS_KEY {0}: the key cannot be used: {1}")]
    KeyUnusable(PathBuf, rustls::Error),
    #[error("TLS_KEY {key} does not match the certificate in TLS_CERT {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, io::Error),
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks a certificate chain and its key.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_pem =
        fs::read(&files.cert).map_err(|e| TlsError::CertUnreadable(files.cert.clone(), e))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| TlsError::NoCertificate(files.cert.clone(), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(
            files.cert.clone(),
            "the file holds no CERTIFICATE block".into(),
        ));
    }
    let key_pem =
        fs::read(&files.key).map_err(|e| TlsError::KeyUnreadable(files.key.clone(), e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::NoKey(files.key.clone(), e.to_string()))?;
    match CertifiedKey::from_der(chain, key, &provider()) {
        Ok(certified) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(error) => Err(TlsError::KeyUnusable(files.key.clone(), error)),
    }
}

/// What identifies a version of the files on disk: a change to either file
/// (rewritten, or replaced by a rename as certbot does) changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64)>, Option<(SystemTime, u64)>);

fn stamp(files: &TlsFiles) -> Stamp {
    let of = |path: &Path| {
        let meta = fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    Stamp(of(&files.cert), of(&files.key))
}

/// The certificate in service; handed to each new handshake.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    current: RwLock<(Arc<CertifiedKey>, Stamp)>,
}

impl Certificates {
    /// Loads the files; an error here stops start-up.
    pub fn open(files: TlsFiles) -> Result<Arc<Certificates>, TlsError> {
        let stamp = stamp(&files);
        let key = load(&files)?;
        Ok(Arc::new(Certificates {
            files,
            current: RwLock::new((key, stamp)),
        }))
    }

    fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock means a panic while swapping an Arc; the value is whole.
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0
            .clone()
    }

    /// Re-reads the files. A failure keeps the certificate in service, so a
    /// half-written renewal never takes the server's TLS down.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = stamp(&self.files);
        let key = load(&self.files)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = (key, stamp);
        Ok(())
    }

    /// Reloads when the files changed since the last load.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let loaded = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .1
            .clone();
        (stamp(&self.files) != loaded).then(|| self.reload())
    }

    /// The rustls acceptor for new connections: TLS 1.2 and 1.3, no client
    /// certificates, this certificate store.
    pub fn acceptor(self: &Arc<Certificates>) -> TlsAcceptor {
        // The ring provider supports the safe default versions, so this cannot fail.
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        TlsAcceptor::from(Arc::new(config))
    }

    /// Reloads on SIGHUP at once and when the files change, checked every
    /// `reload_interval`; logs each outcome.
    pub fn watch(self: &Arc<Certificates>) {
        let certificates = self.clone();
        // Registered before returning, so a SIGHUP right after start-up is
        // already ours rather than the default action (terminate).
        let mut hangups = hangup_signals();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(certificates.files.reload_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let outcome = tokio::select! {
                    _ = ticks.tick() => certificates.reload_if_changed(),
                    Some(()) = next_hangup(&mut hangups) => Some(certificates.reload()),
                };
                match outcome {
                    Some(Ok(())) => tracing::info!("TLS certificate reloaded"),
                    Some(Err(error)) => {
                        tracing::error!(%error, "TLS certificate not reloaded; keeping the current one")
                    }
                    None => {}
                }
            }
        });
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; certificates reload on change only");
            None
        }
    }
}

async fn next_hangup(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes a self-signed certificate for `hosts` and its key (PKCS#8), for a
/// quick start or tests. The key file is readable by its owner only.
pub fn write_self_signed(hosts: &[String], cert: &Path, key: &Path) -> Result<(), TlsError> {
    let generated = rcgen::generate_simple_self_signed(hosts.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    fs::write(cert, generated.cert.pem()).map_err(|e| TlsError::Write(cert.to_owned(), e))?;
    write_private(key, generated.signing_key.serialize_pem().as_bytes())
        .map_err(|e| TlsError::Write(key.to_owned(), e))
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn files(dir: &Path, name: &str) -> TlsFiles {
        TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            reload_interval: Duration::from_secs(60),
        }
    }

    fn self_signed(dir: &Path, name: &str) -> TlsFiles {
        let files = files(dir, name);
        write_self_signed(&["localhost".into()], &files.cert, &files.key).unwrap();
        files
    }

    #[test]
    fn a_generated_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path(), "a");
        assert_eq!(load(&files).unwrap().cert.len(), 1);
    }

    #[test]
    fn each_problem_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = self_signed(dir.path(), "a");
        let b = self_signed(dir.path(), "b");
        let missing = files(dir.path(), "missing");

        let error = load(&TlsFiles {
            cert: missing.cert.clone(),
            ..a.clone()
        })
        .unwrap_err();
        assert!(matches!(error, TlsError::CertUnreadable(..)), "{error}");
        assert!(error.to_string().starts_with("TLS_CERT "), "{error}");

        let error = load(&TlsFiles {
            key: missing.key.clone(),
            ..a.clone()
        })
        .unwrap_err();
        assert!(error.to_string().starts_with("TLS_KEY "), "{error}");

        let error = load(&TlsFiles {
            cert: a.key.clone(),
            ..a.clone()
        })
        .unwrap_err();
        assert!(matches!(error, TlsError::NoCertificate(..)), "{error}");

        let error = load(&TlsFiles {
            key: a.cert.clone(),
            ..a.clone()
        })
        .unwrap_err();
        assert!(matches!(error, TlsError::NoKey(..)), "{error}");

        let error = load(&TlsFiles {
            key: b.key.clone(),
            ..a.clone()
        })
        .unwrap_err();
        assert!(matches!(error, TlsError::Mismatch { .. }), "{error}");
        assert!(error.to_string().contains("does not match"), "{error}");
    }

    #[test]
    fn a_broken_renewal_keeps_the_certificate_in_service() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path(), "a");
        let certificates = Certificates::open(files.clone()).unwrap();
        let before = certificates.current();
        fs::write(&files.cert, b"not a certificate").unwrap();
        assert!(certificates.reload_if_changed().unwrap().is_err());
        assert!(Arc::ptr_eq(&before, &certificates.current()));
        write_self_signed(&["localhost".into()], &files.cert, &files.key).unwrap();
        certificates.reload().unwrap();
        assert_ne!(before.cert[0], certificates.current().cert[0]);
    }
}
