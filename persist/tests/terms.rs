//! Journal format 3: every record carries the term of the leader that sequenced it (the fencing
//! token a standby checks). Format-2 journals, written by the release before it, are still read
//! (their records have term 0) and appended to; replay gives the same events in both formats;
//! terms never decrease along a journal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{engine_config, flow_commands, small_config};
use peregrine_hotpath::{Envelope, Event};
use peregrine_persist::follow::{Tailer, TornRecord};
use peregrine_persist::payload::{self, Scratch};
use peregrine_persist::record;
use peregrine_persist::segment::{SegmentHeader, list_segments};
use peregrine_persist::{JournalConfig, JournalError, RecoveryError, Seq, open, recover_observed};

/// A journal of 300 commands (the seeded flow, seed 7) written by the format-2 writer, the
/// release before terms, in three 16 KiB segments with snapshots off. How it was made:
/// `tests/fixtures/journal-format-2/README.md`.
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/journal-format-2"
);
const FIXTURE_RECORDS: u64 = 300;

/// A copy of the fixture's segments in a fresh directory (recovery writes to it).
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (_, path) in list_segments(Path::new(FIXTURE)).unwrap() {
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn fixture_config(dir: &Path) -> JournalConfig {
    let mut config = small_config(dir);
    config.segment_bytes = 16 << 10;
    config
}

type Replayed = Vec<(Seq, Envelope, Vec<Event>)>;

/// Recovers the journal of `config`: every command replayed, with its events.
fn replay(config: &JournalConfig) -> (Replayed, Seq, Option<u64>) {
    let mut replayed = Vec::new();
    let recovered = recover_observed(config, engine_config(), &mut |seq, command, events| {
        replayed.push((seq, command.clone(), events.to_vec()));
    })
    .unwrap();
    (replayed, recovered.last_seq, recovered.tail.last_term)
}

/// The terms of the journal's records, in sequence order.
fn record_terms(dir: &Path) -> Vec<u64> {
    let mut tailer = Tailer::new(dir, 1, TornRecord::IsEnd);
    let mut terms = Vec::new();
    while tailer.next(u64::MAX).unwrap().is_some() {
        terms.push(tailer.term());
    }
    terms
}

fn segment_formats(dir: &Path) -> Vec<u16> {
    list_segments(dir)
        .unwrap()
        .iter()
        .map(|(_, path)| {
            let bytes = std::fs::read(path).unwrap();
            SegmentHeader::parse(&bytes).unwrap().format_version
        })
        .collect()
}

#[test]
fn a_format_2_journal_is_read_and_the_writer_goes_on_in_format_3() {
    let dir = fixture_copy();
    let config = fixture_config(dir.path());
    assert_eq!(
        segment_formats(dir.path()),
        [2, 2, 2],
        "not the format-2 fixture"
    );
    let (replayed, last_seq, last_term) = replay(&config);
    assert_eq!(
        (replayed.len() as u64, last_seq),
        (FIXTURE_RECORDS, FIXTURE_RECORDS)
    );
    assert_eq!(last_term, Some(0), "format-2 records have term 0");
    let (recovered, writer) = open(&config, engine_config()).unwrap();
    assert_eq!(recovered.last_seq, FIXTURE_RECORDS);
    assert_eq!(writer.journal().term(), 0);
    // A leader of term 4 goes on: format-3 records after the format-2 ones, in the same
    // segment, then in new segments of format 3.
    assert_eq!(writer.journal().raise_term(4), 4);
    for command in &flow_commands(8, 200)[..200] {
        writer.journal().append(command).unwrap();
    }
    assert_eq!(writer.shutdown().unwrap(), FIXTURE_RECORDS + 200);
    let formats = segment_formats(dir.path());
    assert_eq!(formats[..3], [2, 2, 2]);
    assert!(
        formats.len() > 3 && formats[3..].iter().all(|&f| f == 3),
        "{formats:?}"
    );
    let terms = record_terms(dir.path());
    assert_eq!(terms.len() as u64, FIXTURE_RECORDS + 200);
    assert!(terms[..300].iter().all(|&t| t == 0) && terms[300..].iter().all(|&t| t == 4));
    // Recovery reads both, and resumes the writer at term 4.
    let (replayed, last_seq, last_term) = replay(&config);
    assert_eq!((replayed.len(), last_seq, last_term), (500, 500, Some(4)));
    let (_, writer) = open(&config, engine_config()).unwrap();
    assert_eq!(writer.journal().term(), 4);
    writer.shutdown().unwrap();
}

#[test]
fn replay_gives_the_same_events_from_format_2_and_format_3_records() {
    let fixture = fixture_copy();
    let (from_format_2, _, _) = replay(&fixture_config(fixture.path()));
    // The same commands at the same sequences, copied into a format-3 journal under term 9.
    let copy = tempfile::tempdir().unwrap();
    let config = fixture_config(copy.path());
    let (_, writer) = open(&config, engine_config()).unwrap();
    let mut scratch = Scratch::new();
    for (seq, command, _) in &from_format_2 {
        payload::encode(command, &mut scratch).unwrap();
        assert_eq!(
            writer
                .journal()
                .append_sequenced(*seq, 9, &scratch)
                .unwrap(),
            *seq
        );
    }
    writer.shutdown().unwrap();
    assert!(segment_formats(copy.path()).iter().all(|&f| f == 3));
    let (from_format_3, last_seq, last_term) = replay(&config);
    assert_eq!((last_seq, last_term), (FIXTURE_RECORDS, Some(9)));
    assert!(
        from_format_2.iter().any(|(_, _, events)| events.len() > 1),
        "the fixture's flow must trade"
    );
    assert!(
        from_format_2 == from_format_3,
        "replay differs between formats"
    );
}

#[test]
fn terms_never_decrease_along_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let commands = flow_commands(9, 40);
    let (_, writer) = open(&config, engine_config()).unwrap();
    let journal = writer.journal();
    assert_eq!(journal.raise_term(6), 6);
    for command in &commands[..10] {
        journal.append(command).unwrap();
    }
    // An older term changes nothing: later appends keep term 6.
    assert_eq!(journal.raise_term(2), 6);
    for command in &commands[10..20] {
        journal.append(command).unwrap();
    }
    // A sequenced record of an older term is refused and nothing is appended.
    let mut scratch = Scratch::new();
    payload::encode(&commands[20], &mut scratch).unwrap();
    assert!(matches!(
        journal.append_sequenced(21, 5, &scratch),
        Err(JournalError::StaleTerm {
            seq: 21,
            term: 5,
            newest: 6
        })
    ));
    assert_eq!(journal.appended_seq(), 20);
    assert_eq!(writer.shutdown().unwrap(), 20);
    assert_eq!(record_terms(dir.path()), vec![6; 20]);
    // A record of term 1 spliced after them (a deposed primary's) is refused by recovery.
    let (path, offset) = tail_of(dir.path());
    let mut framed = Vec::new();
    record::encode(&mut framed, 21, 1, &scratch);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&framed, offset).unwrap();
    drop(file);
    let error = recover_observed(&config, engine_config(), &mut |_, _, _| {}).unwrap_err();
    assert!(
        matches!(&error, RecoveryError::Corrupt { offset: at, .. } if *at == offset),
        "{error:?}"
    );
    assert!(error.to_string().contains("term 1, older"), "{error}");
}

/// The newest segment and the offset after its last record.
fn tail_of(dir: &Path) -> (std::path::PathBuf, u64) {
    let (_, path) = list_segments(dir).unwrap().pop().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let mut offset = peregrine_persist::segment::SEGMENT_HEADER_BYTES;
    while let record::Parsed::Record { record_bytes, .. } = record::parse(&bytes[offset..]) {
        offset += record_bytes;
    }
    (path, offset as u64)
}
