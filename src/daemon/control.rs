//! The control socket: a Unix stream socket (mode 0600) on which the daemon answers
//! `status` with one JSON document. `qshield status` is its client.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Control-socket failures.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another daemon answers on this socket.
    #[error("control socket {0} is in use by a running daemon (is this interface already up?)")]
    InUse(PathBuf),
    /// The socket could not be created.
    #[error("cannot create control socket {path}: {source}")]
    Bind {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The client could not reach the daemon.
    #[error(
        "cannot reach the daemon at {path}: {source} (is `qshield up` running for this interface?)"
    )]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The daemon's answer could not be read.
    #[error("bad answer from the daemon at {path}: {detail}")]
    Answer {
        /// Socket path.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// A bound control socket; the file is removed on drop.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path` (creating its directory), refusing if a live daemon already answers there.
    pub fn bind(path: &Path) -> Result<Self, ControlError> {
        let bind_err = |source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(bind_err)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(bind_err)?;
        }
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves requests until `shutdown` is set; `answer` builds the status JSON.
    pub fn serve(&self, shutdown: &Arc<AtomicBool>, answer: impl Fn() -> String) {
        super::accept_loop::serve_until(
            "control socket",
            shutdown,
            || self.listener.accept().map(|(stream, _)| stream),
            |stream| handle(stream, &answer),
        );
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn handle(stream: UnixStream, answer: &impl Fn() -> String) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(&stream, 256)).read_line(&mut line)?;
    let reply = match line.trim() {
        "status" => answer(),
        other => {
            serde_json::json!({ "error": format!("unknown request '{other}' (expected 'status')") })
                .to_string()
        }
    };
    let mut w = &stream;
    w.write_all(reply.as_bytes())?;
    w.write_all(b"\n")
}

/// Asks the daemon at `path` for its status; returns the JSON document.
pub fn request_status(path: &Path) -> Result<serde_json::Value, ControlError> {
    let connect = |source| ControlError::Connect {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(connect)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(connect)?;
    stream.write_all(b"status\n").map_err(connect)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(connect)?;
    let answer = |detail: String| ControlError::Answer {
        path: path.to_path_buf(),
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| answer(e.to_string()))?;
    if let Some(err) = value.get("error") {
        return Err(answer(err.to_string()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn socket_is_readable_and_writable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("qshield0.sock");
        let socket = ControlSocket::bind(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        let mode = meta.permissions().mode() & 0o7777;
        assert_eq!(format!("{mode:o}"), "600", "socket mode");
        drop(socket);
        assert!(!path.exists(), "the socket file is removed on drop");
    }
}
