//! The few system-level pieces the journal needs: 4 KiB-aligned buffers for `O_DIRECT`,
//! preallocation, directory sync, and one io_uring submission that makes a write durable.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use io_uring::{IoUring, opcode, squeue, types};

/// `O_DIRECT` I/O moves whole blocks from block-aligned buffers to block-aligned offsets. 4 KiB
/// is the page size and a multiple of every logical block size in use.
pub const BLOCK_BYTES: usize = 4_096;

/// Bound on the resubmissions of one write cut short by the kernel: a durable write that makes
/// no progress this many times is an I/O error, not a reason to spin.
const SHORT_WRITE_RETRIES_MAX: u32 = 16;
/// Longest a spinning writer polls the completion queue before it blocks in the kernel after
/// all: a device that slow is stalled, and burning the core longer buys nothing.
const COMPLETION_SPIN_MAX: std::time::Duration = std::time::Duration::from_millis(10);

/// How a write is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMethod {
    /// One write SQE with `RWF_DSYNC`: the completion means durable (one submission, one
    /// completion, no second operation for io_uring to punt to a worker). With `O_DIRECT` on a
    /// preallocated, zero-filled file this is the fastest measured here (`perf/RESULTS.md`),
    /// hence the default.
    WriteDsync,
    /// A write SQE linked to an `fdatasync` SQE: two operations, one submission.
    WriteThenFdatasync,
    /// Plain `pwrite` + `fdatasync` system calls on the writer thread (no io_uring): the
    /// baseline io_uring is measured against.
    PwriteFdatasync,
}

/// A buffer whose usable part starts at a [`BLOCK_BYTES`] boundary, allocated once. Built from a
/// plain `Vec` over-allocated by one block, so no `unsafe` allocation code is needed.
#[derive(Debug)]
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    capacity_bytes: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `capacity_bytes` (rounded up to whole blocks).
    pub fn new(capacity_bytes: usize) -> AlignedBuf {
        let capacity_bytes = capacity_bytes
            .next_multiple_of(BLOCK_BYTES)
            .max(BLOCK_BYTES);
        let storage = vec![0_u8; capacity_bytes + BLOCK_BYTES];
        let start = storage.as_ptr().align_offset(BLOCK_BYTES);
        assert!(start < BLOCK_BYTES, "a u8 pointer can always be aligned");
        AlignedBuf {
            storage,
            start,
            capacity_bytes,
        }
    }

    /// Usable bytes.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// The aligned bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.capacity_bytes]
    }

    /// The aligned bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.capacity_bytes]
    }
}

/// Opens `path` for journal writes: `O_DIRECT` so a write goes to the device without a page-cache
/// copy (and so its durability costs one device write, not a writeback of dirty pages).
pub fn open_direct(path: &Path, create_new: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create_new)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(path)
}

/// Reserves `len_bytes` for `file` (so a write never fails for lack of space and never grows the
/// file's size, which would be a metadata change to sync on every commit).
pub fn fallocate(file: &File, len_bytes: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
    // SAFETY: plain syscall on a file descriptor we own for the duration of the call.
    let result = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes a directory's entries (created, renamed, deleted files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One io_uring instance, owned by one thread.
pub struct Uring {
    ring: IoUring,
    /// Poll the completion queue instead of sleeping in `io_uring_enter` (see
    /// [`crate::WriterIdle::Spin`]).
    spin: bool,
}

impl std::fmt::Debug for Uring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uring").finish_non_exhaustive()
    }
}

impl Uring {
    /// A ring with room for a write and its sync; the thread sleeps while a write is in flight.
    pub fn new() -> io::Result<Uring> {
        Uring::with_spin(false)
    }

    /// [`Uring::new`], polling for completions when `spin` (up to a bound, then sleeping): the
    /// completion is seen without a thread wake-up.
    pub fn with_spin(spin: bool) -> io::Result<Uring> {
        Ok(Uring {
            ring: IoUring::new(8)?,
            spin,
        })
    }

