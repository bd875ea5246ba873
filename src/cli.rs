//! The command line: every subcommand, its flags and help text (clap).

use crate::cvqkd::params::{Param, ParamError, check, check_open_low};
use crate::cvqkd::report::{Channel, Modulation, RateRequest, SweepSpec};
use crate::cvqkd::{Detection, FiniteSizeParams, LinkParams};
use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// A site-to-site VPN whose session keys mix X25519, ML-KEM-768 and QKD keys, rotated on
/// byte and time budgets.
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
        /// Logging.
        #[command(flatten)]
        log: LogArgs,
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
    /// CV-QKD (GG02): key rates (rate), the link simulator (simulate), LDPC code calibration
    /// (calibrate) and Eve on a running link (eve). Simulated physics gives no quantum
    /// security; keys from a simulated link are never "QKD-secured".
    Qkd {
        /// The physics command.
        #[command(subcommand)]
        command: QkdCommand,
    },
    /// Run a key management entity in the foreground: the ETSI GS QKD 014 key delivery API
    /// over HTTPS with mutual TLS, durable key pools, QKD links to neighbour KMEs and
    /// trusted-node relay (docs/kme.md). SIGINT or SIGTERM shuts it down cleanly.
    Kme {
        /// The KME config file (TOML, docs/kme.md).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Logging.
        #[command(flatten)]
        log: LogArgs,
    },
    /// Print a completion script for SHELL to stdout, e.g. `source <(qshield completions
    /// bash)`, or save it where the shell looks (bash: /usr/share/bash-completion/completions/qshield).
    Completions {
        /// The shell.
        #[arg(value_enum, value_name = "SHELL")]
        shell: CompletionShell,
    },
    /// Print the manual page (roff) to stdout (`qshield man | man -l -`), or with --out-dir
    /// write one page per command (qshield.1, qshield-up.1, qshield-qkd-rate.1, ...).
    Man {
        /// Write every page into DIR (created if missing) instead of printing qshield.1.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// Shells `qshield completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
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

/// `qshield qkd` subcommands.
#[derive(Debug, Subcommand)]
pub enum QkdCommand {
    /// Secret key rate of GG02 with reverse reconciliation (asymptotic, and finite-size
    /// with --block-size), at one distance or transmittance, or over a --sweep of distances.
    Rate(RateArgs),
    /// Run the simulated GG02 link block by block (Alice, fiber, Eve, Bob; estimation,
    /// LDPC reconciliation, verification, privacy amplification) and print true vs estimated
    /// T and ξ, SNR, β, FER, key bits and aborts. Simulated keys have no quantum security.
    Simulate(SimulateArgs),
    /// Eve on the fiber of a running `source = "cvqkd"` KME link: receives the pulses sent
    /// to her (redirect the link's quantum port to --listen), attacks each block and passes
    /// it on to Bob's KME at --forward. For demos and tests of eavesdropper detection.
    Eve(EveArgs),
    /// Measure every LDPC code of the reconciliation on the MD channel alone: frame error
    /// rate, β and iterations at its operating margin and around it (how the margins in
    /// the code family were set). Prints each row as it is measured.
    Calibrate(CalibrateArgs),
}

/// Flags of `qshield qkd calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Frames per point.
    #[arg(long, value_name = "N", default_value_t = 24)]
    pub frames: usize,
    /// LDPC frame length, bits (a multiple of 64).
    #[arg(long, value_name = "BITS", default_value_t = crate::cvqkd::sim::codes::DEFAULT_FRAME_BITS)]
    pub frame_bits: usize,
    /// Seed of the frames.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `qshield qkd eve`.
#[derive(Debug, Clone, Args)]
pub struct EveArgs {
    /// Address to receive the pulses on (IP:PORT).
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Bob's quantum port (IP:PORT) to pass the attacked pulses to.
    #[arg(long, value_name = "ADDR")]
    pub forward: std::net::SocketAddr,
    /// The attack: cloner:XI (adds XI SNU), intercept-resend[:FRACTION], tap:DB or none.
    #[arg(long, value_name = "ATTACK")]
    pub attack: String,
    /// Largest block accepted, pulses.
    #[arg(long, value_name = "N", value_parser = parse_count, default_value = "67108864")]
    pub max_block_size: u64,
    /// Seed of Eve's randomness (random if not given).
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Flags of `qshield qkd simulate`; link flags and defaults as for `qkd rate`.
#[derive(Debug, Clone, Args)]
#[command(allow_negative_numbers = true)]
#[command(group(ArgGroup::new("sim_channel").args(["distance_km", "transmittance"]).required(true)))]
pub struct SimulateArgs {
    /// Fiber length, km.
    #[arg(long, value_name = "L")]
    pub distance_km: Option<f64>,
    /// Channel transmittance T in (0, 1], instead of a distance.
    #[arg(long, value_name = "T")]
    pub transmittance: Option<f64>,
    /// Fiber loss and detector noise.
    #[command(flatten)]
    pub link: LinkFlags,
    /// Modulation variance V_A, SNU, or `auto`: the V_A that puts the SNR just above the
    /// operating point of the code giving the most finite-size key on the nominal channel.
    #[arg(long, value_name = "V|auto", value_parser = VaArg::parse, default_value = "auto")]
    pub va: VaArg,
    /// Bob's detection.
    #[arg(long, value_enum, default_value_t = DetectionArg::Homodyne)]
    pub detection: DetectionArg,
    /// Block size N, pulses.
    #[arg(long, value_name = "N", value_parser = parse_count, default_value = "2000000")]
    pub block_size: u64,
    /// Pulses disclosed for parameter estimation, m [default: N/2].
    #[arg(long, value_name = "M", value_parser = parse_count)]
    pub pe_samples: Option<u64>,
    /// Security parameters ε_PE = ε̄ = ε_PA.
    #[arg(long, value_name = "E", default_value_t = 1e-10)]
    pub epsilon: f64,
    /// Number of blocks to run.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub blocks: u64,
    /// Eve: none, cloner:XI (adds XI SNU), intercept-resend[:FRACTION], tap:DB.
    #[arg(long, value_name = "ATTACK", default_value = "none")]
    pub attack: String,
    /// Seed of the run (printed; random if not given).
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,
    /// LDPC frame length, bits (a multiple of 64).
    #[arg(long, value_name = "BITS", default_value_t = crate::cvqkd::sim::codes::DEFAULT_FRAME_BITS)]
    pub frame_bits: usize,
    /// Belief-propagation iteration cap per frame.
    #[arg(long, value_name = "N", default_value_t = crate::cvqkd::sim::protocol::DEFAULT_MAX_ITERATIONS)]
    pub max_iterations: u32,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--va` of `qkd simulate`: a number (SNU) or `auto`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VaArg {
    /// Chosen per link by [`crate::cvqkd::sim::adapt::choose_modulation`].
    Auto,
    /// This V_A, SNU.
    Fixed(f64),
}

impl VaArg {
    /// `auto` or a number.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(VaArg::Auto);
        }
        s.parse::<f64>()
            .map(VaArg::Fixed)
            .map_err(|_| format!("expected a number of SNU or `auto`, got `{s}`"))
    }
}

impl SimulateArgs {
    /// The validated simulation configuration and how V_A was set; errors name the flag.
    pub fn config(
        &self,
        seed: u64,
    ) -> Result<
        (
            crate::cvqkd::sim::SimConfig,
            crate::cvqkd::sim::adapt::VaSelection,
        ),
        crate::cvqkd::sim::SimError,
    > {
        use crate::cvqkd::sim::adapt::{FALLBACK_VA_SNU, VaSelection, apply_auto};
        let transmittance = match (self.transmittance, self.distance_km) {
            (Some(t), _) => {
                check(
                    Param::Transmittance,
                    t,
                    crate::cvqkd::params::MIN_TRANSMITTANCE,
                    1.0,
                )?;
                t
            }
            (None, d) => crate::cvqkd::transmittance_from_distance(
                d.unwrap_or(0.0),
                self.link.loss_db_per_km,
            )?,
        };
        let link = LinkParams {
            transmittance,
            excess_noise_snu: self.link.xi,
            detector_efficiency: self.link.eta,
            electronic_noise_snu: self.link.v_el,
            reconciliation_efficiency: 1.0,
            modulation_variance_snu: match self.va {
                VaArg::Fixed(v) => v,
                VaArg::Auto => FALLBACK_VA_SNU,
            },
            detection: match self.detection {
                DetectionArg::Homodyne => Detection::Homodyne,
                DetectionArg::Heterodyne => Detection::Heterodyne,
            },
            trusted_detector: true,
        };
        let m = self.pe_samples.unwrap_or(self.block_size / 2);
        let mut config = crate::cvqkd::sim::SimConfig {
            link,
            finite: FiniteSizeParams::new(self.block_size, m, self.epsilon),
            attack: crate::cvqkd::sim::parse::parse_attack(&self.attack)?,
            frame_bits: self.frame_bits,
            max_iterations: self.max_iterations,
            seed,
        };
        config.validate()?;
        let selection = match self.va {
            VaArg::Fixed(_) => VaSelection::Fixed,
            VaArg::Auto => apply_auto(&mut config),
        };
        Ok((config, selection))
    }
}

/// The fiber and detector flags `qkd rate` and `qkd simulate` share. Defaults are the
/// reference set of docs/cvqkd-physics.md §4.
#[derive(Debug, Clone, Args)]
pub struct LinkFlags {
    /// Fiber attenuation, dB/km.
    #[arg(long, value_name = "DB", default_value_t = 0.2)]
    pub loss_db_per_km: f64,
    /// Excess noise ξ at the channel input, SNU.
    #[arg(long, value_name = "SNU", default_value_t = 0.01)]
    pub xi: f64,
    /// Detection efficiency η.
    #[arg(long, value_name = "ETA", default_value_t = 0.6)]
    pub eta: f64,
    /// Electronic noise v_el, SNU (per detector).
    #[arg(long, value_name = "SNU", default_value_t = 0.1)]
    pub v_el: f64,
}

/// Largest symbol rate accepted, Hz.
pub const MAX_SYMBOL_RATE_HZ: f64 = 1e13;

/// Flags of `qshield qkd rate`. Defaults are the reference set of docs/cvqkd-physics.md §4.
#[derive(Debug, Clone, Args)]
#[command(allow_negative_numbers = true)]
#[command(group(ArgGroup::new("channel").args(["distance_km", "transmittance", "sweep"]).required(true)))]
pub struct RateArgs {
    /// Fiber length, km.
    #[arg(long, value_name = "L")]
    pub distance_km: Option<f64>,
    /// Channel transmittance T in (0, 1], instead of a distance.
    #[arg(long, value_name = "T")]
    pub transmittance: Option<f64>,
    /// Fiber loss and detector noise.
    #[command(flatten)]
    pub link: LinkFlags,
    /// Reconciliation efficiency β.
    #[arg(long, value_name = "BETA", default_value_t = 0.95)]
    pub beta: f64,
    /// Modulation variance V_A, SNU [default: 4].
    #[arg(long, value_name = "V", conflicts_with = "va_opt")]
    pub va: Option<f64>,
    /// Choose the V_A in [0.05, 50] SNU that maximises the rate (the finite-size rate when
    /// --block-size is given).
    #[arg(long)]
    pub va_opt: bool,
    /// Bob's detection.
    #[arg(long, value_enum, default_value_t = DetectionArg::Homodyne)]
    pub detection: DetectionArg,
    /// Whether η and v_el are trusted (calibrated); false hands them to Eve.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub trusted_detector: bool,
    /// Block size N (pulses) for the finite-size rate, e.g. 1e10.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub block_size: Option<u64>,
    /// Pulses disclosed for parameter estimation, m [default: N/2].
    #[arg(long, value_name = "M", value_parser = parse_count, requires = "block_size")]
    pub pe_samples: Option<u64>,
    /// Security parameters ε_PE = ε̄ = ε_PA [default: 1e-10].
    #[arg(long, value_name = "E", requires = "block_size")]
    pub epsilon: Option<f64>,
    /// Symbol rate, Hz, to report bit/s.
    #[arg(long, value_name = "HZ")]
    pub symbol_rate: Option<f64>,
    /// A table over distance, km: FROM:TO:STEP.
    #[arg(long, value_name = "FROM:TO:STEP", value_parser = SweepSpec::parse)]
    pub sweep: Option<SweepSpec>,
    /// Write an SVG plot of key rate against distance (the sweep's, or 0–200 km).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Print JSON (an array with --sweep) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Detection schemes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DetectionArg {
    /// Homodyne: one quadrature per pulse.
    Homodyne,
    /// Heterodyne: both quadratures per pulse.
    Heterodyne,
}

impl RateArgs {
    /// The validated request and the channel (none with --sweep); errors name the flag.
    pub fn request(&self) -> Result<(RateRequest, Option<Channel>), ParamError> {
        let link = LinkParams {
            transmittance: 1.0,
            excess_noise_snu: self.link.xi,
            detector_efficiency: self.link.eta,
            electronic_noise_snu: self.link.v_el,
            reconciliation_efficiency: self.beta,
            modulation_variance_snu: self.va.unwrap_or(4.0),
            detection: match self.detection {
                DetectionArg::Homodyne => Detection::Homodyne,
                DetectionArg::Heterodyne => Detection::Heterodyne,
            },
            trusted_detector: self.trusted_detector,
        };
        link.validate()?;
        check(
            Param::LossDbPerKm,
            self.link.loss_db_per_km,
            0.0,
            crate::cvqkd::params::MAX_LOSS_DB_PER_KM,
        )?;
        if let Some(f) = self.symbol_rate {
            check_open_low(Param::SymbolRate, f, 0.0, MAX_SYMBOL_RATE_HZ)?;
        }
        let req = RateRequest {
            link,
            loss_db_per_km: self.link.loss_db_per_km,
            modulation: self.modulation(),
            finite_size: self.finite_size()?,
            symbol_rate_hz: self.symbol_rate,
        };
        Ok((req, self.channel()?))
    }

    fn modulation(&self) -> Modulation {
        match (self.va_opt, self.va) {
            (true, _) => Modulation::Optimal {
                min_snu: crate::cvqkd::optimize::VA_SEARCH_MIN_SNU,
                max_snu: crate::cvqkd::optimize::VA_SEARCH_MAX_SNU,
            },
            (false, va) => Modulation::Fixed(va.unwrap_or(4.0)),
        }
    }

    fn finite_size(&self) -> Result<Option<FiniteSizeParams>, ParamError> {
        let Some(n) = self.block_size else {
            return Ok(None);
        };
        let m = self.pe_samples.unwrap_or(n / 2);
        let fs = FiniteSizeParams::new(n, m, self.epsilon.unwrap_or(1e-10));
        fs.validate()?;
        Ok(Some(fs))
    }

    fn channel(&self) -> Result<Option<Channel>, ParamError> {
        if let Some(t) = self.transmittance {
            let min = crate::cvqkd::params::MIN_TRANSMITTANCE;
            check(Param::Transmittance, t, min, 1.0)?;
            return Ok(Some(Channel::Transmittance(t)));
        }
        Ok(self.distance_km.map(Channel::DistanceKm))
    }
}

/// A count such as `10000000000` or `1e10`: a non-negative integer below 2^63.
fn parse_count(s: &str) -> Result<u64, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let x: f64 = s.parse().map_err(|_| format!("{s:?} is not a count"))?;
    if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x < 9.2e18 {
        Ok(x as u64)
    } else {
        Err(format!("{s:?} is not a whole number of pulses"))
    }
}

/// Logging flags of the long-running commands (`up`, `kme`).
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing syntax, e.g. `info`, `qshield=debug`); RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulate(extra: &[&str]) -> Result<SimulateArgs, clap::Error> {
        let args = ["qshield", "qkd", "simulate", "--distance-km", "10"];
        let cli = Cli::try_parse_from(args.iter().chain(extra))?;
        match cli.command {
            Command::Qkd {
                command: QkdCommand::Simulate(s),
            } => Ok(s),
            _ => unreachable!("parsed as qkd simulate"),
        }
    }

    #[test]
    fn simulate_va_is_auto_by_default_and_takes_a_number() {
        assert_eq!(simulate(&[]).unwrap().va, VaArg::Auto);
        assert_eq!(simulate(&["--va", "auto"]).unwrap().va, VaArg::Auto);
        assert_eq!(simulate(&["--va", "4.15"]).unwrap().va, VaArg::Fixed(4.15));
        let e = simulate(&["--va", "lots"]).unwrap_err().to_string();
        assert!(e.contains("--va"), "{e}");
    }
}
