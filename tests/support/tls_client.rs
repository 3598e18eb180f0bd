//! The client side of TLS for tests: a connector that trusts the given
//! certificates (self-signed ones written by the test), and the name they
//! are issued for.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio_rustls::TlsConnector;

/// A client that trusts the certificates in `trusted`.
pub fn connector(trusted: &[&Path]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for path in trusted {
        for cert in CertificateDer::pem_file_iter(path).expect("read the certificate") {
            roots.add(cert.expect("a PEM certificate")).expect("a root");
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// The name the test certificates are issued for.
pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a DNS name")
}
