//! What `qshield qkd rate` computes and prints: one operating point or a sweep over
//! distance, as a readable block, a table, JSON, and an SVG plot. Pure: the caller prints
//! the text and writes the plot file.

use super::finite_size::{FiniteSizeParams, FiniteSizeRate};
use super::params::{LinkParams, ParamError, transmittance_from_distance};
use super::plot::{PALETTE, REFERENCE_COLOR, Series, svg_log_plot};
use super::rate::{AsymptoticRate, asymptotic_rate_unchecked, plob_bound};
use super::{finite_size, optimal_asymptotic, optimal_finite_size};
use serde::Serialize;
use std::fmt::Write as _;

/// Distances of the default plot when no `--sweep` is given: 0 to 200 km.
pub const DEFAULT_PLOT_SWEEP: SweepSpec = SweepSpec {
    from_km: 0.0,
    to_km: 200.0,
    step_km: 2.0,
};
/// Most points a sweep may have.
pub const MAX_SWEEP_POINTS: usize = 100_000;

/// How Alice's modulation variance is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Modulation {
    /// A fixed V_A, SNU.
    Fixed(f64),
    /// The V_A in `[min_snu, max_snu]` that maximises the headline rate (finite-size when
    /// a block is given, else asymptotic).
    Optimal {
        /// Lower end of the search, SNU.
        min_snu: f64,
        /// Upper end of the search, SNU.
        max_snu: f64,
    },
}

/// Where the channel transmittance comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Channel {
    /// A fiber of this length, km, at the request's loss per km.
    DistanceKm(f64),
    /// A given transmittance.
    Transmittance(f64),
}

/// Everything but the channel: the link (its T is replaced), fiber loss, modulation,
/// optional finite-size block and symbol rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateRequest {
    /// Detector, noise, β and detection; `transmittance` and (if optimised) V_A are replaced.
    pub link: LinkParams,
    /// Fiber attenuation, dB/km.
    pub loss_db_per_km: f64,
    /// How V_A is chosen.
    pub modulation: Modulation,
    /// Block parameters for the finite-size rate, if wanted.
    pub finite_size: Option<FiniteSizeParams>,
    /// Symbols per second, for bit/s, if wanted.
    pub symbol_rate_hz: Option<f64>,
}

/// A sweep over distance, `FROM:TO:STEP` in km.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepSpec {
    /// First distance, km.
    pub from_km: f64,
    /// Last distance (included when on the grid), km.
    pub to_km: f64,
    /// Step, km.
    pub step_km: f64,
}

impl SweepSpec {
    /// Parse `FROM:TO:STEP` (km); requires 0 ≤ FROM ≤ TO, STEP > 0 and at most
    /// [`MAX_SWEEP_POINTS`] points.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let [from, to, step] = parts.as_slice() else {
            return Err("expected FROM:TO:STEP in km, e.g. 0:100:10".into());
        };
        let num = |x: &str| {
            x.trim()
                .parse::<f64>()
                .map_err(|_| format!("{x:?} is not a number"))
        };
        let spec = SweepSpec {
            from_km: num(from)?,
            to_km: num(to)?,
            step_km: num(step)?,
        };
        let finite = [spec.from_km, spec.to_km, spec.step_km]
            .iter()
            .all(|x| x.is_finite());
        if !finite || spec.from_km < 0.0 || spec.to_km < spec.from_km || spec.step_km <= 0.0 {
            return Err("need 0 ≤ FROM ≤ TO and STEP > 0".into());
        }
        if (spec.to_km - spec.from_km) / spec.step_km >= MAX_SWEEP_POINTS as f64 {
            return Err(format!("more than {MAX_SWEEP_POINTS} points"));
        }
        Ok(spec)
    }

    /// The distances, km: FROM, FROM+STEP, … up to TO (with a 1e-9 relative allowance).
    pub fn distances_km(&self) -> Vec<f64> {
        let count = ((self.to_km - self.from_km) / self.step_km * (1.0 + 1e-9)).floor() as usize;
        (0..=count)
            .map(|i| self.from_km + self.step_km * i as f64)
            .collect()
    }
}

/// The finite-size part of a report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FiniteSizeReport {
    /// The block parameters.
    #[serde(flatten)]
    pub params: FiniteSizeParams,
    /// The rate and its parts.
    #[serde(flatten)]
    pub rate: FiniteSizeRate,
    /// K_N clipped at 0 (no key when the rate is ≤ 0), bits per pulse.
    pub key_rate_clipped_bits_per_pulse: f64,
    /// K_N (clipped) times the symbol rate, bit/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_rate_bits_per_second: Option<f64>,
}

