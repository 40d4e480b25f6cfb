//! The audit's spill files: the columns the analysis needs, written raw
//! (little-endian) and compressed block by block with LZ4, read back in
//! one go. A spill file lives for one run in the private work folder;
//! Parquet would cost its encoder's time for a file read once (the
//! service's store, which others read, stays Parquet).
//!
//! Layout: `VGSPILL1`, the row count (u64), the labels (u32 count, then a
//! u32 length and the bytes of each), then each column of
//! [`SpillColumns`] in field order as its raw length (u64), compressed
//! length (u64) and LZ4 block, and last the xxh3-64 of all that precedes.
//! Missing values: NaN for numbers, [`NO_LABEL`], [`NO_PROCESS`] and
//! [`NO_QUANTITY`] (the door lets no NaN through, and caps quantities far
//! below).

use std::io::{Error, ErrorKind, Result};

const MAGIC: &[u8; 8] = b"VGSPILL1";

/// A missing team or zone.
pub const NO_LABEL: u32 = u32::MAX;
/// A missing process.
pub const NO_PROCESS: u8 = u8::MAX;
/// A missing quantity.
pub const NO_QUANTITY: u32 = u32::MAX;

/// The events of one spill file, column by column.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SpillColumns {
    /// Each event's sequence number: its rank among the valid records of the read (see
    /// [`crate::dedup`]).
    pub seq: Vec<u64>,
    /// Each event's instant, in microseconds since the Unix epoch (UTC).
    pub ts_us: Vec<i64>,
    /// The offset each timestamp carried, in seconds east of UTC.
    pub offset_s: Vec<i32>,
    /// Codes into `labels`.
    pub site: Vec<u32>,
    /// Each event's worker pseudonym (the value of its `Pseudonym`), never the identifier
    /// received.
    pub worker: Vec<u64>,
    /// Each event's kind, as its code (`Kind::code`).
    pub kind: Vec<u8>,
    /// Codes into `labels`, or [`NO_LABEL`] for an event without a team.
    pub team: Vec<u32>,
    /// Codes into `labels`, or [`NO_LABEL`] for an event without a zone.
    pub zone: Vec<u32>,
    /// Each event's process, as its code (`Process::code`), or [`NO_PROCESS`].
    pub process: Vec<u8>,
    /// Units confirmed (1 for a scan that carried none), or [`NO_QUANTITY`] for another
    /// event without one.
    pub quantity: Vec<u32>,
    /// Mass handled by the scan, in kilograms; NaN when not given.
    pub weight_kg: Vec<f64>,
    /// The threshold of an `idle_flag` or `speed_flag`, in seconds; NaN when not given.
    pub threshold_s: Vec<f64>,
    /// The gap a `justification_request` is about, in seconds; NaN when not given.
    pub gap_s: Vec<f64>,
    /// The quota a `rate_target` sets or announces, per hour; NaN when not given.
    pub target_per_hour: Vec<f64>,
    /// The file's sites, teams and zones (one table; a name may appear
    /// twice).
    pub labels: Vec<String>,
}

impl SpillColumns {
    /// Events (rows) held.
    pub fn len(&self) -> usize {
        self.seq.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }

    /// Empties every column, keeping its room (a writer hands its buffers
    /// back for the next file).
    pub fn clear(&mut self) {
        self.seq.clear();
        self.ts_us.clear();
        self.offset_s.clear();
        self.site.clear();
        self.worker.clear();
        self.kind.clear();
        self.team.clear();
        self.zone.clear();
        self.process.clear();
        self.quantity.clear();
        self.weight_kg.clear();
        self.threshold_s.clear();
        self.gap_s.clear();
        self.target_per_hour.clear();
        self.labels.clear();
    }
}

/// A spill file's columns as events come in, labels coded on the way.
///
/// A label is coded by the address of its interned text: each label coded
/// is held (one reference per distinct label, not per row), so that an
/// address names one text for as long as the file fills. Two copies of a
/// name may get two codes; the reader goes by the text.
#[derive(Default)]
pub struct SpillBuilder {
    cols: SpillColumns,
    held: Vec<std::sync::Arc<str>>,
    codes: std::collections::HashMap<usize, u32, foldhash::fast::RandomState>,
    /// The last label coded for site, team and zone: rows in a row mostly
    /// share them.
    last: [(usize, u32); 3],
}

