//! The command line of `peregrine bench <workload>`: common flags every workload honours and
//! optional workload-specific flags that only the workloads declaring them accept.

use std::time::Duration;

use crate::error::BenchError;

/// Default measured duration of a run, in seconds: long enough for a stable p99 at the default
/// rates, short enough to run often.
pub const DURATION_DEFAULT_S: u64 = 5;
/// Default warmup before measuring, in seconds: lets caches, branch predictors and CPU frequency
/// settle before the first recorded operation.
pub const WARMUP_DEFAULT_S: u64 = 1;
/// Default seed for workloads that generate randomised input.
pub const SEED_DEFAULT: u64 = 0x5EED;

/// Upper bound on `--duration` and `--warmup`: a run is bounded like every other loop.
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 60 * 60);
/// Upper bound on `--rate`: one operation per nanosecond is past anything a single pacer can
/// schedule, so a larger value is a typo.
pub const RATE_MAX_OPS_PER_SEC: u64 = 1_000_000_000;

/// Arguments of `peregrine bench <workload>`; flatten into the binary's subcommand.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BenchArgs {
    /// Workload to run (e.g. `noop`); an unknown name lists the known ones.
    pub workload: String,

    /// Print exactly one JSON object on stdout instead of the human table.
    #[arg(long)]
    pub json: bool,

    /// Also write the report to DIR: `report.json`, `latency.png` (latency by percentile on a
    /// "nines" axis, HDR style) and `throughput.png` (completions per second over the run).
    #[arg(long, value_name = "DIR")]
    pub report: Option<std::path::PathBuf>,

    /// Target offered rate in operations per second; 0 or absent means the workload's default.
    #[arg(long = "rate", value_name = "OPS_PER_SEC")]
    pub rate_ops_per_sec: Option<u64>,

    /// Measured duration in seconds (decimals allowed).
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub duration: Duration,

    /// Warmup before measuring, in seconds (decimals allowed; 0 disables).
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds)]
    pub warmup: Duration,

    /// Seed for randomised input; used by workloads that support it.
    #[arg(long, value_name = "U64")]
    pub seed: Option<u64>,

    /// Number of matching shards; used by workloads that support it.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// Commands per batch submitted to a batched pipeline; used by workloads that support it.
    #[arg(long = "batch", value_name = "COMMANDS")]
    pub batch_commands: Option<usize>,

    /// When an order is acknowledged; used by workloads that support it.
    #[arg(long, value_name = "MODE")]
    pub ack: Option<AckMode>,

    /// Shape of the generated order flow; used by workloads that support it.
    #[arg(long, value_name = "SHAPE")]
    pub flow: Option<FlowArg>,

    /// Database server to replicate into (`mysql://user@host:port/name`; the run works in a
    /// fresh database `<name>_<pid>` it drops afterwards); used by workloads that support it.
    /// Absent: `DATABASE_URL`, then `mysql://root@127.0.0.1:3306/peregrine_bench`.
    #[arg(long = "database-url", value_name = "URL")]
    pub database_url: Option<String>,

    /// Subscribers (e.g. WebSocket connections) to fan out to; used by workloads that support
    /// it.
    #[arg(long, value_name = "N")]
    pub subscribers: Option<usize>,

    /// Bridge processes to spread the subscribers over; used by workloads that support it.
    #[arg(long, value_name = "M")]
    pub bridges: Option<usize>,

    /// Repetitions of a whole scenario (e.g. failovers); used by workloads that support it.
    #[arg(long, value_name = "N")]
    pub cycles: Option<u64>,
}

/// When the gateway acknowledges an order (`--ack`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckMode {
    /// After the journal entry is durable (fsync'd, and replicated where configured).
    Durable,
    /// As soon as the order is sequenced, before it is durable.
    Fast,
    /// After the journal entry is durable here and in a standby's journal (`e2e`: an
    /// in-process standby over mutual TLS on loopback).
    Replicated,
}

/// The order flow a workload generates (`--flow`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowArg {
    /// Random-walk mid, power-law depth, cancels, replaces, IOC and market orders.
    Realistic,
    /// The realistic flow with the mid swept to twice its level and back every cycle.
    FlashCrash,
}

impl FlowArg {
    /// The generator's shape for this flow.
    pub fn shape(self) -> peregrine_hotpath::sim::FlowShape {
        match self {
            FlowArg::Realistic => peregrine_hotpath::sim::FlowShape::Realistic,
            FlowArg::FlashCrash => peregrine_hotpath::sim::FlowShape::FLASH_CRASH,
        }
    }

