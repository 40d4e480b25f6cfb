//! Duplicate event ids, found after the read instead of during it, so that
//! the door's memory does not grow with the input.
//!
//! During the read every valid record goes to the spill with its sequence
//! number (its rank among valid records), and a 44-byte line goes to one of
//! a few partition files chosen by the hash of its event id: the id's
//! xxh3-128 hash, the sequence number, the worker pseudonym, the time and
//! the site. After the read each partition is read in the order it was
//! written, with a set of the hashes met: the first record of a hash is
//! kept and the others are duplicates, exactly as the in-memory filter
//! decides (first seen wins).
//! The duplicates' sequence numbers are handed to the analysis by bucket
//! (it leaves them out as it reads the bucket), and the counts, period
//! and sites are those of the records kept. Memory: one partition at a
//! time per thread (`crate::work_threads`), and 8 bytes per duplicate.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::IngestError;

const LINE: usize = 44;

/// Fewest and most partition files.
pub const MIN_PARTITIONS: usize = 16;
/// The most partition files [`partitions_for`] asks for, however large the input.
pub const MAX_PARTITIONS: usize = 256;

/// Partitions for about `events` events: about a million lines each.
pub fn partitions_for(events: u64) -> usize {
    (events.div_ceil(1_000_000) as usize).clamp(MIN_PARTITIONS, MAX_PARTITIONS)
}

/// The partition files being written.
pub struct IdLog {
    dir: PathBuf,
    parts: Vec<BufWriter<File>>,
    next_seq: u64,
}

/// One valid record, as the log keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line {
    hash: u128,
    seq: u64,
    worker: u64,
    ts_us: i64,
    site: u32,
}

impl Line {
    fn encode(&self) -> [u8; LINE] {
        let mut b = [0u8; LINE];
        b[..16].copy_from_slice(&self.hash.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.worker.to_le_bytes());
        b[32..40].copy_from_slice(&self.ts_us.to_le_bytes());
        b[40..].copy_from_slice(&self.site.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Line {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Line {
            hash: u128::from_le_bytes(b[..16].try_into().expect("16 bytes")),
            seq: u64_at(16),
            worker: u64_at(24),
            ts_us: u64_at(32) as i64,
            site: u32::from_le_bytes(b[40..].try_into().expect("4 bytes")),
        }
    }
}

/// What the log found.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Sequence numbers of the duplicates, by spill bucket, sorted.
    pub dropped: Vec<Vec<u64>>,
    /// Records kept.
    pub kept: u64,
    /// Earliest `ts` of the records kept, in microseconds since the Unix epoch (UTC);
    /// `None` when no record was kept.
    pub min_ts_us: Option<i64>,
    /// Latest `ts` of the records kept, in microseconds since the Unix epoch (UTC);
    /// `None` when no record was kept.
    pub max_ts_us: Option<i64>,
    /// Codes of the sites of the records kept.
    pub sites: BTreeSet<u32>,
}

impl Resolved {
    /// Duplicates whose sequence number is in `range`.
    pub fn duplicates_in(&self, range: std::ops::Range<u64>) -> u64 {
        self.dropped
            .iter()
            .map(|d| (d.partition_point(|s| *s < range.end) - d.partition_point(|s| *s < range.start)) as u64)
            .sum()
    }

    /// Every duplicate.
    pub fn duplicates(&self) -> u64 {
        self.dropped.iter().map(|d| d.len() as u64).sum()
    }
}

/// The bucket of a worker pseudonym among `n` (the spill's rule).
pub fn bucket_of(worker: u64, n: usize) -> usize {
    ((u128::from(worker) * n as u128) >> 64) as usize
}

impl IdLog {
    /// Creates `dir` if needed and one empty partition file in it (`ids-0000`...) per
    /// partition, at least one; a file of the same name is emptied.
    pub fn create(dir: &Path, partitions: usize) -> Result<IdLog, IngestError> {
        std::fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
        let parts = (0..partitions.max(1))
            .map(|p| {
                let path = dir.join(format!("ids-{p:04}"));
                File::create(&path)
                    .map(|f| BufWriter::with_capacity(32 << 10, f))
                    .map_err(|e| IngestError::io(&path, e))
            })
            .collect::<Result<_, _>>()?;
        Ok(IdLog { dir: dir.to_path_buf(), parts, next_seq: 0 })
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Logs a valid record and returns its sequence number.
    pub fn log(&mut self, hash: u128, worker: u64, ts_us: i64, site: u32) -> Result<u64, IngestError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let p = ((u128::from((hash >> 64) as u64) * self.parts.len() as u128) >> 64) as usize;
        let line = Line { hash, seq, worker, ts_us, site };
        self.parts[p].write_all(&line.encode()).map_err(|e| IngestError::io(&self.dir, e))?;
        Ok(seq)
    }

