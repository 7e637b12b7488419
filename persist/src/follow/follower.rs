//! The follower engine: the same deterministic engine as the appliance's, fed the same journaled
//! commands, so it yields the same events without the hot path ever handing anything over.
//!
//! Start: the newest snapshot at or below the consumer's high-water mark (or a fresh engine if
//! there is none and the journal starts at 1), then a replay up to the mark that the consumer
//! observes without acting on it (the replica and the fan-out feed their views with it, so the
//! orders placed since the snapshot keep their terms).

use std::path::Path;

use crate::Seq;
use crate::segment::list_segments;
use crate::snapshot::{list_snapshots, read_snapshot};
use peregrine_hotpath::{Engine, EngineConfig, Envelope, Event};

use super::FollowError;
use super::tailer::{Tailer, TornRecord};

/// The engine and the journal position it has applied.
#[derive(Debug)]
pub struct Follower {
    /// The engine, at `applied_seq`.
    pub engine: Engine,
    /// Last sequence applied.
    pub applied_seq: Seq,
    /// Where the next command comes from.
    pub tailer: Tailer,
}

/// Builds the follower at `high_water_seq` from the journal in `dir`; `observe` sees each
/// command replayed after the snapshot, with its events.
pub fn start(
    dir: &Path,
    engine_config: &EngineConfig,
    high_water_seq: Seq,
    torn: TornRecord,
    mut observe: impl FnMut(Seq, &Envelope, &[Event]),
) -> Result<Follower, FollowError> {
    let no_start = |reason: String| FollowError::NoStart {
        high_water_seq,
        reason,
    };
    let io_error = |source| FollowError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut start: Option<(Engine, Seq)> = None;
    let mut skipped: Vec<String> = Vec::new();
    for (seq, path) in list_snapshots(dir).map_err(io_error)?.iter().rev() {
        if *seq > high_water_seq {
            continue;
        }
        // A snapshot may vanish under retention between listing and reading: try the next.
        let restored = read_snapshot(path)
            .map_err(|e| e.to_string())
            .and_then(|(_, body)| {
                Engine::restore_within(&body, engine_config).map_err(|e| e.to_string())
            });
        match restored {
            Ok(engine) => {
                start = Some((engine, *seq));
                break;
            }
            Err(reason) => skipped.push(format!("{}: {reason}", path.display())),
        }
    }
    let (engine, snapshot_seq) = match start {
        Some(found) => found,
        None => {
            let first_seq = list_segments(dir)
                .map_err(io_error)?
                .first()
                .map_or(1, |(first_seq, _)| *first_seq);
            if first_seq != 1 {
                return Err(no_start(format!(
                    "no usable snapshot at or below it and the journal starts at {first_seq} \
                     (skipped: {skipped:?})"
                )));
            }
            let engine = Engine::new(engine_config.clone()).map_err(|e| no_start(e.to_owned()))?;
            (engine, 0)
        }
    };
    let mut follower = Follower {
        engine,
        applied_seq: snapshot_seq,
        tailer: Tailer::new(dir, snapshot_seq + 1, torn),
    };
    let mut events: Vec<Event> = Vec::with_capacity(256);
    // Bounded by the high-water mark.
    while follower.applied_seq < high_water_seq {
        let Some((seq, command)) = follower.tailer.next(high_water_seq)? else {
            return Err(no_start(format!(
                "the journal ends at {} before the high-water mark",
                follower.applied_seq
            )));
        };
        events.clear();
        follower.engine.apply(&command, &mut events);
        follower.applied_seq = seq;
        observe(seq, &command, &events);
    }
    Ok(follower)
}
