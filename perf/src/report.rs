//! The one report shape every workload produces: a human table, or one JSON object.

use std::io::Write;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::BenchError;
use crate::pacer::{PacerStats, SUGGESTED_RATE_SHARE};
use crate::recorder::LatencyRecorder;

/// The result of one bench run, serialised as the JSON object
/// `{"workload", "ops_per_sec", "latency_ns": {"p50","p90","p99","p999","max"}, "floor_ns",
/// "params"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The workload's registry name.
    pub workload: String,
    /// Achieved throughput (not the offered rate, which belongs in `params`).
    pub ops_per_sec: f64,
    /// Latency percentiles in nanoseconds, coordinated-omission corrected for open-loop runs.
    pub latency_ns: LatencySummary,
    /// The physical floor measured in the same run (one fsync, one loopback round trip, one
    /// clock read), or `None` (`null`) where none applies.
    pub floor_ns: Option<u64>,
    /// Everything needed to reproduce or interpret the run: offered rate, duration, shards...
    pub params: Map<String, Value>,
    /// Offered against achieved rate, for paced runs; flattened into the top level.
    #[serde(flatten)]
    pub pacing: Option<Pacing>,
    /// The curves `--report` plots; not part of the JSON.
    #[serde(skip)]
    pub curves: Option<Curves>,
}

/// What the `--report` plots draw, taken from the measured phase's recorder.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Curves {
    /// `(nines, ns)`: [`LatencyRecorder::percentile_curve`].
    pub percentiles: Vec<(f64, u64)>,
    /// `(seconds, ops/s)`: [`LatencyRecorder::throughput_timeline`].
    pub throughput: Vec<(f64, f64)>,
}

/// Whether a paced run kept its offered rate. A saturated run's latencies measure the backlog
/// that grew behind it, not the system: the table and the JSON say so, with a rate to try.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pacing {
    /// The rate asked for.
    pub offered_ops_per_sec: f64,
    /// The rate sends actually left at ([`PacerStats::achieved_ops_per_sec`]).
    pub achieved_ops_per_sec: f64,
    /// Achieved below [`crate::pacer::SATURATED_BELOW_SHARE`] of offered.
    pub saturated: bool,
    /// For a saturated run, a rate below what it achieved, to run again with.
    pub suggested_rate_ops_per_sec: Option<u64>,
}

impl Pacing {
    /// The pacing of a run whose pacer kept `stats`; `None` if it sent nothing.
    pub fn of(stats: &PacerStats) -> Option<Pacing> {
        let achieved_ops_per_sec = stats.achieved_ops_per_sec()?;
        let saturated = stats.saturated();
        Some(Pacing {
            offered_ops_per_sec: stats.offered_ops_per_sec as f64,
            achieved_ops_per_sec,
            saturated,
            suggested_rate_ops_per_sec: saturated
                .then(|| ((achieved_ops_per_sec * SUGGESTED_RATE_SHARE) as u64).max(1)),
        })
    }

    /// The loud line a saturated run gets under its table (and on stderr in JSON mode).
    pub fn warning(&self) -> Option<String> {
        let suggested = self.suggested_rate_ops_per_sec?;
        Some(format!(
            "SATURATED: offered {:.0} ops/s but sends left at {:.0} ops/s ({:.0} %); the \
             latencies above measure the backlog, not the system. Run again with --rate {suggested}.",
            self.offered_ops_per_sec,
            self.achieved_ops_per_sec,
            100.0 * self.achieved_ops_per_sec / self.offered_ops_per_sec,
        ))
    }
}

/// Latency percentiles in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value recorded.
    pub max: u64,
}

impl Report {
    /// A report with no params yet; add them with [`Report::with_param`].
    pub fn new(
        workload: &str,
        ops_per_sec: f64,
        latency_ns: LatencySummary,
        floor_ns: Option<u64>,
    ) -> Self {
        // serde_json would print a non-finite float as `null`, breaking the report's shape.
        assert!(
            ops_per_sec.is_finite() && ops_per_sec >= 0.0,
            "ops_per_sec: {ops_per_sec}"
        );
        assert!(!workload.is_empty());
        Report {
            workload: workload.to_owned(),
            ops_per_sec,
            latency_ns,
            floor_ns,
            params: Map::new(),
            pacing: None,
            curves: None,
        }
    }

