//! The Prometheus text exposition format (version 0.0.4), written by hand: metric
//! families with HELP and TYPE lines, escaped label values, integers without a fraction.
//! The KME ([`crate::kme::prometheus`]) and the daemon ([`crate::daemon::prometheus`]) both
//! write their metrics with it.

use std::fmt::Write;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One sample: label pairs and the value.
pub type Sample = (Vec<(&'static str, String)>, f64);

/// The text of one scrape.
#[derive(Default)]
pub struct Exposition {
    /// The text so far.
    pub out: String,
}

impl Exposition {
    /// A metric family: HELP, TYPE, then its samples (nothing when it has none).
    pub fn family(&mut self, name: &str, kind: &str, help: &str, samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.sample(name, &labels, value);
        }
    }
}

/// One histogram series: its labels, cumulative counts per upper bound (`"+Inf"` last), the
/// sum of the observations and their count.
pub type HistogramSeries = (Vec<(&'static str, String)>, Vec<(String, u64)>, f64, u64);

impl Exposition {
    /// A histogram family: `NAME_bucket{…,le}`, `NAME_sum`, `NAME_count` per series.
    pub fn histogram(&mut self, name: &str, help: &str, series: Vec<HistogramSeries>) {
        if series.is_empty() {
            return;
        }
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} histogram");
        for (labels, buckets, sum, count) in series {
            for (le, n) in buckets {
                let mut l = labels.clone();
                l.push(("le", le));
                self.sample(&format!("{name}_bucket"), &l, n as f64);
            }
            self.sample(&format!("{name}_sum"), &labels, sum);
            self.sample(&format!("{name}_count"), &labels, count as f64);
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&'static str, String)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// A label value escaped as the format wants (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A value: integers without a fraction, the rest as Rust prints them.
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_integers_have_no_fraction() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::NAN), "NaN");
        let mut e = Exposition::default();
        e.family("x_total", "counter", "X.", vec![]);
        assert_eq!(e.out, "", "a family without samples is left out");
        e.family(
            "x_total",
            "counter",
            "X.",
            vec![(vec![("peer", "p\"q".into())], 2.0)],
        );
        assert_eq!(
            e.out,
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{peer=\"p\\\"q\"} 2\n"
        );
    }
}
