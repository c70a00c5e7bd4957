//! Ingest's write-ahead log: what makes a 200 durable without an fsync of the database.
//!
//! A synced redb commit writes its changed B-tree pages where the allocator put them, scattered
//! over the file, and an fsync of ~60 scattered pages costs ~2.5 ms on this class of disk where
//! the same bytes written contiguously cost ~0.3 ms. So the writer commits each batch to redb
//! *unsynced* and appends the batch's prepared work to this log, contiguously, with one
//! `fdatasync` for every record waiting; a request is answered once both are done. Every
//! [`CHECKPOINT_BYTES`] or `[ingest] checkpoint_interval` one batch commits synced, which makes
//! every earlier commit durable too, and the log starts over from its beginning.
//!
//! Each batch transaction stores its record's sequence number (`wal_applied` in the ingest
//! counters). After a crash, redb opens at its last synced commit; the records after the
//! `wal_applied` it holds are committed again, in order, before the server takes requests.
//!
//! Layout: a header (magic, the database's log id) and records `[seq u64][len u32][crc u32]
//! payload`, little-endian, the CRC over seq, len and payload. The file is written with zeros
//! up front so appends do not change its size (no metadata in the `fdatasync`). A cycle
//! overwrites the last one from the start; reading stops at the first record that is torn,
//! fails its CRC, or does not carry the next sequence number, which is how the stale tail of
//! an older cycle (all lower numbers) ends the log.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use tokio::sync::oneshot;

const MAGIC: &[u8; 8] = b"HRTHWAL1";
/// Magic and the log id.
pub const HEADER_LEN: u64 = 16;
const RECORD_HEAD: usize = 16;
/// Zeros written ahead on open: a checkpoint comes well before a cycle reaches this.
const PREALLOCATE: u64 = 32 << 20;
/// A cycle longer than this makes the next batch's commit a checkpoint.
pub const CHECKPOINT_BYTES: u64 = 8 << 20;
/// Largest record read back; a larger length is damage, not a record.
const MAX_RECORD: usize = 256 << 20;

/// One record to append.
struct Append {
    bytes: Vec<u8>,
    /// Write at the start of the log (the first record after a checkpoint).
    restart: bool,
    done: oneshot::Sender<Result<(), String>>,
}

/// The appending side; a thread of its own does the writes and syncs.
pub struct Wal {
    tx: mpsc::Sender<Append>,
    /// Set when a write or sync failed, until [`Wal::take_failure`] reads it.
    failed: Arc<AtomicBool>,
}

