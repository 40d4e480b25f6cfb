//! One NDJSON record through the door: arbitrary bytes never crash it, and
//! a generated record's planted identifier never reaches the rejects.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vigie_fuzz::*;
use vigie_ingest::event::Origin;
use vigie_ingest::rejects::MemoryRejects;
use vigie_ingest::Ingestor;

fuzz_target!(init: caught_panics_are_errors(), |data: &[u8]| {
    let file: Arc<str> = Arc::from("fuzz.ndjson");
    let at = || Origin::File { file: file.clone(), line: 1 };
    // Raw bytes, as they come.
    let mut ing = Ingestor::new(pseudonymiser(), None, Vec::new(), MemoryRejects::default());
    let _ = ing.offer_json(data, at);
    // A generated record with a planted identifier.
    let text = record(&mut Bytes(arbitrary::Unstructured::new(data)));
    let mut ing = Ingestor::new(pseudonymiser(), None, Vec::new(), MemoryRejects::default());
    let _ = ing.offer_json(text.as_bytes(), at);
    if let Ok((_, rejects, _)) = ing.finish() {
        for line in &rejects.lines {
            assert_absent(line.as_bytes(), &text);
        }
    }
});
