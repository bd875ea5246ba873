//! A small PKI for demos and tests (`qshield pki init`): one CA, a certificate per KME
//! (server and client authentication: KMEs serve SAEs and call each other over mutual TLS)
//! and per SAE (client authentication). The entity's ID is the certificate's Common Name,
//! which the KME reads to identify callers; SANs carry the names and addresses a KME is
//! reached at. Keys are ECDSA P-256; private key files are created with mode 0600.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the PKI could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// An entity spec was malformed.
    #[error(
        "'{spec}': {reason} (expected NAME or NAME=SAN,SAN,… where a SAN is a DNS name or an IP address)"
    )]
    BadSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// The same name was given twice.
    #[error("'{0}' is named twice; every CA, KME and SAE name must be unique")]
    Duplicate(String),
    /// A file already exists.
    #[error("{}: already exists; refusing to overwrite (use another --out directory)", .0.display())]
    Exists(PathBuf),
    /// Writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed for '{name}': {source}")]
    Generate {
        /// The entity.
        name: String,
        /// Cause.
        source: rcgen::Error,
    },
}

/// One entity to certify: its ID (the Common Name) and extra subject alternative names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// ID: KME ID or SAE ID.
    pub name: String,
    /// Extra SANs (DNS names or IP addresses); the name itself is always a DNS SAN.
    pub sans: Vec<String>,
}

impl std::str::FromStr for Entity {
    type Err = PkiError;

    /// Parses `NAME` or `NAME=SAN,SAN`.
    fn from_str(spec: &str) -> Result<Self, PkiError> {
        let bad = |reason: &str| PkiError::BadSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (name, sans) = spec.split_once('=').unwrap_or((spec, ""));
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c))
        };
        if !valid(name) {
            return Err(bad(
                "the name must be non-empty ASCII letters, digits, '-', '.', '_'",
            ));
        }
        let sans: Vec<String> = sans
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(s) = sans.iter().find(|s| !valid(s)) {
            return Err(bad(&format!("invalid SAN '{s}'")));
        }
        Ok(Self {
            name: name.to_string(),
            sans,
        })
    }
}

/// What `qshield pki init` makes.
#[derive(Debug, Clone)]
pub struct PkiPlan {
    /// Output directory.
    pub out: PathBuf,
    /// CA name.
    pub ca: String,
    /// KMEs (server + client certificates).
    pub kmes: Vec<Entity>,
    /// SAEs (client certificates).
    pub saes: Vec<Entity>,
}

/// Files written for one entity.
fn cert_path(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}.pem"))
}

fn key_path(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}.key"))
}

/// Writes `ca.pem`/`ca.key` and `<name>.pem`/`<name>.key` for every KME and SAE into
/// `plan.out`. Nothing is written if any target file exists or a name repeats.
pub fn init(plan: &PkiPlan) -> Result<Vec<PathBuf>, PkiError> {
    check_plan(plan)?;
    std::fs::create_dir_all(&plan.out).map_err(|source| PkiError::Io {
        path: plan.out.clone(),
        source,
    })?;
    let gen_err = |name: &str| {
        let name = name.to_string();
        move |source| PkiError::Generate { name, source }
    };
    let (ca_params, ca_key) = ca(&plan.ca).map_err(gen_err(&plan.ca))?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen_err(&plan.ca))?;
    let mut written = write_pair(&plan.out, "ca", &ca_cert.pem(), &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca_params, ca_key);
    for (entity, is_kme) in plan
        .kmes
        .iter()
        .map(|e| (e, true))
        .chain(plan.saes.iter().map(|e| (e, false)))
    {
        let (cert, key) = leaf(entity, is_kme, &issuer).map_err(gen_err(&entity.name))?;
        written.extend(write_pair(&plan.out, &entity.name, &cert, &key)?);
    }
    Ok(written)
}

fn check_plan(plan: &PkiPlan) -> Result<(), PkiError> {
    let mut names = vec!["ca".to_string()];
    for e in plan.kmes.iter().chain(plan.saes.iter()) {
        if names.contains(&e.name) {
            return Err(PkiError::Duplicate(e.name.clone()));
        }
        names.push(e.name.clone());
    }
    for name in &names {
        for path in [cert_path(&plan.out, name), key_path(&plan.out, name)] {
            if path.exists() {
                return Err(PkiError::Exists(path));
            }
        }
    }
    Ok(())
}

fn ca(name: &str) -> Result<(CertificateParams, KeyPair), rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok((params, KeyPair::generate()?))
}

fn leaf(
    entity: &Entity,
    is_kme: bool,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(String, String), rcgen::Error> {
    let mut sans = vec![entity.name.clone()];
    sans.extend(entity.sans.iter().cloned());
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, entity.name.as_str());
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = if is_kme {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_pair(
    out: &Path,
    name: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Vec<PathBuf>, PkiError> {
    let (cert, key) = (cert_path(out, name), key_path(out, name));
    write_new(&cert, cert_pem, 0o644)?;
    write_new(&key, key_pem, 0o600)?;
    Ok(vec![cert, key])
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_ca_kmes_and_saes_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let plan = PkiPlan {
            out: dir.path().join("pki"),
            ca: "qshield-test-ca".into(),
            kmes: vec!["kme-a=198.18.1.1,localhost".parse().unwrap()],
            saes: vec!["sae-a".parse().unwrap()],
        };
        let files = init(&plan).unwrap();
        assert_eq!(files.len(), 6);
        let mode = |p: &str| {
            std::fs::metadata(plan.out.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(
            (
                mode("ca.key"),
                mode("kme-a.key"),
                mode("sae-a.key"),
                mode("sae-a.pem")
            ),
            (0o600, 0o600, 0o600, 0o644)
        );
        assert!(
            std::fs::read_to_string(plan.out.join("kme-a.pem"))
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        assert!(matches!(init(&plan), Err(PkiError::Exists(_))));
    }

    #[test]
    fn refuses_bad_specs_and_duplicates() {
        assert!("".parse::<Entity>().is_err());
        assert!("a b".parse::<Entity>().is_err());
        assert!("kme=1.2.3.4,bad name".parse::<Entity>().is_err());
        let e: Entity = "kme-a=198.18.1.1".parse().unwrap();
        assert_eq!(e.sans, vec!["198.18.1.1".to_string()]);
        let dir = tempfile::tempdir().unwrap();
        let plan = PkiPlan {
            out: dir.path().into(),
            ca: "ca".into(),
            kmes: vec![e.clone()],
            saes: vec![e],
        };
        assert!(matches!(init(&plan), Err(PkiError::Duplicate(_))));
    }
}