    /// Reads each partition (one at a time per thread) and returns the duplicates by bucket
    /// (`buckets` of the spill) and what the records kept span. The
    /// partition files are removed as they are read.
    pub fn resolve(self, buckets: usize) -> Result<Resolved, IngestError> {
        let mut out = Resolved { dropped: vec![Vec::new(); buckets.max(1)], ..Default::default() };
        let mut paths = Vec::new();
        for (p, w) in self.parts.into_iter().enumerate() {
            let path = self.dir.join(format!("ids-{p:04}"));
            w.into_inner().map_err(|e| IngestError::io(&path, e.into_error()))?;
            paths.push(path);
        }
        // Partitions are read on the machine's cores, one at a time each.
        let n = buckets.max(1);
        let parts = crate::map_parallel(&paths, crate::work_threads(), |path| {
            let mut bytes = Vec::new();
            BufReader::new(File::open(path).map_err(|e| IngestError::io(path, e))?)
                .read_to_end(&mut bytes)
                .map_err(|e| IngestError::io(path, e))?;
            let _ = std::fs::remove_file(path);
            // A partition's lines are in the order they were logged (one
            // writer, sequence numbers rising), so the first of a hash met
            // is the one kept: one pass with a set of the hashes seen, no
            // sort. The set's hasher is seeded per run, so ids crafted to
            // collide in part of their hash cannot make it slow.
            let mut seen: HashSet<u128, foldhash::fast::RandomState> =
                HashSet::with_capacity_and_hasher(bytes.len() / LINE, foldhash::fast::RandomState::default());
            let mut part = Resolved { dropped: vec![Vec::new(); n], ..Default::default() };
            let mut last_seq: Option<u64> = None;
            for l in bytes.chunks_exact(LINE).map(Line::decode) {
                debug_assert!(last_seq.is_none_or(|s| s < l.seq), "a partition's lines are in order");
                last_seq = Some(l.seq);
                if !seen.insert(l.hash) {
                    part.dropped[bucket_of(l.worker, n)].push(l.seq);
                    continue;
                }
                part.kept += 1;
                part.min_ts_us = Some(part.min_ts_us.map_or(l.ts_us, |m| m.min(l.ts_us)));
                part.max_ts_us = Some(part.max_ts_us.map_or(l.ts_us, |m| m.max(l.ts_us)));
                part.sites.insert(l.site);
            }
            Ok::<_, IngestError>(part)
        })?;
        for part in parts {
            for (all, mut d) in out.dropped.iter_mut().zip(part.dropped) {
                all.append(&mut d);
            }
            out.kept += part.kept;
            let both = |a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64| match (a, b) {
                (Some(a), Some(b)) => Some(f(a, b)),
                (a, b) => a.or(b),
            };
            out.min_ts_us = both(out.min_ts_us, part.min_ts_us, i64::min);
            out.max_ts_us = both(out.max_ts_us, part.max_ts_us, i64::max);
            out.sites.extend(part.sites);
        }
        for d in &mut out.dropped {
            d.sort_unstable();
        }
        Ok(out)
    }
}

/// The file of a bucket that lists the sequence numbers the analysis
/// leaves out (little-endian u64), when there are any.
pub const DROPPED_FILE: &str = "dropped.seq";

/// Writes each bucket's duplicates beside its parts.
pub fn write_dropped(
    buckets: &[PathBuf],
    resolved: &Resolved,
    all_buckets: usize,
) -> Result<(), IngestError> {
    for (b, seqs) in resolved.dropped.iter().enumerate().take(all_buckets) {
        if seqs.is_empty() {
            continue;
        }
        let dir = buckets
            .iter()
            .find(|d| d.file_name().and_then(|n| n.to_str()) == Some(&format!("bucket-{b:04}")))
            .ok_or_else(|| IngestError::Input(format!("duplicates in bucket {b}, which holds no file")))?;
        let bytes: Vec<u8> = seqs.iter().flat_map(|s| s.to_le_bytes()).collect();
        crate::store::write_bytes_atomic(&dir.join(DROPPED_FILE), &bytes, crate::store::Durability::Scratch)?;
    }
    Ok(())
}

/// Reads a bucket's list of duplicates (empty when it has none).
pub fn read_dropped(bucket: &Path) -> Result<Vec<u64>, IngestError> {
    let path = bucket.join(DROPPED_FILE);
    match std::fs::read(&path) {
        Ok(b) => Ok(b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(IngestError::io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_seen_wins_and_the_kept_records_give_the_period_and_sites() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = IdLog::create(dir.path(), 3).unwrap();
        // ids: a, b, a (later, other worker, earlier time), c, b, a.
        let h = |s: &str| xxhash_rust::xxh3::xxh3_128(s.as_bytes());
        let w1 = 1u64;
        let w2 = u64::MAX; // the last bucket
        assert_eq!(log.log(h("a"), w1, 100, 0).unwrap(), 0);
        log.log(h("b"), w1, 200, 0).unwrap();
        log.log(h("a"), w2, 5, 1).unwrap(); // 2: duplicate, would lower the period and add site 1
        log.log(h("c"), w2, 300, 2).unwrap();
        log.log(h("b"), w2, 400, 0).unwrap(); // 4: duplicate
        log.log(h("a"), w1, 500, 0).unwrap(); // 5: duplicate
        assert_eq!(log.next_seq(), 6);
        let r = log.resolve(4).unwrap();
        assert_eq!(r.kept, 3);
        assert_eq!(r.duplicates(), 3);
        assert_eq!(r.dropped[0], vec![5]);
        assert_eq!(r.dropped[3], vec![2, 4]);
        assert_eq!((r.min_ts_us, r.max_ts_us), (Some(100), Some(300)));
        assert_eq!(r.sites.iter().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(r.duplicates_in(0..3), 1);
        assert_eq!(r.duplicates_in(3..6), 2);
        // The partition files are gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// The partition files decide as a set kept in memory would, over
    /// random streams where ids repeat with other workers, times and sites
    /// (first seen wins; period and sites of the records kept).
    #[test]
    fn property_the_partitions_decide_as_a_set_in_memory() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        for round in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let parts = 1 + round % 7;
            let buckets = 1 + round % 5;
            let mut log = IdLog::create(dir.path(), parts).unwrap();
            let pool = rng.gen_range(1..400u64);
            let mut seen = std::collections::HashSet::new();
            let mut want = Resolved { dropped: vec![Vec::new(); buckets], ..Default::default() };
            for _ in 0..rng.gen_range(0..3000) {
                let id = rng.gen_range(0..pool);
                let hash = xxhash_rust::xxh3::xxh3_128(format!("ev-{id}").as_bytes());
                let worker: u64 = rng.gen();
                let ts = rng.gen_range(-1_000_000i64..1_000_000);
                let site = rng.gen_range(0..6u32);
                let seq = log.log(hash, worker, ts, site).unwrap();
                if seen.insert(id) {
                    want.kept += 1;
                    want.min_ts_us = Some(want.min_ts_us.map_or(ts, |m| m.min(ts)));
                    want.max_ts_us = Some(want.max_ts_us.map_or(ts, |m| m.max(ts)));
                    want.sites.insert(site);
                } else {
                    want.dropped[bucket_of(worker, buckets)].push(seq);
                }
            }
            let got = log.resolve(buckets).unwrap();
            assert_eq!(got.dropped, want.dropped, "round {round}");
            assert_eq!(
                (got.kept, got.min_ts_us, got.max_ts_us, &got.sites),
                (want.kept, want.min_ts_us, want.max_ts_us, &want.sites),
                "round {round}"
            );
        }
    }
}
