//! A small self-written SVG line plot with a logarithmic y axis, for key rate against
//! distance. No plotting crate: the document is a few paths, lines and labels.
//!
//! It is drawn in the style of the demo's report (`scripts/lib/report.py`): the same palette,
//! font, background, grid, tick and legend classes, so a rate plot sits beside the report's
//! charts as one of them (a test below checks that the two stay the same).

use std::fmt::Write as _;

/// Canvas width, px.
const WIDTH: f64 = 800.0;
/// Canvas height, px.
const HEIGHT: f64 = 520.0;
/// Plot area margins, px: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (80.0, 170.0, 40.0, 60.0);
/// At most this many decades are shown below the largest value.
const MAX_DECADES: f64 = 12.0;

/// The series colours, in order: the demo report's palette (`COLORS` in
/// `scripts/lib/report.py`).
pub const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];
/// The colour of a reference curve (a bound, not a measurement).
pub const REFERENCE_COLOR: &str = "#555555";

/// The demo report's chart style (its `<style>` rules for the chart classes).
pub const STYLE: &str = "svg { font: 14px/1.4 system-ui, sans-serif; color: #222; } \
.title { font-size: 13px; font-weight: 600; } .tick { font-size: 10px; fill: #666; } \
.legend { font-size: 11px; } .grid { stroke: #e5e5e5; }";

/// One curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Stroke colour (CSS).
    pub color: &'static str,
    /// Dashed stroke.
    pub dashed: bool,
    /// (x, y) points; y ≤ 0 or non-finite breaks the curve (not drawable on a log axis).
    pub points: Vec<(f64, f64)>,
}

/// The axis ranges: x linear, y in whole decades (log10).
struct Frame {
    x: (f64, f64),
    y_dec: (f64, f64),
}

impl Frame {
    fn fit(series: &[Series]) -> Frame {
        let all = || series.iter().flat_map(|s| s.points.iter());
        let xs = all().map(|p| p.0).filter(|x| x.is_finite());
        let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |a, x| {
            (a.0.min(x), a.1.max(x))
        });
        let ys = all().map(|p| p.1).filter(|y| y.is_finite() && *y > 0.0);
        let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |a, y| {
            (a.0.min(y), a.1.max(y))
        });
        let (x0, x1) = if x0 < x1 {
            (x0, x1)
        } else {
            (0.0, x0.max(0.0) + 1.0)
        };
        let (y0, y1) = if y0 <= y1 { (y0, y1) } else { (1e-6, 1.0) };
        let top = y1.log10().ceil();
        let bottom = y0.log10().floor().max(top - MAX_DECADES).min(top - 1.0);
        Frame {
            x: (x0, x1),
            y_dec: (bottom, top),
        }
    }

    fn px(&self, x: f64) -> f64 {
        let w = WIDTH - MARGIN.0 - MARGIN.1;
        MARGIN.0 + (x - self.x.0) / (self.x.1 - self.x.0) * w
    }

    fn py(&self, y: f64) -> f64 {
        let h = HEIGHT - MARGIN.2 - MARGIN.3;
        let d = y.log10().clamp(self.y_dec.0, self.y_dec.1);
        MARGIN.2 + (self.y_dec.1 - d) / (self.y_dec.1 - self.y_dec.0) * h
    }
}

/// An SVG document plotting `series` with a log-scale y axis.
pub fn svg_log_plot(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let f = Frame::fit(series);
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         font-family=\"system-ui, sans-serif\" font-size=\"12\">\n\
         <style>{STYLE}</style>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fafafa\" stroke=\"#ddd\"/>\n"
    );
    axes(&mut s, &f, title, x_label, y_label);
    for (i, ser) in series.iter().enumerate() {
        curve(&mut s, &f, ser);
        legend(&mut s, i, ser);
    }
    s.push_str("</svg>\n");
    s
}

