//! The redaction of a refused JSON record: whatever the record's shape,
//! the identifier planted under an identifier field never comes out.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_fuzz::*;

fuzz_target!(init: caught_panics_are_errors(), |data: &[u8]| {
    let text = record(&mut Bytes(arbitrary::Unstructured::new(data)));
    let mut p = pseudonymiser();
    if let Some(out) = vigie_ingest::rejects::redact_record(text.as_bytes(), &mut p) {
        assert_absent(&out, &text);
    }
});
