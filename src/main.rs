//! `qshield`: parse the command line, set up logging, hand off to the library.

#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::Parser;
use qshield::cli::{
    Cli, Command, CompletionShell, LogArgs, LogFormat, PkiCommand, QkdCommand, RateArgs,
    SimulateArgs,
};
use qshield::config::DEFAULT_CONTROL_DIR;
use qshield::config::{self, identity_files};
use qshield::crypto::StaticIdentity;
use qshield::cvqkd::report;
use qshield::daemon::{self, control, status};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if prints_only(&cli.command) {
        qshield::net::exit_quietly_on_closed_stdout();
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qshield: {}", render_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// Commands that only print a report (safe to end at a closed pipe, `| head`); not the
/// daemon, the KME or Eve, whose sockets must never raise SIGPIPE.
fn prints_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Qkd {
            command: QkdCommand::Rate(_) | QkdCommand::Simulate(_) | QkdCommand::Calibrate(_)
        } | Command::Status { .. }
            | Command::Pubkey { .. }
            | Command::CheckConfig { .. }
            | Command::Completions { .. }
            | Command::Man { out_dir: None }
    )
}

/// The error and its causes, each once: many library errors already quote their cause.
fn render_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if !out.contains(&cause) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&cause);
        }
    }
    out
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Keygen { out_dir } => keygen(&out_dir),
        Command::Pubkey { identity_dir } => {
            println!(
                "{}",
                identity_files::read_public(&identity_dir)?.to_base64()
            );
            Ok(())
        }
        Command::CheckConfig { config } => check_config(&config),
        Command::Completions { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "qshield", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { out_dir } => man_pages(out_dir.as_deref()),
        Command::Up { config, log } => {
            init_logging(&log);
            daemon::run(&config)?;
            Ok(())
        }
        Command::Status {
            json,
            socket,
            interface,
        } => show_status(json, socket, interface),
        Command::Pki {
            command:
                PkiCommand::Init {
                    out,
                    ca,
                    kmes,
                    saes,
                },
        } => pki_init(out, ca, &kmes, &saes),
        Command::Qkd {
            command: QkdCommand::Rate(args),
        } => qkd_rate(&args),
        Command::Kme { config, log } => {
            init_logging(&log);
            qshield::kme::run(&config)?;
            Ok(())
        }
        Command::Qkd {
            command: QkdCommand::Simulate(args),
        } => qkd_simulate(&args),
        Command::Qkd {
            command: QkdCommand::Eve(args),
        } => qkd_eve(&args),
        Command::Qkd {
            command: QkdCommand::Calibrate(args),
        } => qkd_calibrate(&args),
    }
}

/// Prints the code family's measured operating points, a row as each is measured.
fn qkd_calibrate(args: &qshield::cli::CalibrateArgs) -> Result<()> {
    use qshield::cvqkd::sim::{calibrate, codes::CodeFamily};
    if args.frame_bits < 64 || !args.frame_bits.is_multiple_of(64) || args.frames == 0 {
        bail!("--frame-bits must be a positive multiple of 64 and --frames at least 1");
    }
    let codes = CodeFamily::new(args.frame_bits);
    if !args.json {
        println!(
            "# {} frames of {} bits per point, seed {}",
            args.frames, args.frame_bits, args.seed
        );
        println!(
            "{:>5} {:>7} {:>7} {:>6} {:>9} {:>6}",
            "rate", "margin", "SNR", "beta", "FER", "iter"
        );
    }
    let rows = calibrate::table(&codes, args.frames, args.seed, |r| {
        if !args.json {
            let p = &r.point;
            let failed = (p.fer * args.frames as f64).round();
            println!(
                "{:>5.2} {:>7.2} {:>7.3} {:>6.3} {:>4}/{:<4} {:>6.1}{}",
                p.rate,
                r.margin,
                p.snr,
                p.beta,
                failed,
                args.frames,
                p.mean_iterations,
                if r.in_use { "  <- in use" } else { "" }
            );
        }
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}

/// Runs Eve until SIGINT/SIGTERM; each attacked block is logged.
fn qkd_eve(args: &qshield::cli::EveArgs) -> Result<()> {
    init_logging(&args.log);
    let attack = qshield::cvqkd::sim::parse::parse_attack(&args.attack)?;
    qshield::cvqkd::sim::parse::validate_attack(&attack, 1.0)?;
    let cfg = qshield::kme::link::cvqkd::eve::EveConfig {
        forward: args.forward,
        attack,
        max_block_pulses: args.max_block_size,
        seed: args.seed.unwrap_or_else(rand::random),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}", args.listen))?;
        tracing::info!(listen = %args.listen, forward = %args.forward, ?attack, "eve: on the fiber");
        let counters = std::sync::Arc::new(qshield::kme::link::cvqkd::eve::EveCounters::default());
        tokio::select! {
            () = qshield::kme::link::cvqkd::eve::run(listener, cfg, counters) => {},
            r = tokio::signal::ctrl_c() => r?,
        }
        Ok(())
    })
}

