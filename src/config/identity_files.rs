//! A site's identity on disk, as written by `qshield keygen` and read by the daemon:
//!
//! | file | content | mode |
//! |---|---|---|
//! | `x25519.key` | base64 of the 32 private X25519 bytes, then `\n` | 0600 |
//! | `mlkem768.key` | base64 of the 2400-byte ML-KEM-768 decapsulation key, then `\n` | 0600 |
//! | `public.key` | [`PublicIdentity::to_base64`], then `\n` (the string peers configure) | 0644 |
//!
//! Files are created with `O_EXCL` and their mode set at creation (never overwritten, never
//! chmod-ed afterwards); private files readable by group or others, or owned by another
//! user, are refused on reading, as ssh does ([`check_private`], also used for the KME's
//! store and every TLS private key). Secret bytes pass only through buffers that are zeroized.

use crate::crypto::dh::DhSecret;
use crate::crypto::identity::PublicIdentityError;
use crate::crypto::kem::{KemSecret, MLKEM768_SECRET_BYTES};
use crate::crypto::{CryptoError, PublicIdentity, Secret, StaticIdentity};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// File name of the X25519 private key.
pub const X25519_KEY_FILE: &str = "x25519.key";
/// File name of the ML-KEM-768 private key.
pub const MLKEM768_KEY_FILE: &str = "mlkem768.key";
/// File name of the public identity.
pub const PUBLIC_KEY_FILE: &str = "public.key";
/// Length of an X25519 private key in bytes.
pub const X25519_SECRET_BYTES: usize = 32;
/// Mode of the private key files.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of `public.key`.
pub const PUBLIC_FILE_MODE: u32 = 0o644;
/// Mode of an identity directory created by [`write_identity`].
pub const DIR_MODE: u32 = 0o700;
/// Key files larger than this are refused unread (the largest, base64 of 2400 bytes, is 3201).
pub const MAX_KEY_FILE_BYTES: usize = 8192;

/// Why an identity file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityFileError {
    /// Creating, opening, reading or writing the file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file to be written already exists.
    #[error("{}: already exists; refusing to overwrite an identity (move it away or use another directory)", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A file or directory holding secrets that group or others may access.
    #[error("{}: holds secrets but group or others may access it (mode {mode:04o}); run `chmod {} {}`", path.display(), if *is_dir { "700" } else { "600" }, path.display())]
    Permissions {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// It is a directory.
        is_dir: bool,
    },
    /// A file or directory holding secrets that another user owns.
    #[error("{}: holds secrets but is owned by uid {owner}, not by this process's user (uid {me}); refusing it", path.display())]
    Owner {
        /// The file or directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective user ID.
        me: u32,
    },
    /// Larger than any key file.
    #[error("{}: larger than {MAX_KEY_FILE_BYTES} bytes; not a key file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Content is not base64.
    #[error("{}: not valid base64", path.display())]
    Base64 {
        /// The file.
        path: PathBuf,
    },
    /// Decoded to the wrong number of bytes.
    #[error("{}: decodes to {got} bytes, expected {expected}", path.display())]
    Length {
        /// The file.
        path: PathBuf,
        /// Bytes decoded.
        got: usize,
        /// Bytes a key of this kind has.
        expected: usize,
    },
    /// The private key was rejected by the crypto backend.
    #[error("{}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// The backend's refusal.
        source: CryptoError,
    },
    /// A public identity that does not decode.
    #[error("{}: invalid public key: {source}", path.display())]
    Public {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        source: PublicIdentityError,
    },
    /// `public.key` does not belong to the private keys beside it.
    #[error("{}: does not match the private keys in the same directory (remove it, or restore the right one)", path.display())]
    Mismatch {
        /// The public key file.
        path: PathBuf,
    },
    /// Exporting the private keys of a generated identity failed.
    #[error("cannot export the identity: {0}")]
    Export(CryptoError),
}

