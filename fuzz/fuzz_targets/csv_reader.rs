//! The CSV reader on arbitrary bytes after a header with an identifier
//! look-alike column: it never crashes, and the identifier planted in the
//! first row's `worker` and `employee_id` cells never reaches the rejects.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_fuzz::*;
use vigie_ingest::rejects::MemoryRejects;
use vigie_ingest::Ingestor;

fuzz_target!(init: caught_panics_are_errors(), |data: &[u8]| {
    let body = String::from_utf8_lossy(data).replace(PLANTED, "").replace(PLANTED_NUM, "");
    let mut bytes = format!("event_id,ts,site,worker,kind,employee_id\ne1,bad,s,{PLANTED},scan,{PLANTED}\n").into_bytes();
    // Keep invalid UTF-8 from the fuzzer where it does not spell the token.
    if !data.windows(PLANTED.len()).any(|w| w == PLANTED.as_bytes())
        && !data.windows(PLANTED_NUM.len()).any(|w| w == PLANTED_NUM.as_bytes())
    {
        bytes.extend_from_slice(data);
    } else {
        bytes.extend_from_slice(body.as_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.csv");
    std::fs::write(&path, &bytes).unwrap();
    let mut ing = Ingestor::new(pseudonymiser(), None, Vec::new(), MemoryRejects::default());
    let _ = vigie_ingest::reader::read_file(&path, &mut ing, &mut |_| {});
    if let Ok((_, rejects, _)) = ing.finish() {
        for line in &rejects.lines {
            assert_absent(line.as_bytes(), "the CSV row");
        }
    }
});
