//! Free space in the data directory: refusing writes while it is full, and noticing when it
//! is back.
//!
//! Two ways in. Before each write transaction the free space is looked at (at most once a
//! second): below `[storage] min_free_space` writes are refused with [`StoreError::DiskFull`]
//! before redb sees them. And a write that fails for lack of space anyway (another process
//! filled the disk between two looks) marks the directory full too; redb then refuses every
//! later transaction until the database is closed and opened again, which
//! [`super::Db::watch_space`] does once space is back. While full, callers answer 503 with
//! `Retry-After`, `/health/ready` says degraded, and the log says so every
//! [`LOG_EVERY`] rather than once per request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::StoreError;
use crate::limit::LogEvery;

/// How often the free space is looked at while writes go on, and while full.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often the "disk full" warning may repeat.
pub const LOG_EVERY: Duration = Duration::from_secs(30);
/// What clients are told to wait (Retry-After) while the disk is full.
pub const RETRY_AFTER_SECS: u64 = 30;

pub struct Space {
    dir: PathBuf,
    min_free: AtomicU64,
    full: AtomicBool,
    /// redb hit an I/O error and must be opened again before it writes (or reads) anything.
    reopen: AtomicBool,
    epoch: Instant,
    /// Milliseconds after `epoch` of the last look, plus one (0: never looked).
    checked: AtomicU64,
    /// Free bytes at the last look.
    free: AtomicU64,
    /// Writes refused since start.
    refused: AtomicU64,
    log: LogEvery,
}

/// Whether an I/O error means the file system is out of space (or quota).
pub fn is_no_space(e: &std::io::Error) -> bool {
    // ENOSPC, EDQUOT on Linux; `StorageFull` where std maps it.
    matches!(e.raw_os_error(), Some(28) | Some(122))
        || e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
}

impl Space {
    pub fn new(dir: PathBuf) -> Self {
        Space {
            dir,
            min_free: AtomicU64::new(0),
            full: AtomicBool::new(false),
            reopen: AtomicBool::new(false),
            epoch: Instant::now(),
            checked: AtomicU64::new(0),
            free: AtomicU64::new(u64::MAX),
            refused: AtomicU64::new(0),
            log: LogEvery::new(LOG_EVERY),
        }
    }

    /// Writes are refused while fewer than `bytes` are free (0: only when a write failed).
    pub fn set_min_free(&self, bytes: u64) {
        self.min_free.store(bytes, Ordering::Relaxed);
    }

    pub fn min_free(&self) -> u64 {
        self.min_free.load(Ordering::Relaxed)
    }

    /// Whether the data directory is marked full (no new look).
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    pub(super) fn needs_reopen(&self) -> bool {
        self.reopen.load(Ordering::Acquire)
    }

    /// Free bytes at the last look (`u64::MAX` before the first).
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Free bytes now, or `None` if the file system cannot say.
    pub fn look(&self) -> Option<u64> {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.checked.store(now, Ordering::Relaxed);
        match fs4::available_space(&self.dir) {
            Ok(free) => {
                self.free.store(free, Ordering::Relaxed);
                Some(free)
            }
            Err(_) => None,
        }
    }

    /// Whether a write should be refused now: the mark, or a look at the free space (at most
    /// once per [`CHECK_EVERY`] unless `fresh`: ingest looks before every request it would
    /// acknowledge, a statvfs call of a microsecond). Counts the refusal.
    pub fn refuse_write(&self, fresh: bool) -> bool {
        if fresh && !self.is_full() {
            self.check_now();
        } else if !self.is_full() {
            let now = self.epoch.elapsed().as_millis() as u64 + 1;
            let last = self.checked.load(Ordering::Relaxed);
            if last == 0 || now.saturating_sub(last) >= CHECK_EVERY.as_millis() as u64 {
                self.check_now();
            }
        }
        let full = self.is_full();
        if full {
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.warn("a write was refused");
        }
        full
    }

    /// Looks at the free space now and marks the directory full if it is below the minimum;
    /// returns whether it is full.
    pub fn check_now(&self) -> bool {
        if let Some(free) = self.look()
            && free <= self.min_free()
            && !self.is_full()
        {
            self.mark_full(false, &format!("{free} bytes free"));
        }
        self.is_full()
    }

    /// Marks the data directory full when `e` is a lack of space (or redb's refusal after one);
    /// returns whether it did.
    pub fn note(&self, e: &StoreError) -> bool {
        let (no_space, redb) = match e {
            StoreError::DiskFull => (true, false),
            StoreError::Io(io) => (is_no_space(io), false),
            StoreError::Db(redb::Error::Io(io)) => (is_no_space(io), true),
            // redb latched an earlier I/O error; whatever it was, it needs a reopen.
            StoreError::Db(redb::Error::PreviousIo) => (true, true),
            _ => (false, false),
        };
        if no_space {
            if redb {
                self.reopen.store(true, Ordering::Release);
            }
            if !self.is_full() {
                self.mark_full(redb, &e.to_string());
            }
        }
        no_space
    }

    /// Marks the directory full after an I/O error outside the database (the ingest log, the
    /// search index); returns whether it was a lack of space.
    pub fn note_io(&self, e: &std::io::Error) -> bool {
        let no_space = is_no_space(e);
        if no_space && !self.is_full() {
            self.mark_full(false, &e.to_string());
        }
        no_space
    }

    fn mark_full(&self, reopen: bool, why: &str) {
        if reopen {
            self.reopen.store(true, Ordering::Release);
        }
        if !self.full.swap(true, Ordering::AcqRel) {
            self.log.reset();
            self.warn(why);
        }
    }

    fn warn(&self, why: &str) {
        if let Some(held) = self.log.allow() {
            tracing::warn!(
                refused_writes = self.refused(),
                "the data directory {} is full ({why}; {held} more such lines not logged): \
                 writes are refused and ingest answers 503 until at least {} bytes are free; \
                 it resumes by itself",
                self.dir.display(),
                self.min_free().max(1)
            );
        }
    }

    /// Clears the mark once space is back (the database already reopened if it had to be).
    pub(super) fn clear(&self) {
        self.reopen.store(false, Ordering::Release);
        if self.full.swap(false, Ordering::AcqRel) {
            self.log.reset();
            tracing::warn!(
                "the data directory {} has space again ({} bytes free): writes resume",
                self.dir.display(),
                self.free()
            );
        }
    }
}