/// Writes `id` into `dir` (created with mode 0700 if missing) as the three files above.
/// Refuses if any of them exists; on failure, removes the files this call created.
pub fn write_identity(dir: &Path, id: &StaticIdentity) -> Result<(), IdentityFileError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| io_error(dir, source))?;
    let files = identity_contents(dir, id)?;
    if let Some((path, _, _)) = files.iter().find(|(p, _, _)| p.symlink_metadata().is_ok()) {
        return Err(IdentityFileError::Exists { path: path.clone() });
    }
    let mut written: Vec<&Path> = Vec::new();
    for (path, text, mode) in &files {
        if let Err(e) = create_file(path, text, *mode) {
            written.iter().for_each(|p| drop(fs::remove_file(p)));
            return Err(e);
        }
        written.push(path);
    }
    Ok(())
}

/// One file to write: its path, its text (zeroized on drop) and its mode.
type FileContent = (PathBuf, Zeroizing<String>, u32);

/// The three files of an identity, encoded.
fn identity_contents(
    dir: &Path,
    id: &StaticIdentity,
) -> Result<[FileContent; 3], IdentityFileError> {
    let dh = id.dh.to_bytes().map_err(IdentityFileError::Export)?;
    let kem = id.kem.to_bytes().map_err(IdentityFileError::Export)?;
    let public = Zeroizing::new(format!("{}\n", id.public().to_base64()));
    Ok([
        (
            dir.join(X25519_KEY_FILE),
            encode(dh.expose()),
            PRIVATE_FILE_MODE,
        ),
        (dir.join(MLKEM768_KEY_FILE), encode(&kem), PRIVATE_FILE_MODE),
        (dir.join(PUBLIC_KEY_FILE), public, PUBLIC_FILE_MODE),
    ])
}

/// Base64 of `bytes` plus a newline, in a buffer that is zeroized on drop.
fn encode(bytes: &[u8]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(3) * 4 + 1));
    B64.encode_string(bytes, &mut text);
    text.push('\n');
    text
}

/// Creates `path` exclusively with `mode` and writes `text`; removes it if writing fails.
fn create_file(path: &Path, text: &str, mode: u32) -> Result<(), IdentityFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => IdentityFileError::Exists {
                path: path.to_path_buf(),
            },
            _ => io_error(path, source),
        })?;
    let result = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    result.map_err(|source| {
        drop(fs::remove_file(path));
        io_error(path, source)
    })
}

/// Reads the private keys in `dir`, refusing private files that group or others may access,
/// and checks `public.key`, when present, against them.
pub fn read_identity(dir: &Path) -> Result<StaticIdentity, IdentityFileError> {
    let dh_path = dir.join(X25519_KEY_FILE);
    let dh_bytes = read_private(&dh_path, X25519_SECRET_BYTES)?;
    let secret = Secret::<32>::from_slice(&dh_bytes).ok_or_else(|| IdentityFileError::Length {
        path: dh_path.clone(),
        got: dh_bytes.len(),
        expected: X25519_SECRET_BYTES,
    })?;
    let dh = DhSecret::from_bytes(&secret).map_err(|source| IdentityFileError::Key {
        path: dh_path,
        source,
    })?;
    let kem_path = dir.join(MLKEM768_KEY_FILE);
    let kem_bytes = read_private(&kem_path, MLKEM768_SECRET_BYTES)?;
    let kem = KemSecret::from_bytes(&kem_bytes).map_err(|source| IdentityFileError::Key {
        path: kem_path,
        source,
    })?;
    let id = StaticIdentity { dh, kem };
    check_public_file(dir, &id)?;
    Ok(id)
}

/// The public identity of the private keys in `dir` (derived from them, not read from
/// `public.key`, though that file is checked too when present).
pub fn read_public(dir: &Path) -> Result<PublicIdentity, IdentityFileError> {
    read_identity(dir).map(|id| id.public())
}

/// Reads a `public.key` file (any file holding a base64 public identity).
pub fn read_public_file(path: &Path) -> Result<PublicIdentity, IdentityFileError> {
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let text = read_bounded(file, path)?;
    let text = std::str::from_utf8(&text).map_err(|_| IdentityFileError::Base64 {
        path: path.to_path_buf(),
    })?;
    PublicIdentity::from_base64(text).map_err(|source| match source {
        PublicIdentityError::Base64 => IdentityFileError::Base64 {
            path: path.to_path_buf(),
        },
        source => IdentityFileError::Public {
            path: path.to_path_buf(),
            source,
        },
    })
}