/// One operating point: the parameters used and every quantity `qkd rate` reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateReport {
    /// Fiber length, km (absent when a transmittance was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// Fiber attenuation, dB/km.
    pub loss_db_per_km: f64,
    /// Channel loss, dB.
    pub loss_db: f64,
    /// The link actually evaluated (T and V_A included).
    #[serde(flatten)]
    pub link: LinkParams,
    /// Whether V_A was optimised.
    pub modulation_variance_optimized: bool,
    /// SNR, I_AB, χ_BE and the raw asymptotic rate.
    #[serde(flatten)]
    pub asymptotic: AsymptoticRate,
    /// The asymptotic rate clipped at 0, bits per pulse.
    pub key_rate_clipped_bits_per_pulse: f64,
    /// Symbols per second, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol_rate_hz: Option<f64>,
    /// Asymptotic rate (clipped) times the symbol rate, bit/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_rate_bits_per_second: Option<f64>,
    /// PLOB bound −log2(1−T), bits per pulse (null at T = 1, where it is infinite).
    pub plob_bits_per_pulse: Option<f64>,
    /// The finite-size rate, when a block size was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finite_size: Option<FiniteSizeReport>,
}

/// Why a report could not be made; the message names the flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateError {
    /// A parameter is out of range.
    #[error("{}", .0.flag_message())]
    Param(ParamError),
    /// A point of the sweep is out of range.
    #[error("--sweep: at {distance_km} km: {reason}")]
    SweepPoint {
        /// The distance of the bad point.
        distance_km: f64,
        /// What is wrong there.
        reason: ParamError,
    },
}

impl From<ParamError> for RateError {
    fn from(e: ParamError) -> Self {
        RateError::Param(e)
    }
}

/// Evaluate one operating point.
pub fn evaluate(req: &RateRequest, channel: Channel) -> Result<RateReport, ParamError> {
    let (distance_km, t) = match channel {
        Channel::DistanceKm(d) => (Some(d), transmittance_from_distance(d, req.loss_db_per_km)?),
        Channel::Transmittance(t) => (None, t),
    };
    let base = LinkParams {
        transmittance: t,
        ..req.link
    };
    let (link, fs_rate) = choose_modulation(req, &base)?;
    let asym = asymptotic_rate_unchecked(&link);
    let clipped = asym.key_rate_bits_per_pulse.max(0.0);
    let plob = plob_bound(t);
    Ok(RateReport {
        distance_km,
        loss_db_per_km: req.loss_db_per_km,
        loss_db: -10.0 * t.log10(),
        link,
        modulation_variance_optimized: matches!(req.modulation, Modulation::Optimal { .. }),
        asymptotic: asym,
        key_rate_clipped_bits_per_pulse: clipped,
        symbol_rate_hz: req.symbol_rate_hz,
        key_rate_bits_per_second: req.symbol_rate_hz.map(|f| f * clipped),
        plob_bits_per_pulse: plob.is_finite().then_some(plob),
        finite_size: fs_rate.map(|(params, rate)| finite_report(params, rate, req.symbol_rate_hz)),
    })
}

/// The link with its V_A, and the finite-size rate if a block was given.
fn choose_modulation(
    req: &RateRequest,
    base: &LinkParams,
) -> Result<(LinkParams, Option<(FiniteSizeParams, FiniteSizeRate)>), ParamError> {
    let (link, fs_rate) = match (req.modulation, req.finite_size) {
        (Modulation::Fixed(va), fs) => {
            let link = base.with_modulation_variance(va);
            link.validate()?;
            let rate = fs
                .map(|fs| finite_size::finite_size_rate(&link, &fs))
                .transpose()?;
            (link, fs.zip(rate))
        }
        (Modulation::Optimal { min_snu, max_snu }, Some(fs)) => {
            let (link, rate) = optimal_finite_size(base, &fs, min_snu, max_snu)?;
            (link, Some((fs, rate)))
        }
        (Modulation::Optimal { min_snu, max_snu }, None) => {
            (optimal_asymptotic(base, min_snu, max_snu)?.0, None)
        }
    };
    Ok((link, fs_rate))
}

fn finite_report(
    params: FiniteSizeParams,
    rate: FiniteSizeRate,
    f: Option<f64>,
) -> FiniteSizeReport {
    let clipped = rate.key_rate_bits_per_pulse.max(0.0);
    FiniteSizeReport {
        params,
        rate,
        key_rate_clipped_bits_per_pulse: clipped,
        key_rate_bits_per_second: f.map(|f| f * clipped),
    }
}