fn pki_init(out: PathBuf, ca: String, kmes: &[String], saes: &[String]) -> Result<()> {
    let parse = |specs: &[String]| {
        specs
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<qshield::pki::Entity>, _>>()
    };
    let plan = qshield::pki::PkiPlan {
        out,
        ca,
        kmes: parse(kmes)?,
        saes: parse(saes)?,
    };
    for path in qshield::pki::init(&plan)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn qkd_rate(args: &RateArgs) -> Result<()> {
    let (request, channel) = args
        .request()
        .map_err(|e| anyhow::anyhow!(e.flag_message()))?;
    let sweep = args.sweep.as_ref();
    let out = report::run(&request, channel, sweep, args.json, args.plot.is_some())?;
    if let (Some(path), Some(svg)) = (&args.plot, &out.svg) {
        std::fs::write(path, svg).with_context(|| format!("--plot: writing {}", path.display()))?;
    }
    print!("{}", out.stdout);
    Ok(())
}

fn qkd_simulate(args: &SimulateArgs) -> Result<()> {
    use qshield::cvqkd::sim::{LinkSimulator, summary};
    let seed = args
        .seed
        .unwrap_or_else(|| qshield::cvqkd::sim::rng::SimRng::from_os_entropy().next_u64());
    let (config, va) = args.config(seed)?;
    let mut sim = LinkSimulator::new(config.clone())?;
    let va_line = va.describe(config.link.modulation_variance_snu);
    if args.json {
        eprintln!("{va_line}");
    } else {
        println!("# {va_line}");
        print!("{}", summary::text_header(&config));
    }
    let mut reports = Vec::new();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    for i in 0..args.blocks {
        let run = sim.run_block()?;
        if !args.json {
            print!("{}", summary::text_line(&run.report));
        }
        reports.push(run.report);
        let keys: usize = reports.iter().map(|r| r.key_bits).sum();
        if tty {
            eprint!(
                "\r{} block {}/{}  key bits {keys}  ",
                progress_bar(i + 1, args.blocks),
                i + 1,
                args.blocks
            );
        } else if args.json {
            // Logs and pipes get one plain line per block (text mode prints its rows).
            eprintln!("block {}/{}: key bits {keys}", i + 1, args.blocks);
        }
    }
    if tty {
        eprintln!();
    }
    let total = summary::Summary::of(&reports, config.finite.block_size);
    if args.json {
        let doc = summary::RunDocument {
            seed,
            link: &config.link,
            modulation: &va,
            finite_size: &config.finite,
            attack: &config.attack,
            frame_bits: config.frame_bits,
            blocks: &reports,
            summary: &total,
            note: summary::NOTE,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", summary::text_summary(&total));
    }
    Ok(())
}

/// `[#####     ]` for `done` of `total`.
fn progress_bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let filled = (done * WIDTH / total.max(1)) as usize;
    format!(
        "[{}{}]",
        "#".repeat(filled),
        " ".repeat(WIDTH as usize - filled)
    )
}

fn keygen(dir: &Path) -> Result<()> {
    let id = StaticIdentity::generate().context("generating keys")?;
    identity_files::write_identity(dir, &id)?;
    println!(
        "wrote {}/{{x25519.key,mlkem768.key}} (0600) and public.key",
        dir.display()
    );
    println!("public key: {}", id.public().to_base64());
    Ok(())
}

fn check_config(path: &Path) -> Result<()> {
    let cfg = config::load(path)?;
    let public = identity_files::read_public(&cfg.interface.identity_dir)
        .with_context(|| format!("{}: interface.identity_dir", path.display()))?;
    config::check_identity(&cfg, path, &public)?;
    println!(
        "{}: ok ({} peer(s), interface {}, cipher {})",
        path.display(),
        cfg.peers.len(),
        cfg.interface.name,
        cfg.interface.cipher
    );
    Ok(())
}

fn init_logging(log: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.log_level));
    // Colours only on a terminal: log files and journald get plain `key=value` text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match log.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn show_status(json: bool, socket: Option<PathBuf>, interface: Option<String>) -> Result<()> {
    let sockets = match (socket, interface) {
        (Some(s), _) => vec![s],
        (None, Some(name)) => vec![Path::new(DEFAULT_CONTROL_DIR).join(format!("{name}.sock"))],
        (None, None) => discover_sockets()?,
    };
    for path in sockets {
        let doc = control::request_status(&path)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            print!("{}", status::render_text(&doc));
        }
    }
    Ok(())
}

fn discover_sockets() -> Result<Vec<PathBuf>> {
    let dir = Path::new(DEFAULT_CONTROL_DIR);
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() {
        bail!(
            "no running qshield daemon found in {} (use --socket PATH or --interface NAME)",
            dir.display()
        );
    }
    Ok(found)
}

/// `qshield man`: the page of `qshield` to stdout, or every command's page into `out_dir`.
fn man_pages(out_dir: Option<&Path>) -> Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = out_dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    let mut stack = vec![("qshield".to_string(), cmd)];
    while let Some((name, cmd)) = stack.pop() {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let sub_name = format!("{name}-{}", sub.get_name());
            stack.push((sub_name, sub.clone()));
        }
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.clone().name(&name)).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    eprintln!("qshield: wrote {written} manual pages to {}", dir.display());
    Ok(())
}