fn check_public_file(dir: &Path, id: &StaticIdentity) -> Result<(), IdentityFileError> {
    let path = dir.join(PUBLIC_KEY_FILE);
    if path.symlink_metadata().is_err() {
        return Ok(());
    }
    match read_public_file(&path) {
        Ok(public) if public == id.public() => Ok(()),
        Ok(_) | Err(IdentityFileError::Public { .. }) | Err(IdentityFileError::Base64 { .. }) => {
            Err(IdentityFileError::Mismatch { path })
        }
        Err(e) => Err(e),
    }
}

/// Reads and decodes a private key file of `expected` bytes, after checking its mode.
fn read_private(path: &Path, expected: usize) -> Result<Zeroizing<Vec<u8>>, IdentityFileError> {
    let text = read_private_file(path)?;
    let trimmed = text.trim_ascii();
    let mut bytes = Zeroizing::new(Vec::with_capacity(trimmed.len() / 4 * 3 + 3));
    B64.decode_vec(trimmed, &mut bytes)
        .map_err(|_| IdentityFileError::Base64 {
            path: path.to_path_buf(),
        })?;
    if bytes.len() != expected {
        return Err(IdentityFileError::Length {
            path: path.to_path_buf(),
            got: bytes.len(),
            expected,
        });
    }
    Ok(bytes)
}

/// Refuses a file or directory holding secrets (`meta` is its metadata, read from the
/// opened file where there is one) that group or others may access or that a user other
/// than this process's owns, as ssh does for private keys. Shared by everything that keeps
/// secrets on disk: the identity files here, the KME's store (`kme::store`) and the TLS
/// private keys of the KME (`kme::tls`) and of the SAE client (`qkd::client`).
pub fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), IdentityFileError> {
    let me = crate::net::effective_uid();
    if meta.uid() != me {
        return Err(IdentityFileError::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(IdentityFileError::Permissions {
            path: path.to_path_buf(),
            mode,
            is_dir: meta.is_dir(),
        });
    }
    Ok(())
}

/// Reads a private file (an identity key, a PEM private key) of at most
/// [`MAX_KEY_FILE_BYTES`] into a zeroizing buffer, after [`check_private`] on the opened file.
pub fn read_private_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, IdentityFileError> {
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let meta = file.metadata().map_err(|source| io_error(path, source))?;
    check_private(path, &meta)?;
    read_bounded(file, path)
}

/// Creates directory `dir` (and missing parents) with mode [`DIR_MODE`] whatever the
/// umask, or, when it exists, checks it with [`check_private`].
pub fn create_private_dir(dir: &Path) -> Result<(), IdentityFileError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return check_private(dir, &meta),
        Ok(_) => {
            let source = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
            return Err(io_error(dir, source));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_error(dir, source)),
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| io_error(dir, source))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
        .map_err(|source| io_error(dir, source))?;
    let meta = fs::metadata(dir).map_err(|source| io_error(dir, source))?;
    check_private(dir, &meta)
}

/// Creates the empty file `path` with mode [`PRIVATE_FILE_MODE`] whatever the umask, or,
/// when it exists, checks it with [`check_private`] (for files another library writes, such
/// as the KME's redb store, created here first so they are never readable by others).
pub fn create_private_file(path: &Path) -> Result<(), IdentityFileError> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path);
    let file = match created {
        Ok(file) => {
            file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE_MODE))
                .map_err(|source| io_error(path, source))?;
            file
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            File::open(path).map_err(|source| io_error(path, source))?
        }
        Err(source) => return Err(io_error(path, source)),
    };
    let meta = file.metadata().map_err(|source| io_error(path, source))?;
    check_private(path, &meta)
}

/// Reads at most [`MAX_KEY_FILE_BYTES`] into a zeroizing buffer that never reallocates.
fn read_bounded(file: File, path: &Path) -> Result<Zeroizing<Vec<u8>>, IdentityFileError> {
    let limit = MAX_KEY_FILE_BYTES + 1;
    let mut buf = Zeroizing::new(Vec::with_capacity(limit + 1));
    file.take(limit as u64)
        .read_to_end(&mut buf)
        .map_err(|source| io_error(path, source))?;
    if buf.len() > MAX_KEY_FILE_BYTES {
        return Err(IdentityFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(buf)
}

fn io_error(path: &Path, source: io::Error) -> IdentityFileError {
    IdentityFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}