/// Evaluate every distance of a sweep.
pub fn sweep(req: &RateRequest, spec: &SweepSpec) -> Result<Vec<RateReport>, RateError> {
    spec.distances_km()
        .into_iter()
        .map(|d| {
            evaluate(req, Channel::DistanceKm(d)).map_err(|reason| RateError::SweepPoint {
                distance_km: d,
                reason,
            })
        })
        .collect()
}

/// What the command produces: the text for stdout and, if asked, the SVG document.
#[derive(Debug, Clone, PartialEq)]
pub struct RateOutput {
    /// Text (or JSON) for standard output.
    pub stdout: String,
    /// The SVG plot, when `--plot` was given.
    pub svg: Option<String>,
}

/// The whole `qkd rate` command: a point (`channel`) or a sweep, as text or JSON, and an
/// SVG plot over the sweep (or 0–200 km) when `plot` is set.
pub fn run(
    req: &RateRequest,
    channel: Option<Channel>,
    sweep_spec: Option<&SweepSpec>,
    json: bool,
    plot: bool,
) -> Result<RateOutput, RateError> {
    let stdout = match (sweep_spec, channel) {
        (Some(spec), _) => {
            let rows = sweep(req, spec)?;
            if json {
                to_json(&rows)
            } else {
                render_table(&rows)
            }
        }
        (None, Some(ch)) => {
            let r = evaluate(req, ch)?;
            if json { to_json(&r) } else { render_text(&r) }
        }
        (None, None) => String::new(),
    };
    let svg = if plot {
        let rows = sweep(req, sweep_spec.unwrap_or(&DEFAULT_PLOT_SWEEP))?;
        Some(plot_rates(&rows))
    } else {
        None
    };
    Ok(RateOutput { stdout, svg })
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising plain numbers, strings and options cannot fail.
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

/// The honesty line every human-readable output carries (cvqkd-physics.md, honesty note).
pub const SIMULATION_NOTE: &str = "simulated physics: a simulated link gives no quantum security; never call its keys QKD-secured";

/// One operating point as a readable block.
pub fn render_text(r: &RateReport) -> String {
    let p = &r.link;
    let mut s = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "  {k:<22} {v}");
    };
    line("detection", describe_detector(p));
    if let Some(d) = r.distance_km {
        line("distance", format!("{d} km at {} dB/km", r.loss_db_per_km));
    }
    line(
        "transmittance T",
        format!("{:.6e} ({:.2} dB)", p.transmittance, r.loss_db),
    );
    line(
        "excess noise ξ",
        format!("{} SNU (channel input)", p.excess_noise_snu),
    );
    let how = if r.modulation_variance_optimized {
        " (optimised)"
    } else {
        ""
    };
    line(
        "modulation V_A",
        format!("{:.4} SNU{how}", p.modulation_variance_snu),
    );
    line("SNR", format!("{:.6e}", r.asymptotic.snr));
    line("I_AB", format!("{:.6e} bit/pulse", r.asymptotic.i_ab));
    line("χ_BE", format!("{:.6e} bit/pulse", r.asymptotic.chi_be));
    line("β", format!("{}", p.reconciliation_efficiency));
    line(
        "K asymptotic",
        rate_text(
            r.asymptotic.key_rate_bits_per_pulse,
            r.key_rate_bits_per_second,
        ),
    );
    let plob = r
        .plob_bits_per_pulse
        .map_or("∞".into(), |x| format!("{x:.6e} bit/pulse"));
    line("PLOB bound", plob);
    let mut out = format!("GG02 secret key rate, reverse reconciliation\n{s}");
    if let Some(fs) = &r.finite_size {
        out.push_str(&render_finite(fs));
    }
    let _ = writeln!(out, "  ({SIMULATION_NOTE})");
    out
}

fn describe_detector(p: &LinkParams) -> String {
    let trust = if p.trusted_detector {
        "trusted"
    } else {
        "untrusted"
    };
    format!(
        "{}, {trust} detector (η = {}, v_el = {} SNU)",
        p.detection, p.detector_efficiency, p.electronic_noise_snu
    )
}

fn rate_text(k: f64, bps: Option<f64>) -> String {
    let mut s = format!("{k:.6e} bit/pulse");
    if k <= 0.0 {
        s.push_str(" (no key: abort)");
    }
    if let Some(b) = bps {
        let _ = write!(s, ", {b:.6e} bit/s");
    }
    s
}