impl SpillBuilder {
    /// A builder that fills `cols` (emptied, its room kept).
    pub fn reusing(mut cols: SpillColumns) -> SpillBuilder {
        cols.clear();
        SpillBuilder { cols, ..Default::default() }
    }

    /// Events pushed since the builder was made or last taken.
    pub fn len(&self) -> usize {
        self.cols.len()
    }

    /// Whether no event was pushed since the builder was made or last taken.
    pub fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }

    fn code(&mut self, which: usize, a: &std::sync::Arc<str>) -> u32 {
        let at = std::sync::Arc::as_ptr(a) as *const u8 as usize;
        if self.last[which].0 == at {
            return self.last[which].1;
        }
        let code = match self.codes.get(&at) {
            Some(c) => *c,
            None => {
                self.held.push(a.clone());
                let c = (self.held.len() - 1) as u32;
                self.codes.insert(at, c);
                c
            }
        };
        self.last[which] = (at, code);
        code
    }

    /// One event (its id and device are not kept: duplicates are found
    /// apart, and the analysis does not read the device).
    pub fn push(&mut self, e: &crate::event::EventRef<'_>) {
        let site = self.code(0, e.site);
        let team = e.team.map_or(NO_LABEL, |t| self.code(1, t));
        let zone = e.zone.map_or(NO_LABEL, |z| self.code(2, z));
        let c = &mut self.cols;
        c.seq.push(e.seq);
        c.ts_us.push(e.ts_us);
        c.offset_s.push(e.offset_s);
        c.site.push(site);
        c.worker.push(e.worker.0);
        c.kind.push(e.kind.code());
        c.team.push(team);
        c.zone.push(zone);
        c.process.push(e.process.map_or(NO_PROCESS, super::event::Process::code));
        c.quantity.push(e.quantity.unwrap_or(NO_QUANTITY));
        c.weight_kg.push(e.weight_kg.unwrap_or(f64::NAN));
        c.threshold_s.push(e.threshold_s.unwrap_or(f64::NAN));
        c.gap_s.push(e.gap_s.unwrap_or(f64::NAN));
        c.target_per_hour.push(e.target_per_hour.unwrap_or(f64::NAN));
    }

    /// The file's columns, with its label table; the builder starts again
    /// empty (with `spare`'s room when given).
    pub fn take(&mut self, spare: Option<SpillColumns>) -> SpillColumns {
        let mut cols = std::mem::take(&mut self.cols);
        cols.labels = self.held.iter().map(std::string::ToString::to_string).collect();
        *self = spare.map(SpillBuilder::reusing).unwrap_or_default();
        cols
    }
}

/// Plain values that have a fixed little-endian form.
trait Raw: Copy + Sized {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

macro_rules! raw {
    ($($t:ty),+) => {$(
        impl Raw for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    )+};
}
raw!(u8, u32, i32, u64, i64, f64);

fn put_column<T: Raw>(out: &mut Vec<u8>, values: &[T]) -> Result<()> {
    let mut raw = Vec::with_capacity(values.len() * T::SIZE);
    for v in values {
        v.put(&mut raw);
    }
    let packed = lz4::block::compress(&raw, Some(lz4::block::CompressionMode::FAST(8)), false)?;
    (raw.len() as u64).put(out);
    (packed.len() as u64).put(out);
    out.extend_from_slice(&packed);
    Ok(())
}

/// Encodes the columns of a spill file.
pub fn encode(c: &SpillColumns) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(c.len() * 24 + 1024);
    out.extend_from_slice(MAGIC);
    (c.len() as u64).put(&mut out);
    (c.labels.len() as u32).put(&mut out);
    for l in &c.labels {
        (l.len() as u32).put(&mut out);
        out.extend_from_slice(l.as_bytes());
    }
    put_column(&mut out, &c.seq)?;
    put_column(&mut out, &c.ts_us)?;
    put_column(&mut out, &c.offset_s)?;
    put_column(&mut out, &c.site)?;
    put_column(&mut out, &c.worker)?;
    put_column(&mut out, &c.kind)?;
    put_column(&mut out, &c.team)?;
    put_column(&mut out, &c.zone)?;
    put_column(&mut out, &c.process)?;
    put_column(&mut out, &c.quantity)?;
    put_column(&mut out, &c.weight_kg)?;
    put_column(&mut out, &c.threshold_s)?;
    put_column(&mut out, &c.gap_s)?;
    put_column(&mut out, &c.target_per_hour)?;
    xxhash_rust::xxh3::xxh3_64(&out).put(&mut out);
    Ok(out)
}

