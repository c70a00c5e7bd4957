//! Prometheus text exposition (format 0.0.4): the one place that writes `# HELP` / `# TYPE`
//! lines and samples, so no part formats exposition text by hand. Each part keeps its own
//! counters (atomics, maps) and appends them to the `/metrics` body through these helpers.

use std::fmt::{Display, Write};

/// A metric family's type, as written on its `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Starts a family: its `# HELP` line (left out when `help` is empty) and its `# TYPE` line.
/// Samples follow through [`sample`] or [`histogram`].
pub fn family(out: &mut String, name: &str, kind: Kind, help: &str) {
    if !help.is_empty() {
        let _ = writeln!(out, "# HELP {name} {help}");
    }
    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
}

/// One sample line: `name{k="v",...} value` (no braces without labels). Label values are
/// escaped as the format asks (backslash, double quote, newline).
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl Display) {
    out.push_str(name);
    write_labels(out, labels);
    let _ = writeln!(out, " {value}");
}

/// A whole family with one label: help and type, then a sample per (label value, value).
pub fn by_label<L: AsRef<str>, V: Display>(
    out: &mut String,
    (name, kind, help): (&str, Kind, &str),
    label: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) {
    family(out, name, kind, help);
    for (value_of_label, value) in samples {
        sample(out, name, &[(label, value_of_label.as_ref())], value);
    }
}

/// A whole unlabelled counter family: help, type and its one sample.
pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, Kind::Counter, help);
    sample(out, name, &[], value);
}

/// A whole unlabelled gauge family: help, type and its one sample.
pub fn gauge(out: &mut String, name: &str, help: &str, value: impl Display) {
    family(out, name, Kind::Gauge, help);
    sample(out, name, &[], value);
}

/// The samples of one labelled histogram series (the family line is written once, before):
/// `_bucket` per upper bound with `cumulative[i]` observations at or below `bounds[i]`, the
/// `+Inf` bucket, `_sum` and `_count`.
pub fn histogram(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    bounds: &[f64],
    cumulative: &[u64],
    sum: f64,
    count: u64,
) {
    let bucket = format!("{name}_bucket");
    let les: Vec<String> = bounds.iter().map(f64::to_string).collect();
    for (le, n) in les
        .iter()
        .map(String::as_str)
        .chain(["+Inf"])
        .zip(cumulative.iter().chain([&count]))
    {
        let mut with_le = labels.to_vec();
        with_le.push(("le", le));
        sample(out, &bucket, &with_le, n);
    }
    sample(out, &format!("{name}_sum"), labels, sum);
    sample(out, &format!("{name}_count"), labels, count);
}

fn write_labels(out: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_gauge_write_help_type_and_sample() {
        let mut out = String::new();
        counter(&mut out, "x_total", "Things.", 3);
        gauge(&mut out, "y", "", 1.5);
        assert_eq!(
            out,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n# TYPE y gauge\ny 1.5\n"
        );
    }

    #[test]
    fn labels_are_joined_and_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("a", "1"), ("b", "q\"\\\n")], 7);
        assert_eq!(out, "m{a=\"1\",b=\"q\\\"\\\\\\n\"} 7\n");
    }

    #[test]
    fn by_label_writes_one_sample_per_label_value() {
        let mut out = String::new();
        let samples = [("hit", 1), ("miss", 2)];
        by_label(&mut out, ("c_total", Kind::Counter, ""), "result", samples);
        assert_eq!(
            out,
            "# TYPE c_total counter\nc_total{result=\"hit\"} 1\nc_total{result=\"miss\"} 2\n"
        );
    }

    #[test]
    fn histogram_writes_buckets_inf_sum_and_count() {
        let mut out = String::new();
        family(&mut out, "h", Kind::Histogram, "Latency.");
        histogram(
            &mut out,
            "h",
            &[("r", "/")],
            &[0.001, 10.0],
            &[1, 2],
            0.5,
            3,
        );
        assert_eq!(
            out,
            "# HELP h Latency.\n# TYPE h histogram\n\
             h_bucket{r=\"/\",le=\"0.001\"} 1\nh_bucket{r=\"/\",le=\"10\"} 2\n\
             h_bucket{r=\"/\",le=\"+Inf\"} 3\nh_sum{r=\"/\"} 0.5\nh_count{r=\"/\"} 3\n"
        );
    }
}