    /// The name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FlowArg::Realistic => "realistic",
            FlowArg::FlashCrash => "flash-crash",
        }
    }
}

/// A workload-specific flag: a workload accepts it only if it declares it in its
/// [`Workload::flags`](crate::Workload::flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkloadFlag {
    /// `--rate`: only open-loop workloads have an offered rate.
    Rate,
    /// `--seed`: only workloads with randomised input use it.
    Seed,
    /// `--shards`.
    Shards,
    /// `--batch`.
    Batch,
    /// `--ack`.
    Ack,
    /// `--database-url`.
    DatabaseUrl,
    /// `--flow`.
    Flow,
    /// `--subscribers`.
    Subscribers,
    /// `--bridges`.
    Bridges,
    /// `--cycles`.
    Cycles,
}

impl WorkloadFlag {
    /// The flag as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadFlag::Rate => "--rate",
            WorkloadFlag::Seed => "--seed",
            WorkloadFlag::Shards => "--shards",
            WorkloadFlag::Batch => "--batch",
            WorkloadFlag::Ack => "--ack",
            WorkloadFlag::DatabaseUrl => "--database-url",
            WorkloadFlag::Flow => "--flow",
            WorkloadFlag::Subscribers => "--subscribers",
            WorkloadFlag::Bridges => "--bridges",
            WorkloadFlag::Cycles => "--cycles",
        }
    }
}

impl BenchArgs {
    /// The arguments `peregrine bench <workload>` would have with no flags: for tests and for
    /// workloads that run other workloads.
    pub fn new(workload: impl Into<String>) -> Self {
        BenchArgs {
            workload: workload.into(),
            json: false,
            report: None,
            rate_ops_per_sec: None,
            duration: Duration::from_secs(DURATION_DEFAULT_S),
            warmup: Duration::from_secs(WARMUP_DEFAULT_S),
            seed: None,
            shards: None,
            batch_commands: None,
            ack: None,
            flow: None,
            database_url: None,
            subscribers: None,
            bridges: None,
            cycles: None,
        }
    }

    /// Checks the common flags against their bounds (the value parser checks the command line;
    /// this also covers arguments built in code).
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.duration.is_zero() {
            return Err(BenchError::invalid("--duration", "must be greater than 0"));
        }
        if self.duration > DURATION_MAX {
            return Err(BenchError::invalid(
                "--duration",
                "must be at most 24 hours",
            ));
        }
        if self.warmup > DURATION_MAX {
            return Err(BenchError::invalid("--warmup", "must be at most 24 hours"));
        }
        if self
            .rate_ops_per_sec
            .is_some_and(|rate| rate > RATE_MAX_OPS_PER_SEC)
        {
            return Err(BenchError::invalid("--rate", "must be at most 1e9 ops/s"));
        }
        if self.shards == Some(0) {
            return Err(BenchError::invalid("--shards", "must be at least 1"));
        }
        if self.batch_commands == Some(0) {
            return Err(BenchError::invalid("--batch", "must be at least 1"));
        }
        if self.subscribers == Some(0) {
            return Err(BenchError::invalid("--subscribers", "must be at least 1"));
        }
        if self.bridges == Some(0) {
            return Err(BenchError::invalid("--bridges", "must be at least 1"));
        }
        if self.cycles == Some(0) {
            return Err(BenchError::invalid("--cycles", "must be at least 1"));
        }
        Ok(())
    }

    /// The offered rate: `--rate` if given and non-zero, else the workload's default.
    pub fn rate_or(&self, default_ops_per_sec: u64) -> Result<std::num::NonZeroU64, BenchError> {
        let rate_ops_per_sec = match self.rate_ops_per_sec {
            Some(rate) if rate > 0 => rate,
            _ => default_ops_per_sec,
        };
        std::num::NonZeroU64::new(rate_ops_per_sec.min(RATE_MAX_OPS_PER_SEC))
            .ok_or_else(|| BenchError::invalid("--rate", "the workload default rate is 0"))
    }

    /// The seed: `--seed` if given, else [`SEED_DEFAULT`].
    pub fn seed_or_default(&self) -> u64 {
        self.seed.unwrap_or(SEED_DEFAULT)
    }

    /// The workload-specific flags given on the command line, in declaration order.
    pub fn workload_flags_given(&self) -> Vec<WorkloadFlag> {
        // Destructure every field (no `..`): adding a field to `BenchArgs` fails to compile here
        // until it is classified as common or workload-specific.
        let BenchArgs {
            workload: _,
            json: _,
            report: _,
            rate_ops_per_sec,
            duration: _,
            warmup: _,
            seed,
            shards,
            batch_commands,
            ack,
            flow,
            database_url,
            subscribers,
            bridges,
            cycles,
        } = self;
        let given = [
            (rate_ops_per_sec.is_some(), WorkloadFlag::Rate),
            (seed.is_some(), WorkloadFlag::Seed),
            (shards.is_some(), WorkloadFlag::Shards),
            (batch_commands.is_some(), WorkloadFlag::Batch),
            (ack.is_some(), WorkloadFlag::Ack),
            (flow.is_some(), WorkloadFlag::Flow),
            (database_url.is_some(), WorkloadFlag::DatabaseUrl),
            (subscribers.is_some(), WorkloadFlag::Subscribers),
            (bridges.is_some(), WorkloadFlag::Bridges),
            (cycles.is_some(), WorkloadFlag::Cycles),
        ];
        given
            .into_iter()
            .filter(|(is_given, _)| *is_given)
            .map(|(_, flag)| flag)
            .collect()
    }
}

