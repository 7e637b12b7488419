//! Progress on stderr for runs long enough to wonder about: a bar on a terminal, and plain
//! periodic lines (`bench matching: open loop 40 % (2.0 s of 5.0 s)`) where stderr is a file or a
//! pipe (CI logs, `2>run.log`), which a bar's carriage returns would garble.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Runs shorter than this finish before anyone wonders whether they hang: no bar.
pub const PROGRESS_DURATION_MIN: Duration = Duration::from_secs(3);

/// Time between two progress lines when stderr is not a terminal.
pub const PROGRESS_LINE_PERIOD: Duration = Duration::from_secs(1);

const PROGRESS_TEMPLATE: &str = "{prefix} {msg:>9} [{wide_bar}] {percent:>3}%";

/// Progress over a run's wall-clock time (warmup plus measurement): a bar, lines, or nothing.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    lines: Option<Arc<Mutex<Lines>>>,
}

/// The state of line mode.
#[derive(Debug)]
struct Lines {
    workload: String,
    total: Duration,
    phase: &'static str,
    printed_last: Option<Instant>,
}

impl Progress {
    /// Progress for a run of `total` labelled `workload`: nothing for runs shorter than
    /// [`PROGRESS_DURATION_MIN`]; periodic lines when stderr is not a terminal; a bar on a
    /// terminal, except with `json` (a person piping stdout to a tool keeps a clean screen).
    pub fn new(workload: &str, total: Duration, json: bool) -> Self {
        if total < PROGRESS_DURATION_MIN {
            return Progress::hidden();
        }
        if !std::io::stderr().is_terminal() {
            return Progress::lines(workload, total);
        }
        if json {
            return Progress::hidden();
        }
        let total_ms = u64::try_from(total.as_millis()).unwrap_or(u64::MAX);
        let bar = ProgressBar::with_draw_target(Some(total_ms), ProgressDrawTarget::stderr());
        // The template is a constant; should it ever fail to parse, the default style still works.
        if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(workload.to_owned());
        Progress { bar, lines: None }
    }

    /// Progress that prints a line at most every [`PROGRESS_LINE_PERIOD`].
    pub fn lines(workload: &str, total: Duration) -> Self {
        Progress {
            bar: ProgressBar::hidden(),
            lines: Some(Arc::new(Mutex::new(Lines {
                workload: workload.to_owned(),
                total,
                phase: "running",
                printed_last: None,
            }))),
        }
    }

    /// Progress that shows nothing.
    pub fn hidden() -> Self {
        Progress {
            bar: ProgressBar::hidden(),
            lines: None,
        }
    }

    /// Whether nothing is shown.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden() && self.lines.is_none()
    }

    /// Whether progress is shown as periodic lines.
    pub fn is_lines(&self) -> bool {
        self.lines.is_some()
    }

    /// Names the current phase (`warmup`, `measuring`).
    pub fn set_phase(&self, phase: &'static str) {
        self.bar.set_message(phase);
        if let Some(lines) = &self.lines {
            lines.lock().unwrap_or_else(PoisonError::into_inner).phase = phase;
        }
    }

    /// Moves the bar to `elapsed` since the run started (or prints a line when one is due).
    pub fn set_elapsed(&self, elapsed: Duration) {
        self.bar
            .set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        if let Some(lines) = &self.lines {
            let mut lines = lines.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let due = lines
                .printed_last
                .is_none_or(|last| now.duration_since(last) >= PROGRESS_LINE_PERIOD);
            if due {
                lines.printed_last = Some(now);
                let share = 100.0 * elapsed.as_secs_f64() / lines.total.as_secs_f64().max(1e-9);
                // Progress is best effort: a closed stderr must not stop a run.
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "bench {}: {} {:.0} % ({:.1} s of {:.1} s)",
                    lines.workload,
                    lines.phase,
                    share.min(100.0),
                    elapsed.as_secs_f64(),
                    lines.total.as_secs_f64()
                );
            }
        }
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
    fn hidden_for_short_runs_and_lines_off_a_terminal() {
        assert!(Progress::new("noop", Duration::from_millis(100), false).is_hidden());
        assert!(Progress::new("noop", Duration::from_millis(100), true).is_hidden());
        // Under `cargo test` stderr is captured (not a terminal): lines, JSON mode or not.
        if !std::io::stderr().is_terminal() {
            for json in [false, true] {
                let progress = Progress::new("noop", Duration::from_secs(60), json);
                assert!(progress.is_lines() && !progress.is_hidden());
            }
        }
    }
}
