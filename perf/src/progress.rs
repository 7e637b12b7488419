//! The progress bar on stderr, shown only where a person is watching a run long enough to wonder.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Runs shorter than this finish before anyone wonders whether they hang: no bar.
pub const PROGRESS_DURATION_MIN: Duration = Duration::from_secs(3);

const PROGRESS_TEMPLATE: &str = "{prefix} {msg:>9} [{wide_bar}] {percent:>3}%";

/// A progress bar over a run's wall-clock time (warmup plus measurement), in milliseconds.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for a run of `total` labelled `workload`; hidden when `json` (stdout is for a
    /// machine, and so probably is stderr), when stderr is not a terminal, or when the run is
    /// shorter than [`PROGRESS_DURATION_MIN`].
    pub fn new(workload: &str, total: Duration, json: bool) -> Self {
        if json || total < PROGRESS_DURATION_MIN || !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let total_ms = u64::try_from(total.as_millis()).unwrap_or(u64::MAX);
        let bar = ProgressBar::with_draw_target(Some(total_ms), ProgressDrawTarget::stderr());
        // The template is a constant; should it ever fail to parse, the default style still works.
        if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(workload.to_owned());
        Progress { bar }
    }

    /// A bar that never draws.
    pub fn hidden() -> Self {
        Progress {
            bar: ProgressBar::hidden(),
        }
    }

    /// Whether the bar draws anything.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// Names the current phase (`warmup`, `measuring`).
    pub fn set_phase(&self, phase: &'static str) {
        self.bar.set_message(phase);
    }

    /// Moves the bar to `elapsed` since the run started.
    pub fn set_elapsed(&self, elapsed: Duration) {
        self.bar
            .set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
    }

    /// Removes the bar so the report starts on a clean line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_in_json_mode_and_for_short_runs() {
        assert!(Progress::new("noop", Duration::from_secs(60), true).is_hidden());
        assert!(Progress::new("noop", Duration::from_millis(100), false).is_hidden());
        // Under `cargo test` stderr is usually captured (not a terminal): hidden too.
        if !std::io::stderr().is_terminal() {
            assert!(Progress::new("noop", Duration::from_secs(60), false).is_hidden());
        }
    }
}