/// Parses a non-negative, finite number of seconds (`5`, `0.25`) into a [`Duration`] of at most
/// [`DURATION_MAX`].
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!(
            "{text:?} must be a finite, non-negative number of seconds"
        ));
    }
    if seconds > DURATION_MAX.as_secs_f64() {
        return Err(format!("{text:?} exceeds the 24-hour bound"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// Stands in for the `peregrine` binary's subcommand.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(argv: &[&str]) -> Result<BenchArgs, clap::Error> {
        let argv = std::iter::once("bench").chain(argv.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.bench)
    }

    #[test]
    fn defaults_match_new() {
        assert_eq!(parse(&["noop"]).unwrap(), BenchArgs::new("noop"));
    }

    #[test]
    fn parses_every_flag() {
        let args = parse(&[
            "matching",
            "--json",
            "--rate",
            "1000",
            "--duration",
            "0.25",
            "--warmup",
            "0",
            "--seed",
            "7",
            "--shards",
            "4",
            "--batch",
            "256",
            "--ack",
            "durable",
            "--flow",
            "flash-crash",
            "--database-url",
            "mysql://root@127.0.0.1:3306/bench",
            "--subscribers",
            "100",
            "--bridges",
            "3",
        ])
        .unwrap();
        assert!(args.json);
        assert_eq!(args.rate_ops_per_sec, Some(1000));
        assert_eq!(args.duration, Duration::from_millis(250));
        assert_eq!(args.warmup, Duration::ZERO);
        assert_eq!(args.seed, Some(7));
        assert_eq!(args.shards, Some(4));
        assert_eq!(args.batch_commands, Some(256));
        assert_eq!(args.ack, Some(AckMode::Durable));
        assert_eq!(args.flow, Some(FlowArg::FlashCrash));
        assert_eq!(
            args.database_url.as_deref(),
            Some("mysql://root@127.0.0.1:3306/bench")
        );
        assert_eq!(
            args.workload_flags_given(),
            vec![
                WorkloadFlag::Rate,
                WorkloadFlag::Seed,
                WorkloadFlag::Shards,
                WorkloadFlag::Batch,
                WorkloadFlag::Ack,
                WorkloadFlag::Flow,
                WorkloadFlag::DatabaseUrl,
                WorkloadFlag::Subscribers,
                WorkloadFlag::Bridges
            ]
        );
    }

    #[test]
    fn rejects_bad_seconds() {
        assert!(parse(&["noop", "--duration", "-1"]).is_err());
        assert!(parse(&["noop", "--duration", "abc"]).is_err());
        assert!(parse(&["noop", "--duration", "inf"]).is_err());
        assert!(parse(&["noop", "--ack", "sometimes"]).is_err());
        let zero = parse(&["noop", "--duration", "0"]).unwrap();
        assert!(matches!(
            zero.validate(),
            Err(BenchError::InvalidArgument { .. })
        ));
        let zero_batch = parse(&["matching", "--batch", "0"]).unwrap();
        assert!(matches!(
            zero_batch.validate(),
            Err(BenchError::InvalidArgument {
                flag: "--batch",
                ..
            })
        ));
    }

    #[test]
    fn rate_zero_or_absent_means_default() {
        let mut args = BenchArgs::new("noop");
        assert_eq!(args.rate_or(123).unwrap().get(), 123);
        args.rate_ops_per_sec = Some(0);
        assert_eq!(args.rate_or(123).unwrap().get(), 123);
        args.rate_ops_per_sec = Some(9);
        assert_eq!(args.rate_or(123).unwrap().get(), 9);
    }
}
