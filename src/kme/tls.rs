//! Mutual TLS for the KME: the rustls server config (TLS 1.2 and 1.3, a client certificate
//! from the configured CA required, so a client without one gets no HTTP answer at all),
//! the caller's ID (the Common Name of the certificate it presented), and the reqwest client
//! this KME uses to call its neighbours with its own certificate, verifying that each
//! neighbour presents a certificate for the KME ID configured for it. The private key file
//! must be accessible by this process's user only (mode 0600 or stricter, same owner),
//! and its bytes are read into a buffer zeroized on drop.

use crate::config::identity_files::{self, IdentityFileError};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A private key file that group or others may access, that another user owns, or
    /// that cannot be read.
    #[error(transparent)]
    KeyFile(#[from] IdentityFileError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
    /// This KME's certificate does not carry its configured ID.
    #[error("{}: the certificate's Common Name is '{found}', but kme.id is '{expected}'", path.display())]
    WrongId {
        /// The certificate file.
        path: PathBuf,
        /// The CN found.
        found: String,
        /// The configured ID.
        expected: String,
    },
}

/// The caller's ID (its certificate's Common Name), put in every request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

fn pem_err(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Every certificate in a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "no certificate found"));
    }
    Ok(certs)
}

/// A PEM private key file's bytes, in a buffer zeroized on drop, after checking that only
/// this process's user may access the file.
fn read_key_pem(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    Ok(identity_files::read_private_file(path)?)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read_key_pem(path)?).map_err(|e| pem_err(path, e))
}

/// The Common Name of a DER certificate.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// The rustls server config: this KME's certificate, client certificates from `ca_file`
/// required, TLS 1.2 and 1.3, ALPN h2 and http/1.1. Checks that the certificate's CN is `id`.
pub fn server_config(
    id: &str,
    ca_file: &Path,
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in read_certs(ca_file)? {
        roots.add(ca).map_err(|e| pem_err(ca_file, e))?;
    }
    let certs = read_certs(cert_file)?;
    let found = common_name(&certs[0]).unwrap_or_default();
    if found != id {
        let path = cert_file.to_path_buf();
        return Err(TlsError::WrongId {
            path,
            found,
            expected: id.to_string(),
        });
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_client_cert_verifier(verifier)
    .with_single_cert(certs, read_key(key_file)?)
    .map_err(|e| TlsError::Rustls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// How long a call to a neighbour KME (a relay hop, a link push) may take, connection
/// included, before it is given up.
pub const NEIGHBOUR_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An HTTPS client presenting `cert_file`/`key_file`, trusting only `ca_file`. Each
/// `(name, addr)` in `peers` resolves the host `name` to `addr`, so a URL
/// `https://{kme_id}:{port}/` connects there and verifies the certificate names `kme_id`.
pub fn client(
    ca_file: &Path,
    cert_file: &Path,
    key_file: &Path,
    peers: &[(String, SocketAddr)],
) -> Result<reqwest::Client, TlsError> {
    let ca_pem = std::fs::read(ca_file).map_err(|e| pem_err(ca_file, e))?;
    let ca = reqwest::Certificate::from_pem(&ca_pem).map_err(|e| pem_err(ca_file, e))?;
    let key_pem = read_key_pem(key_file)?;
    let mut id_pem = Zeroizing::new(std::fs::read(cert_file).map_err(|e| pem_err(cert_file, e))?);
    id_pem.push(b'\n');
    id_pem.extend_from_slice(&key_pem);
    let identity = reqwest::Identity::from_pem(&id_pem).map_err(|e| pem_err(cert_file, e))?;
    let mut b = reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only([ca])
        .identity(identity)
        .timeout(NEIGHBOUR_CALL_TIMEOUT);
    for (name, addr) in peers {
        b = b.resolve(name, *addr);
    }
    b.build().map_err(|e| {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(c) = src {
            s += &format!(": {c}");
            src = c.source();
        }
        TlsError::Rustls(s)
    })
}
