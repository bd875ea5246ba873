//! The command line: every subcommand, its flags and help text (clap).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// qshield: a site-to-site VPN whose session keys mix X25519, ML-KEM-768 and (soon) QKD keys,
/// rotated on byte and time budgets.
#[derive(Debug, Parser)]
#[command(name = "qshield", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a site identity (X25519 + ML-KEM-768): x25519.key and mlkem768.key (mode
    /// 0600) and public.key in DIR. Refuses to overwrite existing files.
    Keygen {
        /// Directory to write the identity into (created with mode 0700 if missing).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
    /// Print the public key (base64, for a peer's config) of the identity in DIR.
    Pubkey {
        /// Directory written by `qshield keygen`.
        #[arg(long, value_name = "DIR")]
        identity_dir: PathBuf,
    },
    /// Check a config file (and the identity it names); exit 0 if it is valid, else print
    /// an error naming the file, line and field.
    CheckConfig {
        /// The config file.
        #[arg(value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the daemon in the foreground: create the TUN, bring up tunnels to every peer.
    /// SIGINT or SIGTERM shuts it down cleanly and removes the TUN.
    Up {
        /// The config file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Log filter (tracing syntax, e.g. `info`, `qshield=debug`); RUST_LOG overrides it.
        #[arg(long, default_value = "info")]
        log_level: String,
    },
    /// Show a running daemon's tunnels: peers, keys, budgets, rotations, drops.
    Status {
        /// Print the JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Control socket of the daemon (default: /run/qshield/<interface>.sock).
        #[arg(long, value_name = "PATH", conflicts_with = "interface")]
        socket: Option<PathBuf>,
        /// Interface name, to find its control socket in /run/qshield.
        #[arg(long, short, value_name = "NAME")]
        interface: Option<String>,
    },
    /// Certificates for KMEs and SAEs (mutual TLS of the ETSI QKD 014 API).
    Pki {
        /// What to do.
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Run a key management entity in the foreground: the ETSI GS QKD 014 key delivery API
    /// over HTTPS with mutual TLS, durable key pools, QKD links to neighbour KMEs and
    /// trusted-node relay (docs/kme.md). SIGINT or SIGTERM shuts it down cleanly.
    Kme {
        /// The KME config file (TOML, docs/kme.md).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Log filter (tracing syntax); RUST_LOG overrides it.
        #[arg(long, default_value = "info")]
        log_level: String,
    },
}

/// `qshield pki` subcommands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a CA and certificates for KMEs (server + client) and SAEs (client), for
    /// demos and tests. The entity ID is the certificate's Common Name. Writes
    /// DIR/ca.pem, DIR/ca.key and DIR/NAME.pem, DIR/NAME.key (keys mode 0600); refuses to
    /// overwrite.
    Init {
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// CA name (its Common Name).
        #[arg(long, value_name = "NAME")]
        ca: String,
        /// KMEs: NAME or NAME=SAN,SAN (SANs: DNS names or IP addresses the KME is reached at);
        /// several names separated by spaces or by repeating the flag.
        #[arg(long = "kme", value_name = "NAMES", num_args = 1.., action = clap::ArgAction::Append)]
        kmes: Vec<String>,
        /// SAEs (the VPN daemons): NAME or NAME=SAN,SAN; several allowed as for --kme.
        #[arg(long = "sae", value_name = "NAMES", num_args = 1.., action = clap::ArgAction::Append)]
        saes: Vec<String>,
    },
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