/// A record read back on open.
#[derive(Debug, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// Frames `payload` as record `seq`.
pub fn frame(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEAD + payload.len());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
    let crc = checksum(&out[..12], &out[RECORD_HEAD..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

fn checksum(head: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(payload);
    h.finalize()
}

/// The records of the current cycle: from the start, while each is whole and numbered one
/// after the last. `read_at` fills a buffer from an offset of a log `len` bytes long; only
/// the records are read, not the preallocated zeros after them.
fn read_records(
    len: u64,
    read_at: impl Fn(&mut [u8], u64) -> io::Result<()>,
) -> io::Result<Vec<Record>> {
    let mut out: Vec<Record> = Vec::new();
    let mut at = HEADER_LEN;
    let mut head = [0u8; RECORD_HEAD];
    while at + RECORD_HEAD as u64 <= len {
        read_at(&mut head, at)?;
        let seq = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let size = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
        let end = at + (RECORD_HEAD + size) as u64;
        if seq == 0 || size > MAX_RECORD || end > len {
            break;
        }
        if out.last().is_some_and(|r| r.seq + 1 != seq) {
            break;
        }
        let mut payload = vec![0u8; size];
        read_at(&mut payload, at + RECORD_HEAD as u64)?;
        if checksum(&head[..12], &payload) != crc {
            break;
        }
        out.push(Record { seq, payload });
        at = end;
    }
    Ok(out)
}

impl Wal {
    /// Opens (or creates) the log at `path` for the database whose log id is `id`, and returns
    /// the records of its current cycle. A log written for another database (its id differs) is
    /// not read: its records are not this database's.
    pub fn open(path: &Path, id: u64) -> io::Result<(Wal, Vec<Record>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        let mut header = [0u8; HEADER_LEN as usize];
        let mine = len >= HEADER_LEN
            && file.read_exact_at(&mut header, 0).is_ok()
            && &header[..8] == MAGIC
            && header[8..] == id.to_le_bytes();
        let records = if mine {
            read_records(len, |buf, at| file.read_exact_at(buf, at))?
        } else {
            if len > HEADER_LEN {
                tracing::warn!(
                    path = %path.display(),
                    "ingest log belongs to another database; starting a new one"
                );
            }
            let mut header = MAGIC.to_vec();
            header.extend_from_slice(&id.to_le_bytes());
            file.write_all_at(&header, 0)?;
            Vec::new()
        };
        // Zeros ahead, and over the records of another database (they must never read as this
        // one's); synced only when this open wrote something.
        if !mine || len < PREALLOCATE {
            let zeros = vec![0u8; 1 << 20];
            let end = len.max(PREALLOCATE);
            let mut at = if mine { len } else { HEADER_LEN };
            while at < end {
                let n = (end - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            file.sync_all()?;
        }
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        std::thread::Builder::new()
            .name("hearth-wal".into())
            .spawn(move || run(file, rx, &flag))?;
        Ok((Wal { tx, failed }, records))
    }

    /// Whether an append failed since the last call. The log may then lack a record that
    /// later ones build on (a reference document), so the writer commits synced and starts
    /// the log over.
    pub fn take_failure(&self) -> bool {
        self.failed.swap(false, Ordering::SeqCst)
    }

    /// Queues `record` (from [`frame`]); the receiver answers once it is on disk.
    pub fn append(&self, record: Vec<u8>, restart: bool) -> oneshot::Receiver<Result<(), String>> {
        let (done, rx) = oneshot::channel();
        let append = Append {
            bytes: record,
            restart,
            done,
        };
        if let Err(mpsc::SendError(a)) = self.tx.send(append) {
            let _ = a.done.send(Err("the ingest log has stopped".into()));
        }
        rx
    }
}

/// Writes queued records, one `fdatasync` for all that were waiting.
fn run(file: File, rx: mpsc::Receiver<Append>, failed: &AtomicBool) {
    let mut offset = HEADER_LEN;
    let mut run_buf = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while let Ok(a) = rx.try_recv() {
            group.push(a);
        }
        // Contiguous runs go out in one write; a restart begins a new run at the start.
        let mut result: io::Result<()> = Ok(());
        let mut run_at = offset;
        run_buf.clear();
        for a in &group {
            if a.restart {
                if result.is_ok() && !run_buf.is_empty() {
                    result = file.write_all_at(&run_buf, run_at);
                }
                run_buf.clear();
                offset = HEADER_LEN;
                run_at = offset;
            }
            run_buf.extend_from_slice(&a.bytes);
            offset += a.bytes.len() as u64;
        }
        if result.is_ok() && !run_buf.is_empty() {
            result = file.write_all_at(&run_buf, run_at);
        }
        if result.is_ok() {
            result = file.sync_data();
        }
        let result = result.map_err(|e| format!("ingest log write failed: {e}"));
        if let Err(e) = &result {
            tracing::error!("{e}");
            failed.store(true, Ordering::SeqCst);
        }
        for a in group {
            let _ = a.done.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: u64) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&id.to_le_bytes());
        b
    }

    #[test]
    fn reading_stops_at_a_torn_record_a_bad_checksum_or_a_gap() {
        let mut b = header(7);
        b.extend(frame(5, b"five"));
        b.extend(frame(6, b"six"));
        let whole = b.len();
        b.extend(frame(7, b"seven"));
        let read = |b: &[u8]| {
            read_records(b.len() as u64, |buf, at| {
                buf.copy_from_slice(&b[at as usize..at as usize + buf.len()]);
                Ok(())
            })
            .unwrap()
        };
        let seqs = |b: &[u8]| read(b).iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&b), [5, 6, 7]);
        assert_eq!(read(&b)[1].payload, b"six");
        // Torn: the last record's bytes did not all reach the disk.
        assert_eq!(seqs(&b[..b.len() - 1]), [5, 6]);
        // Damaged payload.
        let mut bad = b.clone();
        bad[whole + RECORD_HEAD] ^= 1;
        assert_eq!(seqs(&bad), [5, 6]);
        // A stale record of an older cycle (lower number) after the current ones.
        let mut stale = b[..whole].to_vec();
        stale.extend(frame(2, b"old"));
        assert_eq!(seqs(&stale), [5, 6]);
        // Zeros (the preallocated tail) end the log.
        let mut zeros = b.clone();
        zeros.extend([0u8; 64]);
        assert_eq!(seqs(&zeros), [5, 6, 7]);
    }

    #[tokio::test]
    async fn appends_survive_reopening_and_a_restart_overwrites_the_old_cycle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.wal");
        let (wal, records) = Wal::open(&path, 42).unwrap();
        assert!(records.is_empty());
        for seq in 1..=3 {
            let payload = format!("batch {seq}");
            wal.append(frame(seq, payload.as_bytes()), false)
                .await
                .unwrap()
                .unwrap();
        }
        drop(wal);
        let (wal, records) = Wal::open(&path, 42).unwrap();
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(records[2].payload, b"batch 3");
        // A checkpoint: the next record starts the log over; the old ones are gone.
        wal.append(frame(4, b"after checkpoint"), true)
            .await
            .unwrap()
            .unwrap();
        drop(wal);
        let (_wal, records) = Wal::open(&path, 42).unwrap();
        assert_eq!(
            records,
            [Record {
                seq: 4,
                payload: b"after checkpoint".to_vec()
            }]
        );
        // Another database's id: its records are not read, and not left to be read later.
        let (wal, records) = Wal::open(&path, 43).unwrap();
        assert!(records.is_empty());
        drop(wal);
        let (_wal, records) = Wal::open(&path, 43).unwrap();
        assert!(records.is_empty());
    }
}
