//! The tailer reads journal format 2 (segment headers, actors) and refuses other formats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::FileExt;

use peregrine_hotpath::sim::{Flow, FlowParams};
use peregrine_hotpath::{Actor, EngineConfig, OperatorId};
use peregrine_persist::JournalConfig;
use peregrine_persist::follow::FollowError;
use peregrine_persist::follow::{Tailer, TornRecord};
use peregrine_persist::segment::list_segments;

/// A closed journal of `count` flow commands in several small segments, every third command
/// by an operator.
fn journal(dir: &std::path::Path, count: usize) -> Vec<peregrine_hotpath::Envelope> {
    let mut config = JournalConfig::new(dir);
    config.segment_bytes = 64 << 10;
    let (_, writer) = peregrine_persist::open(&config, EngineConfig::small()).unwrap();
    let mut flow = Flow::new(FlowParams::default());
    let mut commands = flow.setup();
    while commands.len() < count {
        commands.push(flow.next_command());
    }
    commands.truncate(count);
    for (index, command) in commands.iter_mut().enumerate() {
        if index % 3 == 0 {
            command.actor = Actor::Operator(OperatorId(2));
        }
        while writer.journal().append(command).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    writer.shutdown().unwrap();
    commands
}

#[test]
fn reads_every_command_across_segment_headers_with_its_actor() {
    let dir = tempfile::tempdir().unwrap();
    let written = journal(dir.path(), 2_000);
    assert!(list_segments(dir.path()).unwrap().len() > 2, "must rotate");
    let mut tailer = Tailer::new(dir.path(), 1, TornRecord::IsEnd);
    let mut read = Vec::new();
    while let Some((seq, command)) = tailer.next(u64::MAX).unwrap() {
        assert_eq!(seq, read.len() as u64 + 1);
        read.push(command);
    }
    assert_eq!(read, written);
}

#[test]
fn a_segment_of_another_format_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    journal(dir.path(), 100);
    let (_, path) = list_segments(dir.path()).unwrap().remove(0);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&7_u16.to_le_bytes(), 8).unwrap();
    drop(file);
    let mut tailer = Tailer::new(dir.path(), 1, TornRecord::IsEnd);
    let error = tailer.next(u64::MAX).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, FollowError::Journal { path: p, offset: 0, .. } if *p == path),
        "{message}"
    );
    assert!(message.contains("journal format version 7"), "{message}");
}
