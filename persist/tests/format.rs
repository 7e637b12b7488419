//! Journal format 2: versioned segment and record headers, versioned snapshots, and actors that
//! survive the journal. A file of a format this release does not read stops recovery with one
//! line naming the file, the version found and the versions supported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{engine_config, flow_commands, small_config};
use peregrine_hotpath::{
    AccountId, Actor, ApiKeyId, CommandKind, Envelope, OperatorId, Service, TimestampNs, UserId,
};
use peregrine_persist::crc32c::Crc32c;
use peregrine_persist::format::{JOURNAL_FORMAT_VERSION, release};
use peregrine_persist::segment::{SEGMENT_HEADER_BYTES, SegmentHeader, list_segments};
use peregrine_persist::snapshot::{list_snapshots, read_snapshot};
use peregrine_persist::{
    JournalConfig, JournalError, RecoveryError, Snapshotter, open, recover, recover_observed,
};

/// Writes `commands` to a fresh journal in `dir` and closes it.
fn write_journal(config: &JournalConfig, commands: &[Envelope]) {
    let (_, writer) = open(config, engine_config()).unwrap();
    for command in commands {
        // Busy is back-pressure: wait for the writer to make room.
        while let Err(error) = writer.journal().append(command) {
            assert!(matches!(error, JournalError::Busy { .. }), "{error}");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    assert_eq!(writer.shutdown().unwrap(), commands.len() as u64);
}

fn first_segment(dir: &Path) -> PathBuf {
    list_segments(dir).unwrap().remove(0).1
}

#[test]
fn every_segment_opens_with_a_header_naming_format_and_release() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: the flow rotates through several.
    write_journal(&small_config(dir.path()), &flow_commands(1, 3_000));
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments.len() > 2, "the test must rotate");
    for (_, path) in segments {
        let bytes = std::fs::read(&path).unwrap();
        let header = SegmentHeader::parse(&bytes).unwrap();
        assert_eq!(header.format_version, JOURNAL_FORMAT_VERSION);
        assert_eq!(header.release, release());
        // The rest of the header block is zero; the first record starts after it.
        assert!(bytes[64..SEGMENT_HEADER_BYTES].iter().all(|&b| b == 0));
        assert_ne!(bytes[SEGMENT_HEADER_BYTES], 0, "no record after the header");
    }
}

#[test]
fn a_journal_of_an_unknown_version_is_refused_naming_file_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    write_journal(&config, &flow_commands(2, 100));
    let path = first_segment(dir.path());
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&9_u16.to_le_bytes(), 8).unwrap();
    drop(file);
    let error = recover(&config, engine_config()).unwrap_err();
    assert!(
        matches!(&error, RecoveryError::Version { found: 9, path: p, .. } if *p == path),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("format version 9"), "{message}");
    assert!(message.contains("reads 2"), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
}

#[test]
fn a_journal_of_format_1_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    write_journal(&config, &flow_commands(3, 50));
    let path = first_segment(dir.path());
    // Format 1 had no header: a record header (u32 length, CRC, sequence 1) at byte 0.
    let mut format_1 = vec![0_u8; SEGMENT_HEADER_BYTES];
    format_1[..4].copy_from_slice(&40_u32.to_le_bytes());
    format_1[8..16].copy_from_slice(&1_u64.to_le_bytes());
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&format_1, 0).unwrap();
    drop(file);
    let error = recover(&config, engine_config()).unwrap_err();
    assert!(
        matches!(error, RecoveryError::Version { found: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn a_segment_with_a_damaged_header_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    write_journal(&config, &flow_commands(4, 50));
    let path = first_segment(dir.path());
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // A byte of the release name: the header's checksum no longer matches.
    file.write_all_at(b"X", 20).unwrap();
    drop(file);
    let error = recover(&config, engine_config()).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, RecoveryError::Corrupt { offset: 0, .. }),
        "{message}"
    );
    assert!(message.contains("checksum"), "{message}");
}

/// A journal with a snapshot after the first half of `commands`.
fn journal_with_snapshot(config: &mut JournalConfig, commands: &[Envelope]) -> PathBuf {
    config.snapshot_every_commands = (commands.len() / 2) as u64;
    let (recovered, writer) = open(config, engine_config()).unwrap();
    let mut engine = recovered.engine;
    let mut snapshotter = Snapshotter::start(config, writer.journal().clone(), 0);
    let mut events = Vec::new();
    for command in commands {
        let seq = writer.journal().append(command).unwrap();
        engine.apply(command, &mut events);
        events.clear();
        snapshotter.maybe_take(&engine, seq).unwrap();
    }
    snapshotter.finish().unwrap();
    writer.shutdown().unwrap();
    let mut snapshots = list_snapshots(&config.dir).unwrap();
    assert!(!snapshots.is_empty(), "the test needs a snapshot");
    snapshots.pop().unwrap().1
}

#[test]
fn a_snapshot_of_an_unknown_version_stops_recovery_instead_of_being_skipped() {
    for (offset, bytes, what) in [
        (6_u64, b"09".to_vec(), "snapshot format version 9"),
        (
            24,
            99_u32.to_le_bytes().to_vec(),
            "snapshot engine image format version 99",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(dir.path());
        let path = journal_with_snapshot(&mut config, &flow_commands(5, 400));
        read_snapshot(&path).unwrap();
        let mut file_bytes = std::fs::read(&path).unwrap();
        let at = offset as usize;
        file_bytes[at..at + bytes.len()].copy_from_slice(&bytes);
        // A well-formed file of that version: its checksum (over bytes 8..60 and the body)
        // matches, so it is the version, not damage, that recovery must refuse.
        let crc = Crc32c::new()
            .update(&file_bytes[8..60])
            .update(&file_bytes[64..])
            .finish();
        file_bytes[60..64].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &file_bytes).unwrap();
        let error = recover(&config, engine_config()).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, RecoveryError::Version { .. }), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(what), "{message}");
    }
}

#[test]
fn actors_come_back_from_the_journal_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let actors = [
        Actor::System,
        Actor::ApiKey(ApiKeyId(u64::MAX)),
        Actor::ApiKey(ApiKeyId::of_key(b"rest-key")),
        Actor::User(UserId(12)),
        Actor::Operator(OperatorId(3)),
        Actor::Service(Service::Wallet),
        Actor::Service(Service::Identity),
    ];
    let commands: Vec<Envelope> = actors
        .iter()
        .enumerate()
        .map(|(index, actor)| Envelope {
            ts: TimestampNs(1_000 + index as u64),
            actor: *actor,
            kind: CommandKind::KillSwitch {
                account: AccountId(1),
                on: index % 2 == 0,
            },
        })
        .collect();
    write_journal(&config, &commands);
    let mut seen = Vec::new();
    recover_observed(&config, engine_config(), &mut |_, command, _| {
        seen.push(command.clone());
    })
    .unwrap();
    assert_eq!(seen, commands);
}