    /// Keeps the measured phase's latency and throughput curves for `--report`.
    pub fn with_recorder(mut self, recorder: &LatencyRecorder) -> Self {
        self.curves = Some(Curves {
            percentiles: recorder.percentile_curve(),
            throughput: recorder.throughput_timeline(),
        });
        self
    }

    /// Records whether the measured phase kept its offered rate (see [`Pacing`]).
    pub fn with_pacing(mut self, stats: &PacerStats) -> Self {
        self.pacing = Pacing::of(stats);
        self
    }

    /// Adds (or replaces) one parameter.
    pub fn with_param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    /// The report as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> Result<String, BenchError> {
        Ok(serde_json::to_string(self)?)
    }

    /// The report as a two-line human table with latencies in adaptive units.
    pub fn to_table(&self) -> String {
        let latency = &self.latency_ns;
        let cells: [(&str, String); 9] = [
            ("workload", self.workload.clone()),
            ("ops/s", format_ops_per_sec(self.ops_per_sec)),
            ("p50", format_ns(latency.p50)),
            ("p90", format_ns(latency.p90)),
            ("p99", format_ns(latency.p99)),
            ("p99.9", format_ns(latency.p999)),
            ("max", format_ns(latency.max)),
            (
                "floor",
                self.floor_ns.map_or_else(|| "-".to_owned(), format_ns),
            ),
            ("params", format_params(&self.params)),
        ];
        let mut header = String::new();
        let mut row = String::new();
        let last = cells.len() - 1;
        for (index, (name, value)) in cells.iter().enumerate() {
            if index == last {
                // The last column is free width: no padding, no trailing spaces.
                header.push_str(name);
                row.push_str(value);
            } else {
                let width = name.chars().count().max(value.chars().count());
                header.push_str(&format!("{name:<width$}  "));
                row.push_str(&format!("{value:<width$}  "));
            }
        }
        match self.pacing.and_then(|p| p.warning()) {
            Some(warning) => format!("{header}\n{row}\n{warning}\n"),
            None => format!("{header}\n{row}\n"),
        }
    }

    /// Prints the report on stdout: the table, or with `json` exactly one JSON object and a
    /// newline.
    pub fn print(&self, json: bool) -> Result<(), BenchError> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        self.write_to(&mut out, json)
    }

    /// Writes the report as [`Report::print`] would.
    pub fn write_to(&self, out: &mut impl Write, json: bool) -> Result<(), BenchError> {
        if json {
            writeln!(out, "{}", self.to_json()?)?;
            if let Some(warning) = self.pacing.and_then(|p| p.warning()) {
                // Stdout stays one JSON object; the person watching still hears it.
                eprintln!("{warning}");
            }
        } else {
            write!(out, "{}", self.to_table())?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Formats nanoseconds in the largest unit (ns, µs, ms, s) that keeps the value at least 1, with
/// three significant figures as the histogram keeps.
pub fn format_ns(value_ns: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("µs", 1e3), ("ms", 1e6), ("s", 1e9)];
    if value_ns < 1_000 {
        return format!("{value_ns} ns");
    }
    let mut formatted = String::new();
    for (unit, scale_ns) in UNITS {
        let scaled = value_ns as f64 / scale_ns;
        // Rounding to 2 decimals could print "1000.00 µs": move up a unit instead.
        formatted = format!("{scaled:.2} {unit}");
        if scaled < 999.995 {
            break;
        }
    }
    formatted
}

/// Formats a throughput with one decimal, which is more than its run-to-run precision.
fn format_ops_per_sec(ops_per_sec: f64) -> String {
    format!("{ops_per_sec:.1}")
}

/// Formats params as `key=value` pairs; strings unquoted.
fn format_params(params: &Map<String, Value>) -> String {
    let pairs: Vec<String> = params
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect();
    if pairs.is_empty() {
        "-".to_owned()
    } else {
        pairs.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(floor_ns: Option<u64>) -> Report {
        let latency_ns = LatencySummary {
            p50: 120,
            p90: 1_500,
            p99: 2_500_000,
            p999: 3_000_000_000,
            max: 4_000_000_000,
        };
        Report::new("noop", 49_999.5, latency_ns, floor_ns)
            .with_param("rate_ops_per_sec", 50_000_u64)
            .with_param("duration_s", 5.0)
            .with_param("ack", "durable")
    }

    fn keys(object: &Map<String, Value>) -> Vec<&str> {
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn json_has_exactly_the_required_keys_and_types() {
        for floor_ns in [Some(21), None] {
            let mut out = Vec::new();
            sample(floor_ns).write_to(&mut out, true).unwrap();
            let text = String::from_utf8(out).unwrap();
            // One object, one line.
            assert_eq!(text.lines().count(), 1);
            assert!(text.ends_with('\n'));
            let value: Value = serde_json::from_str(&text).unwrap();
            let object = value.as_object().unwrap();
            assert_eq!(
                keys(object),
                [
                    "floor_ns",
                    "latency_ns",
                    "ops_per_sec",
                    "params",
                    "workload"
                ]
            );
            assert_eq!(object["workload"], "noop");
            assert!(object["ops_per_sec"].is_number());
            assert_eq!(object["ops_per_sec"].as_f64(), Some(49_999.5));
            let latency = object["latency_ns"].as_object().unwrap();
            assert_eq!(keys(latency), ["max", "p50", "p90", "p99", "p999"]);
            assert!(latency.values().all(Value::is_u64), "{latency:?}");
            assert_eq!(latency["p999"], 3_000_000_000_u64);
            match floor_ns {
                Some(floor_ns) => assert_eq!(object["floor_ns"].as_u64(), Some(floor_ns)),
                None => assert!(object["floor_ns"].is_null()),
            }
            let params = object["params"].as_object().unwrap();
            assert_eq!(params["rate_ops_per_sec"], 50_000);
            assert_eq!(params["ack"], "durable");
        }
    }

    #[test]
    fn table_uses_adaptive_units() {
        let table = sample(Some(21)).to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        for header in [
            "workload", "ops/s", "p50", "p90", "p99", "p99.9", "max", "floor", "params",
        ] {
            assert!(lines[0].contains(header), "{table}");
        }
        for cell in [
            "noop", "49999.5", "120 ns", "1.50 µs", "2.50 ms", "3.00 s", "21 ns",
        ] {
            assert!(lines[1].contains(cell), "{table}");
        }
        // Param order follows serde_json's map (sorted unless `preserve_order` is on).
        for pair in ["rate_ops_per_sec=50000", "duration_s=5.0", "ack=durable"] {
            assert!(lines[1].contains(pair), "{table}");
        }
        assert!(
            sample(None)
                .to_table()
                .lines()
                .nth(1)
                .unwrap()
                .contains(" - ")
        );
    }

    #[test]
    fn a_saturated_run_says_so_under_its_table_with_a_lower_rate() {
        let mut report = sample(None);
        report.pacing = Some(Pacing {
            offered_ops_per_sec: 1e6,
            achieved_ops_per_sec: 4e5,
            saturated: true,
            suggested_rate_ops_per_sec: Some(320_000),
        });
        let table = report.to_table();
        let warning = table.lines().nth(2).unwrap();
        assert!(warning.starts_with("SATURATED"), "{table}");
        assert!(warning.contains("--rate 320000"), "{table}");
        report.pacing = Some(Pacing {
            saturated: false,
            suggested_rate_ops_per_sec: None,
            ..report.pacing.unwrap()
        });
        assert_eq!(report.to_table().lines().count(), 2);
    }

    #[test]
    fn format_ns_picks_the_unit() {
        assert_eq!(format_ns(0), "0 ns");
        assert_eq!(format_ns(999), "999 ns");
        assert_eq!(format_ns(1_000), "1.00 µs");
        assert_eq!(format_ns(999_999), "1.00 ms");
        assert_eq!(format_ns(12_345_678), "12.35 ms");
        assert_eq!(format_ns(3_600_000_000_000), "3600.00 s");
    }
}
