//! Every way a bench run can fail.

/// Why `peregrine bench` could not produce a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// No workload has this name.
    #[error("unknown workload {name:?}; known workloads: {}", known.join(", "))]
    UnknownWorkload {
        /// The name asked for.
        name: String,
        /// Every registered workload name.
        known: Vec<&'static str>,
    },

    /// A workload-specific flag was given to a workload that does not use it.
    #[error(
        "workload {workload:?} does not use {flag}; flags it supports: {}",
        if supported.is_empty() { "none beyond the common ones".to_owned() } else { supported.join(", ") }
    )]
    UnsupportedFlag {
        /// The chosen workload.
        workload: &'static str,
        /// The flag as typed, e.g. `--shards`.
        flag: &'static str,
        /// The workload-specific flags the workload does use.
        supported: Vec<&'static str>,
    },

    /// A flag's value is out of its bounds.
    #[error("invalid {flag}: {reason}")]
    InvalidArgument {
        /// The flag as typed, e.g. `--duration`.
        flag: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The latency histogram refused a value or a merge (a harness bug: values are clamped to
    /// the trackable range before recording).
    #[error("latency histogram: {0}")]
    Histogram(String),

    /// Printing the report failed (e.g. stdout closed).
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),

    /// Serialising the report failed.
    #[error("serialising the report: {0}")]
    Json(#[from] serde_json::Error),

    /// Drawing a `--report` plot failed (the plotting library's error, as text: its error type
    /// is generic over the drawing backend).
    #[error("drawing the report plots: {0}")]
    Plot(String),

    /// The workload itself failed; `source` carries the other crate's error.
    #[error("workload {workload:?} failed: {source}")]
    Workload {
        /// The workload that failed.
        workload: &'static str,
        /// The underlying error.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl BenchError {
    /// An [`BenchError::InvalidArgument`] for `flag`.
    pub fn invalid(flag: &'static str, reason: impl Into<String>) -> Self {
        BenchError::InvalidArgument {
            flag,
            reason: reason.into(),
        }
    }

    /// A [`BenchError::Workload`] wrapping another crate's error.
    pub fn workload(
        workload: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        BenchError::Workload {
            workload,
            source: source.into(),
        }
    }
}