fn axes(s: &mut String, f: &Frame, title: &str, x_label: &str, y_label: &str) {
    let (l, r, b, t) = (MARGIN.0, WIDTH - MARGIN.1, HEIGHT - MARGIN.3, MARGIN.2);
    let _ = writeln!(
        s,
        "<rect x=\"{l}\" y=\"{t}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
        r - l,
        b - t
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"24\" text-anchor=\"middle\" class=\"title\">{}</text>",
        (l + r) / 2.0,
        escape(title)
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        (l + r) / 2.0,
        HEIGHT - 15.0,
        escape(x_label)
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(20 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (t + b) / 2.0,
        escape(y_label)
    );
    for d in (f.y_dec.0 as i32)..=(f.y_dec.1 as i32) {
        let y = f.py(10f64.powi(d));
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" y1=\"{y:.1}\" x2=\"{r}\" y2=\"{y:.1}\" class=\"grid\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tick\">1e{d}</text>",
            l - 6.0,
            y + 4.0
        );
    }
    for x in nice_ticks(f.x.0, f.x.1) {
        let px = f.px(x);
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{b}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#999\"/>",
            b + 5.0
        );
        let _ = writeln!(
            s,
            "<text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{x}</text>",
            b + 20.0
        );
    }
}

/// Tick positions at 1, 2 or 5 × 10^k, about 5–10 of them.
fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 8.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|st| *st >= raw)
        .unwrap_or(mag * 10.0);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn curve(s: &mut String, f: &Frame, ser: &Series) {
    let mut d = String::new();
    let mut pen_down = false;
    for &(x, y) in &ser.points {
        if !(x.is_finite() && y.is_finite() && y > 0.0 && y.log10() >= f.y_dec.0) {
            pen_down = false;
            continue;
        }
        let _ = write!(
            d,
            "{}{:.2},{:.2} ",
            if pen_down { "L" } else { "M" },
            f.px(x),
            f.py(y)
        );
        pen_down = true;
    }
    let dash = if ser.dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash}/>",
        d.trim_end(),
        ser.color
    );
}

fn legend(s: &mut String, i: usize, ser: &Series) {
    let (x, y) = (WIDTH - MARGIN.1 + 15.0, MARGIN.2 + 20.0 + 20.0 * i as f64);
    let dash = if ser.dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2\"{dash}/>",
        x + 25.0,
        ser.color
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" class=\"legend\" fill=\"{}\">{}</text>",
        x + 30.0,
        y + 4.0,
        ser.color,
        escape(&ser.label)
    );
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_curves_at_non_positive_values() {
        let ser = Series {
            label: "k".into(),
            color: "red",
            dashed: false,
            points: vec![
                (0.0, 1.0),
                (1.0, 0.1),
                (2.0, -1.0),
                (3.0, 0.01),
                (4.0, 0.001),
            ],
        };
        let svg = svg_log_plot("t", "x", "y", &[ser]);
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        let path = svg.lines().find(|l| l.starts_with("<path")).unwrap();
        assert_eq!(path.matches('M').count(), 2, "{path}");
    }

    /// The rate plot keeps the demo report's look: the palette and the chart classes'
    /// rules are the ones `scripts/lib/report.py` writes.
    #[test]
    fn matches_the_demo_reports_style() {
        let py = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib/report.py"),
        )
        .unwrap();
        let colors = py
            .lines()
            .find_map(|l| l.strip_prefix("COLORS = "))
            .expect("report.py has COLORS");
        let quoted: Vec<String> = PALETTE.iter().map(|c| format!("\"{c}\"")).collect();
        assert_eq!(colors, format!("[{}]", quoted.join(", ")));
        for class in [".title", ".tick", ".legend", ".grid"] {
            let rule = |css: &str| {
                let at = css.find(&format!("{class} {{"))?;
                let end = css[at..].find('}')?;
                Some(css[at..at + end].replace("{{", "{"))
            };
            let theirs = rule(&py).unwrap_or_else(|| panic!("report.py styles {class}"));
            assert_eq!(rule(STYLE), Some(theirs), "{class}");
        }
        let svg = svg_log_plot("t", "x", "y", &[]);
        assert!(svg.contains(STYLE) && svg.contains("fill=\"#fafafa\""));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            nice_ticks(0.0, 100.0),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
    }
}
