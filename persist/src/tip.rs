//! The journal's durable tip: a witness, outside the segments, of how far the journal was
//! durable. A helper thread writes [`Journal::durable_seq`] to `durable.tip` about once a
//! second, and durably once more at shutdown; since it only ever records sequences already
//! durable, a recovery that ends below the tip has lost acknowledged commands (a zeroed page,
//! a deleted segment), and refuses to start instead of reusing their sequences and order ids
//! (see `RecoveryError::LostTail`). A tip never exceeds the journal's durable end, so it never
//! refuses a sound journal.
//!
//! The periodic writes go to the page cache without a device flush, which would queue behind
//! (and ahead of) the journal's own durable writes on the same device for no gain in safety:
//! they survive a crash or kill of the appliance; only a power loss may take the last ones,
//! which then leaves the loss of the commands of the seconds before it undetected, never a
//! false alarm. Commands acknowledged in the last second before the damage are not covered
//! either. (A suspected p99.9 cost of the flush was measured and ruled out: `perf/RESULTS.md`,
//! session 5.)

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::marker::MarkerFile;
use crate::writer::{Journal, Seq};

/// The tip's file in the journal directory.
pub const TIP_FILE: &str = "durable.tip";
/// How often the tip is written while commits go on: one small synced write per interval.
pub const TIP_INTERVAL: Duration = Duration::from_secs(1);
/// How often the helper checks for shutdown between writes.
const TIP_POLL: Duration = Duration::from_millis(20);
const _: () = assert!(TIP_POLL.as_nanos() < TIP_INTERVAL.as_nanos());

/// The sequence recorded in `dir`'s tip, if any was written.
pub fn read_tip(dir: &Path) -> Result<Option<Seq>, crate::marker::MarkerError> {
    MarkerFile::read(&dir.join(TIP_FILE))
}

/// The helper thread that keeps the tip.
#[derive(Debug)]
pub(crate) struct TipKeeper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TipKeeper {
    /// Starts keeping the tip of `journal` in `dir`; `recovered_seq` is where the journal
    /// starts (already covered, so not written again).
    pub(crate) fn start(
        dir: &Path,
        journal: Journal,
        recovered_seq: Seq,
    ) -> std::io::Result<TipKeeper> {
        let (marker, _) = MarkerFile::open(&dir.join(TIP_FILE)).map_err(std::io::Error::other)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("journal-tip".to_owned())
            .spawn(move || keep(&marker, &journal, recovered_seq, &thread_stop))?;
        Ok(TipKeeper {
            stop,
            thread: Some(thread),
        })
    }

    /// Writes the final tip and stops; call once the writer has made everything durable.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TipKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn keep(marker: &MarkerFile, journal: &Journal, recovered_seq: Seq, stop: &AtomicBool) {
    let mut written = recovered_seq;
    let mut last_write = Instant::now();
    // Bounded by the stop flag, checked every poll.
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if stopping || last_write.elapsed() >= TIP_INTERVAL {
            let durable = journal.durable_seq();
            if durable > written {
                // Flushed to the device only at shutdown (see the module doc).
                let written_now = if stopping {
                    marker.write_durable(durable)
                } else {
                    marker.write(durable)
                };
                match written_now {
                    Ok(()) => written = durable,
                    Err(_) => {
                        journal
                            .stats()
                            .tip_write_failures
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            last_write = Instant::now();
        }
        if stopping {
            return;
        }
        std::thread::sleep(TIP_POLL);
    }
}