fn render_finite(fs: &FiniteSizeReport) -> String {
    let (p, r) = (&fs.params, &fs.rate);
    let mut s = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "  {k:<22} {v}");
    };
    line(
        "finite size",
        format!(
            "N = {}, m = {}, n = {}",
            p.block_size, p.pe_samples, r.key_symbols
        ),
    );
    line(
        "  ε (PE, smooth, PA)",
        format!(
            "{:e}, {:e}, {:e}",
            p.epsilon_pe, p.epsilon_smooth, p.epsilon_pa
        ),
    );
    line(
        "  T_min",
        format!("{:.6e} (z = {:.4})", r.transmittance_min, r.z),
    );
    line("  ξ_max", format!("{:.6e} SNU", r.excess_noise_max_snu));
    line(
        "  χ_BE worst case",
        format!("{:.6e} bit/pulse", r.chi_be_worst),
    );
    line("  Δ(n)", format!("{:.6e} bit/symbol", r.delta));
    line(
        "  K_N",
        rate_text(r.key_rate_bits_per_pulse, fs.key_rate_bits_per_second),
    );
    s
}

/// A sweep as a table, one row per distance.
pub fn render_table(rows: &[RateReport]) -> String {
    let fs = rows.first().is_some_and(|r| r.finite_size.is_some());
    let bps = rows
        .first()
        .is_some_and(|r| r.key_rate_bits_per_second.is_some());
    let mut s = format!(
        "{:>8} {:>11} {:>8} {:>11} {:>11} {:>11} {:>11}",
        "L_km", "T", "V_A", "SNR", "I_AB", "chi_BE", "K_asym"
    );
    if fs {
        let _ = write!(s, " {:>11}", "K_N");
    }
    if bps {
        let _ = write!(s, " {:>11}", "bit/s");
    }
    let _ = writeln!(s, " {:>11}", "PLOB");
    rows.iter().for_each(|r| s.push_str(&table_row(r)));
    let _ = writeln!(s, "({SIMULATION_NOTE})");
    s
}

fn table_row(r: &RateReport) -> String {
    let a = &r.asymptotic;
    let mut s = format!(
        "{:>8.2} {:>11.4e} {:>8.3} {:>11.4e} {:>11.4e} {:>11.4e} {:>11.4e}",
        r.distance_km.unwrap_or(f64::NAN),
        r.link.transmittance,
        r.link.modulation_variance_snu,
        a.snr,
        a.i_ab,
        a.chi_be,
        a.key_rate_bits_per_pulse
    );
    if let Some(fs) = &r.finite_size {
        let _ = write!(s, " {:>11.4e}", fs.rate.key_rate_bits_per_pulse);
    }
    let bps = r
        .finite_size
        .and_then(|f| f.key_rate_bits_per_second)
        .or(r.key_rate_bits_per_second);
    if let Some(b) = bps {
        let _ = write!(s, " {b:>11.4e}");
    }
    let plob = r
        .plob_bits_per_pulse
        .map_or("inf".into(), |x| format!("{x:.4e}"));
    let _ = writeln!(s, " {plob:>11}");
    s
}

/// Key rate against distance, log scale, with the PLOB bound for reference.
pub fn plot_rates(rows: &[RateReport]) -> String {
    let pts = |f: &dyn Fn(&RateReport) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| Some((r.distance_km?, f(r).unwrap_or(f64::NAN))))
            .collect()
    };
    let mut series = vec![Series {
        label: "K asymptotic".into(),
        color: PALETTE[0],
        dashed: false,
        points: pts(&|r| Some(r.asymptotic.key_rate_bits_per_pulse)),
    }];
    if rows.iter().any(|r| r.finite_size.is_some()) {
        series.push(Series {
            label: "K finite size".into(),
            color: PALETTE[1],
            dashed: false,
            points: pts(&|r| r.finite_size.map(|f| f.rate.key_rate_bits_per_pulse)),
        });
    }
    series.push(Series {
        label: "PLOB bound".into(),
        color: REFERENCE_COLOR,
        dashed: true,
        points: pts(&|r| r.plob_bits_per_pulse),
    });
    let title = rows.first().map_or(String::new(), |r| {
        format!(
            "GG02 {} ({})",
            describe_detector(&r.link),
            SIMULATION_NOTE_SHORT
        )
    });
    svg_log_plot(&title, "distance (km)", "key rate (bit/pulse)", &series)
}

/// Short form of [`SIMULATION_NOTE`] for the plot title.
const SIMULATION_NOTE_SHORT: &str = "simulated physics";