fn bad(why: &str) -> Error {
    Error::new(ErrorKind::InvalidData, format!("not a vigie spill file ({why})"))
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() < n {
            return Err(bad("cut short"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn value<T: Raw>(&mut self) -> Result<T> {
        Ok(T::get(self.take(T::SIZE)?))
    }

    fn column<T: Raw>(&mut self, rows: usize) -> Result<Vec<T>> {
        let raw_len = self.value::<u64>()? as usize;
        let packed_len = self.value::<u64>()? as usize;
        if Some(raw_len) != rows.checked_mul(T::SIZE) {
            return Err(bad("a column's length does not match the row count"));
        }
        let packed = self.take(packed_len)?;
        // LZ4 expands a block at most 255 times: a larger claim is not
        // allocated.
        if raw_len > packed_len.saturating_mul(255).saturating_add(16) {
            return Err(bad("a column claims more bytes than its block can hold"));
        }
        let size = i32::try_from(raw_len).map_err(|_| bad("a column over 2 GiB"))?;
        let raw = lz4::block::decompress(packed, Some(size))?;
        if raw.len() != raw_len {
            return Err(bad("a column decompressed to the wrong length"));
        }
        Ok(raw.chunks_exact(T::SIZE).map(T::get).collect())
    }
}

/// Decodes a spill file written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<SpillColumns> {
    if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("no spill header"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(body) != u64::get(sum) {
        return Err(bad("its checksum does not match"));
    }
    let mut r = Reader { b: &body[MAGIC.len()..] };
    let rows = r.value::<u64>()? as usize;
    let n_labels = r.value::<u32>()? as usize;
    let mut labels = Vec::with_capacity(n_labels.min(1 << 16));
    for _ in 0..n_labels {
        let len = r.value::<u32>()? as usize;
        let s = std::str::from_utf8(r.take(len)?).map_err(|_| bad("a label is not UTF-8"))?;
        labels.push(s.to_string());
    }
    let c = SpillColumns {
        seq: r.column(rows)?,
        ts_us: r.column(rows)?,
        offset_s: r.column(rows)?,
        site: r.column(rows)?,
        worker: r.column(rows)?,
        kind: r.column(rows)?,
        team: r.column(rows)?,
        zone: r.column(rows)?,
        process: r.column(rows)?,
        quantity: r.column(rows)?,
        weight_kg: r.column(rows)?,
        threshold_s: r.column(rows)?,
        gap_s: r.column(rows)?,
        target_per_hour: r.column(rows)?,
        labels,
    };
    if !r.b.is_empty() {
        return Err(bad("bytes after the last column"));
    }
    let n = c.labels.len();
    let coded = |v: &[u32], missing: Option<u32>| v.iter().all(|x| (*x as usize) < n || Some(*x) == missing);
    if !coded(&c.site, None) || !coded(&c.team, Some(NO_LABEL)) || !coded(&c.zone, Some(NO_LABEL)) {
        return Err(bad("a label code out of range"));
    }
    let known = |code: u8, all: &[u8]| all.contains(&code);
    let kinds: Vec<u8> = crate::event::Kind::ALL.iter().map(|k| k.code()).collect();
    let mut processes: Vec<u8> = crate::event::Process::ALL.iter().map(|p| p.code()).collect();
    processes.push(NO_PROCESS);
    if !c.kind.iter().all(|k| known(*k, &kinds)) || !c.process.iter().all(|p| known(*p, &processes)) {
        return Err(bad("an unknown kind or process code"));
    }
    Ok(c)
}

/// Reads a spill file.
pub fn read(path: &std::path::Path) -> Result<SpillColumns> {
    decode(&std::fs::read(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SpillColumns {
        SpillColumns {
            seq: vec![3, 9],
            ts_us: vec![-5, 1_700_000_000_000_000],
            offset_s: vec![3600, -18000],
            site: vec![0, 1],
            worker: vec![u64::MAX, 7],
            kind: vec![4, 9],
            team: vec![2, NO_LABEL],
            zone: vec![NO_LABEL, 0],
            process: vec![NO_PROCESS, 3],
            quantity: vec![2, NO_QUANTITY],
            weight_kg: vec![1.5, f64::NAN],
            threshold_s: vec![f64::NAN, 60.0],
            gap_s: vec![f64::NAN, f64::NAN],
            target_per_hour: vec![f64::NAN, 120.5],
            labels: vec!["LYS1".into(), "Entrepôt é".into(), "t".into()],
        }
    }

    #[test]
    fn a_spill_file_reads_back_as_written() {
        let c = sample();
        let back = decode(&encode(&c).unwrap()).unwrap();
        // NaN != NaN: compare the bits.
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.weight_kg), bits(&c.weight_kg));
        assert_eq!(bits(&back.threshold_s), bits(&c.threshold_s));
        let strip = |mut c: SpillColumns| {
            c.weight_kg.clear();
            c.threshold_s.clear();
            c.gap_s.clear();
            c.target_per_hour.clear();
            c
        };
        assert_eq!(strip(back), strip(c));
        assert!(decode(&encode(&SpillColumns::default()).unwrap()).unwrap().is_empty());
    }

    /// Labels go in by address and come out by text: each row reads back
    /// its own site, team and zone, whether names are shared, copied or
    /// freed and made again while a file fills; reused buffers start empty.
    #[test]
    fn a_builder_codes_each_row_s_labels_by_text() {
        use crate::event::{EventRef, Kind, Pseudonym};
        use std::sync::Arc;
        let mut b = SpillBuilder::default();
        let mut expected = Vec::new();
        for i in 0..200u64 {
            // A fresh copy now and then; the old one is then dropped.
            let site: Arc<str> = Arc::from(format!("s{}", i % 3));
            let team: Option<Arc<str>> = (i % 4 != 0).then(|| Arc::from(format!("t{}", i % 5)));
            let zone: Option<Arc<str>> = (i % 7 == 0).then(|| Arc::from("z"));
            b.push(&EventRef {
                seq: i,
                event_id: "e",
                ts_us: i as i64,
                offset_s: 0,
                site: &site,
                worker: Pseudonym(i),
                kind: Kind::Scan,
                zone: zone.as_ref(),
                team: team.as_ref(),
                process: None,
                device: None,
                quantity: Some(1),
                weight_kg: None,
                threshold_s: None,
                gap_s: None,
                target_per_hour: None,
            });
            expected.push((site.to_string(), team.map(|t| t.to_string()), zone.map(|z| z.to_string())));
        }
        let cols = decode(&encode(&b.take(None)).unwrap()).unwrap();
        let label = |c: u32| (c != NO_LABEL).then(|| cols.labels[c as usize].clone());
        let got: Vec<_> = (0..cols.len())
            .map(|i| (label(cols.site[i]).unwrap(), label(cols.team[i]), label(cols.zone[i])))
            .collect();
        assert_eq!(got, expected);
        assert!(b.is_empty());
        let again = SpillBuilder::reusing(cols);
        assert!(again.is_empty());
    }

    /// A crafted file: `bytes` with a checksum that matches.
    fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
        let n = bytes.len() - 8;
        let sum = xxhash_rust::xxh3::xxh3_64(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum.to_le_bytes());
        bytes
    }

    #[test]
    fn a_crafted_spill_file_with_a_good_checksum_is_still_refused() {
        // Row count past any allocation.
        let mut b = encode(&sample()).unwrap();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&resealed(b)).is_err());
        // An unknown kind.
        let mut c = sample();
        c.kind[0] = 42;
        assert!(decode(&encode(&c).unwrap()).unwrap_err().to_string().contains("kind"));
        // A column that claims far more bytes than its block can hold.
        let one = SpillColumns { labels: vec!["s".into()], ..SpillColumns::default() };
        let mut b = encode(&one).unwrap();
        let rows = 1u64 << 28;
        b[8..16].copy_from_slice(&rows.to_le_bytes());
        let first = 8 + 8 + 4 + 4 + 1;
        b[first..first + 8].copy_from_slice(&(rows * 8).to_le_bytes());
        let e = decode(&resealed(b)).unwrap_err();
        assert!(e.to_string().contains("claims more bytes"), "{e}");
    }

    #[test]
    fn a_damaged_spill_file_is_an_error_never_wrong_rows() {
        let bytes = encode(&sample()).unwrap();
        for cut in [0, 7, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            let e = decode(&bytes[..cut]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{cut}");
        }
        for at in [9, 30, bytes.len() / 2, bytes.len() - 9] {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            let e = decode(&b).unwrap_err();
            assert!(e.to_string().contains("not a vigie spill file"), "{at}: {e}");
        }
    }
}
