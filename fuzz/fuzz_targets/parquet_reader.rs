//! The Parquet reader on arbitrary bytes (lying footers, bad pages): an
//! error or rejects, never a crash or an abort.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_fuzz::*;
use vigie_ingest::rejects::MemoryRejects;
use vigie_ingest::Ingestor;

fuzz_target!(init: caught_panics_are_errors(), |data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.parquet");
    std::fs::write(&path, data).unwrap();
    let mut ing = Ingestor::new(pseudonymiser(), None, Vec::new(), MemoryRejects::default());
    let _ = vigie_ingest::reader::read_file(&path, &mut ing, &mut |_| {});
    let _ = ing.finish();
});