    /// Writes `bytes` at `offset` of `file` and returns once they are durable. With `O_DIRECT`,
    /// `bytes`, `offset` and the length must be block-aligned.
    pub fn write_durable(
        &mut self,
        file: &File,
        bytes: &[u8],
        offset: u64,
        method: SyncMethod,
    ) -> io::Result<()> {
        if method == SyncMethod::PwriteFdatasync {
            use std::os::unix::fs::FileExt;
            file.write_all_at(bytes, offset)?;
            return file.sync_data();
        }
        let fd = types::Fd(file.as_raw_fd());
        let mut done_bytes = 0_usize;
        for _ in 0..SHORT_WRITE_RETRIES_MAX {
            let rest = &bytes[done_bytes..];
            let rest_len = u32::try_from(rest.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "write too large"))?;
            let write =
                opcode::Write::new(fd, rest.as_ptr(), rest_len).offset(offset + done_bytes as u64);
            let (write, sync) = match method {
                SyncMethod::WriteDsync => (write.rw_flags(libc::RWF_DSYNC).build(), None),
                SyncMethod::WriteThenFdatasync | SyncMethod::PwriteFdatasync => (
                    write.build().flags(squeue::Flags::IO_LINK),
                    Some(
                        opcode::Fsync::new(fd)
                            .flags(types::FsyncFlags::DATASYNC)
                            .build(),
                    ),
                ),
            };
            let wanted = 1 + usize::from(sync.is_some());
            // SAFETY: `rest` (and `file`) outlive the operations: this function waits for every
            // completion below before returning or touching the buffer again.
            unsafe {
                let mut submission = self.ring.submission();
                submission
                    .push(&write.user_data(0))
                    .map_err(|_| io::Error::other("io_uring submission queue full"))?;
                if let Some(sync) = &sync {
                    submission
                        .push(&sync.clone().user_data(1))
                        .map_err(|_| io::Error::other("io_uring submission queue full"))?;
                }
            }
            let spin_deadline = if self.spin {
                self.ring.submit()?;
                Some(std::time::Instant::now() + COMPLETION_SPIN_MAX)
            } else {
                self.ring.submit_and_wait(wanted)?;
                None
            };
            let mut written: Option<i32> = None;
            let mut synced: Option<i32> = None;
            let mut seen = 0;
            // Bounded: the ring holds at most `wanted` completions of ours, and spinning for
            // them ends at `spin_deadline`, after which each pass blocks until one arrives.
            while seen < wanted {
                let Some(entry) = self.ring.completion().next() else {
                    match spin_deadline {
                        Some(deadline) if std::time::Instant::now() < deadline => {
                            // Yield, not a bare spin: completing a durable write can take a
                            // kernel worker bound to this core (the device's interrupt core),
                            // which a busy loop would hold off for a whole scheduler tick.
                            std::thread::yield_now();
                        }
                        _ => {
                            self.ring.submit_and_wait(wanted - seen)?;
                        }
                    }
                    continue;
                };
                seen += 1;
                if entry.user_data() == 0 {
                    written = Some(entry.result());
                } else {
                    synced = Some(entry.result());
                }
            }
            let written = written.unwrap_or(-libc::EIO);
            if written < 0 {
                return Err(io::Error::from_raw_os_error(-written));
            }
            done_bytes += written as usize;
            if done_bytes < bytes.len() {
                // Short write: the linked sync was cancelled or covered only part; go again.
                continue;
            }
            match synced {
                Some(result) if result < 0 && result != -libc::ECANCELED => {
                    return Err(io::Error::from_raw_os_error(-result));
                }
                Some(result) if result < 0 => {
                    // The sync was cancelled by the link: sync on its own.
                    file.sync_data()?;
                }
                _ => {}
            }
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "durable write made no progress",
        ))
    }
}

/// Fills `file` with zeros from `offset` for `len_bytes`, in whole blocks, durably. Writing the
/// zeros (not only `fallocate`) turns ext4's "unwritten" extents into written ones, so a later
/// `O_DIRECT` + `RWF_DSYNC` overwrite needs no extent conversion and hence no filesystem journal
/// commit: measured ~1.6x cheaper per durable 4 KiB write here (~60 us against ~100 us with
/// `fallocate` alone; `perf/RESULTS.md`).
pub fn zero_fill(file: &File, offset: u64, len_bytes: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    /// One megabyte per write: few syscalls, a small buffer.
    const CHUNK_BYTES: usize = 1 << 20;
    let zeros = AlignedBuf::new(CHUNK_BYTES);
    let mut done = 0_u64;
    while done < len_bytes {
        let chunk = (len_bytes - done).min(CHUNK_BYTES as u64) as usize;
        file.write_all_at(&zeros.bytes()[..chunk], offset + done)?;
        done += chunk as u64;
    }
    file.sync_data()
}
