//! TLS where gantry crosses a network: the daemon's TCP listener (`server.tls_cert` and
//! `server.tls_key`, PEM), and its clients — an agent's reports, a master's pulls, the CLI — which
//! trust the public roots plus one CA of the lab's own (`federation.ca_cert`, `--ca-cert`), as a
//! group's servers mostly carry certificates of a CA it made. rustls with ring, the build
//! wasmtime's HTTP client already brings.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{what}: {message}")]
    Config { what: &'static str, message: String },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::File { path: path.to_path_buf(), message };
    let certificates = CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))?.collect::<Result<Vec<_>, _>>().map_err(|e| err(e.to_string()))?;
    if certificates.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

/// What the listener presents: `cert` (the chain, leaf first) and its `key`. Blocks (reads files).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File { path: key.to_path_buf(), message: format!("not a PEM private key: {e}") })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config { what: "TLS versions", message: e.to_string() })?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config { what: "server.tls_cert and server.tls_key", message: e.to_string() })?;
    Ok(Arc::new(config))
}

/// What a client trusts: the public roots, and `ca`'s certificates if given. Blocks (reads a
/// file).
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(ca) = ca {
        add_ca(&mut roots, ca)?;
    }
    with_roots(roots)
}

/// What a client of one cluster trusts: `ca`'s certificates and nothing else, as kubectl does
/// with a kubeconfig's `certificate-authority`. Blocks (reads a file).
pub fn client_config_only(ca: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    add_ca(&mut roots, ca)?;
    with_roots(roots)
}

fn add_ca(roots: &mut rustls::RootCertStore, ca: &Path) -> Result<(), TlsError> {
    for certificate in certificates(ca)? {
        roots.add(certificate).map_err(|e| TlsError::File { path: ca.to_path_buf(), message: format!("not a CA certificate: {e}") })?;
    }
    Ok(())
}

fn with_roots(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config { what: "TLS versions", message: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A blocking HTTP client (reports, pulls) that reaches `https://` servers trusting `ca` too,
/// and gives up on a server after `timeout`.
pub fn agent(ca: Option<&Path>, timeout: std::time::Duration) -> Result<ureq::Agent, TlsError> {
    Ok(ureq::AgentBuilder::new().timeout(timeout).tls_config(client_config(ca)?).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_pem_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").expect("write");
        let err = client_config(Some(&junk)).expect_err("refused").to_string();
        assert!(err.starts_with(&junk.display().to_string()) && err.contains("no PEM certificate"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = server_config(&missing, &junk).expect_err("refused").to_string();
        assert!(err.starts_with(&missing.display().to_string()), "{err}");
        assert!(client_config(None).is_ok(), "the public roots alone");
        let err = client_config_only(&junk).expect_err("refused").to_string();
        assert!(err.starts_with(&junk.display().to_string()), "{err}");
    }
}
