//! A fast parser for the one shape almost every record has: a flat JSON
//! object whose keys and string values carry no escape. It gives exactly
//! what `serde_json` gives through [`RawFields`]'s `Deserialize` (the
//! property test below holds it to that), or `None` whenever the line is
//! anything else (an escape, a nested value, a syntax error, an integer
//! that does not fit): the caller then parses it with `serde_json`, which
//! also words the error.

use std::borrow::Cow;

use crate::columnar::Cells;
use crate::validate::{field_index, RawFields, Scalar};

/// JSON's whitespace (RFC 8259): space, tab, line feed, carriage return.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The first byte of `b` that ends a plain string: `"`, `\\` or a control
/// character. Eight bytes at a time (strings are short: a vector search
/// costs more to start than it saves). In each test below, a byte is
/// flagged only if it matches or a lower byte of the word matched, so the
/// lowest flag is the first match.
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = 0;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let flags = zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | below_space;
        if flags != 0 {
            return Some(i + (flags.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(|c| *c == b'"' || *c == b'\\' || *c < 0x20).map(|p| i + p)
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && is_ws(self.bytes()[self.i]) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.i += 1)
    }

    /// A string with no escape and no control character, after its `"`.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        let rest = &self.bytes()[self.i..];
        let end = string_end(rest)?;
        if rest[end] != b'"' {
            return None;
        }
        let s = &self.s[self.i..self.i + end];
        self.i += end + 1;
        Some(s)
    }

    /// A number in JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<Scalar<'a>> {
        let b = self.bytes();
        let start = self.i;
        let mut i = self.i;
        let digits = |i: &mut usize| {
            let from = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - from
        };
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return None,
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            integer = false;
            if digits(&mut i) == 0 {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            integer = false;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return None;
            }
        }
        let text = &self.s[start..i];
        self.i = i;
        if integer {
            // serde_json: a negative integer is an i64, a non-negative one
            // a u64 (an i64 when it fits); one that fits neither is left to it.
            if negative {
                // As serde_json: `-0`, and what does not fit an i64, is a float.
                let significand = text[1..].parse::<u64>().ok()?;
                let neg = (significand as i64).wrapping_neg();
                Some(if neg >= 0 { Scalar::Float(-(significand as f64)) } else { Scalar::Int(neg) })
            } else {
                let v = text.parse::<u64>().ok()?;
                Some(i64::try_from(v).map(Scalar::Int).unwrap_or(Scalar::Float(v as f64)))
            }
        } else {
            // serde_json's own float parsing, so the last bit is the same.
            serde_json::from_str::<f64>(text).ok().map(Scalar::Float)
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.s[self.i..].starts_with(word).then(|| self.i += word.len())
    }

    /// A scalar value: `None` inside is JSON's `null`.
    fn value(&mut self) -> Option<Option<Scalar<'a>>> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string().map(|s| Some(Scalar::Str(Cow::Borrowed(s))))
            }
            b't' => self.literal("true").map(|()| Some(Scalar::Bool(true))),
            b'f' => self.literal("false").map(|()| Some(Scalar::Bool(false))),
            b'n' => self.literal("null").map(|()| None),
            b'-' | b'0'..=b'9' => self.number().map(Some),
            _ => None,
        }
    }
}

/// Reads a flat JSON object with no escapes, giving each key and value
/// to `field` in order; `None` for anything else, or when `field` says
/// `None`.
fn object<'a>(line: &'a str, mut field: impl FnMut(&'a str, Option<Scalar<'a>>) -> Option<()>) -> Option<()> {
    let mut c = Cursor { s: line, i: 0 };
    c.ws();
    c.eat(b'{')?;
    c.ws();
    if c.eat(b'}').is_none() {
        loop {
            c.eat(b'"')?;
            let key = c.string()?;
            c.ws();
            c.eat(b':')?;
            c.ws();
            let v = c.value()?;
            field(key, v)?;
            c.ws();
            match c.peek()? {
                b',' => {
                    c.i += 1;
                    c.ws();
                }
                b'}' => {
                    c.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    c.ws();
    (c.i == line.len()).then_some(())
}

/// Parses a flat JSON object with no escapes; `None` for anything else.
pub(crate) fn parse(line: &str) -> Option<RawFields<'_>> {
    let mut raw = RawFields::default();
    object(line, |key, v| {
        match raw.slot(key) {
            Some((name, slot)) => {
                // As the serde visitor: a repeat keeps the first value.
                let repeated = slot.is_some();
                if !repeated {
                    *slot = v;
                }
                if repeated && raw.repeated.is_none() {
                    raw.repeated = Some(name);
                }
            }
            None => raw.unknown.push(Cow::Borrowed(key)),
        }
        Some(())
    })?;
    Some(raw)
}

/// Parses a flat JSON object with no escapes straight into the cells of
/// one row of the columnar check ([`Cells`]): what [`parse`] gives, when
/// the record has only the contract's fields, each once, each in its
/// column's usual form; `None` for anything else (the record path reads
/// it then).
pub(crate) fn parse_cells(line: &str) -> Option<Cells<'_>> {
    let mut cells = Cells::default();
    object(line, |key, v| cells.set(field_index(key)?, v))?;
    Some(cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn by_serde(line: &str) -> Option<RawFields<'_>> {
        serde_json::from_str::<RawFields<'_>>(line).ok()
    }

    /// The word-at-a-time search finds what a byte loop finds, at every
    /// length and alignment.
    #[test]
    fn property_string_end_is_the_first_quote_backslash_or_control() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(88);
        let alphabet = [b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff, 0xe9, b'Z', 0x21, 0x5b, 0x5d];
        for _ in 0..200_000 {
            let len = rng.gen_range(0..40);
            let b: Vec<u8> = (0..len)
                .map(|_| if rng.gen_bool(0.9) { b'x' } else { alphabet[rng.gen_range(0..alphabet.len())] })
                .collect();
            let slow = b.iter().position(|c| *c == b'"' || *c == b'\\' || *c < 0x20);
            assert_eq!(string_end(&b), slow, "{b:?}");
        }
    }

    #[test]
    fn the_usual_record_parses_to_what_serde_gives() {
        let line = r#" {"event_id":"e1", "ts":"2026-03-02T08:00:00+01:00","site":"lyon-1","worker":"w1","kind":"scan","quantity":3,"weight_kg":1.25,"gap_s":-0.0,"zone":null,"badge":true} "#;
        let fast = parse(line).unwrap();
        assert_eq!(format!("{fast:?}"), format!("{:?}", by_serde(line).unwrap()));
        assert_eq!(format!("{:?}", fast.gap_s), "Some(Float(-0.0))");
        assert_eq!(fast.quantity, Some(Scalar::Int(3)));
        assert_eq!(fast.unknown, ["badge"]);
        assert_eq!(fast.zone, None);
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for line in [
            r#"{"worker":"w\u0031"}"#,
            r#"{"worker":{"id":1}}"#,
            r#"{"worker":[1]}"#,
            r#"{"quantity":01}"#,
            r#"{"quantity":1.}"#,
            r#"{"quantity":.5}"#,
            r#"{"quantity":+1}"#,
            r#"{"quantity":-}"#,
            r#"{"quantity":99999999999999999999}"#,
            r#"{"quantity":-99999999999999999999}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a" 1}"#,
            r#"{"a":tru}"#,
            "{\"a\":\"tab\there\"}",
            r"[1]",
            r"",
            r#"{"a":1"#,
        ] {
            assert_eq!(parse(line), None, "{line}");
        }
    }

    /// Random lines built from the tokens of records and their mutations:
    /// wherever the fast parser gives a result, it is serde's.
    #[test]
    fn property_the_fast_parser_agrees_with_serde_wherever_it_answers() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let keys =
            ["event_id", "ts", "site", "worker", "kind", "zone", "quantity", "weight_kg", "badge", "", "é"];
        let values = [
            "\"x\"",
            "\"\"",
            "\"é ü\"",
            "1",
            "-1",
            "0",
            "-0",
            "1.5",
            "-2.5e3",
            "1E-2",
            "1e400",
            "0.1",
            "true",
            "false",
            "null",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "3.141592653589793238462643383279",
            "123456789012345678901234567890.5",
            "\"a\\\"b\"",
            "[]",
            "{}",
            "00",
            "1.e5",
        ];
        let ws = ["", " ", "\t", "\r", "\n", "\u{a0}"];
        const MUTANTS: &[u8] = b"{}[]:,\"\\ 0.e-";
        let (mut answered, mut agreed_none, mut cells_answered) = (0, 0, 0);
        for _ in 0..200_000 {
            let mut s = String::new();
            s.push_str(ws[rng.gen_range(0..ws.len())]);
            s.push('{');
            let n = rng.gen_range(0..6);
            for k in 0..n {
                if k > 0 {
                    s.push(',');
                }
                s.push_str(ws[rng.gen_range(0..ws.len())]);
                s.push_str(&format!("\"{}\"", keys[rng.gen_range(0..keys.len())]));
                s.push_str(ws[rng.gen_range(0..ws.len())]);
                s.push(':');
                s.push_str(values[rng.gen_range(0..values.len())]);
                s.push_str(ws[rng.gen_range(0..ws.len())]);
            }
            s.push('}');
            s.push_str(ws[rng.gen_range(0..ws.len())]);
            // Mutations: a byte dropped, doubled or replaced.
            if rng.gen_bool(0.3) && !s.is_empty() {
                let mut b = s.into_bytes();
                let i = rng.gen_range(0..b.len());
                match rng.gen_range(0..3) {
                    0 => {
                        b.remove(i);
                    }
                    1 => b.insert(i, b[i]),
                    _ => b[i] = MUTANTS[rng.gen_range(0..MUTANTS.len())],
                }
                let Ok(m) = String::from_utf8(b) else { continue };
                s = m;
            }
            // Straight into cells: only what `parse` reads, with only the
            // contract's fields, each once, and the same values.
            if let Some(cells) = parse_cells(&s) {
                cells_answered += 1;
                let raw = parse(&s).expect("parse reads what parse_cells reads");
                assert!(raw.unknown.is_empty() && raw.repeated.is_none(), "{s:?}");
                let mut expected = Cells::default();
                let fields = [
                    &raw.event_id,
                    &raw.ts,
                    &raw.site,
                    &raw.worker,
                    &raw.kind,
                    &raw.zone,
                    &raw.team,
                    &raw.process,
                    &raw.device,
                    &raw.quantity,
                    &raw.weight_kg,
                    &raw.threshold_s,
                    &raw.gap_s,
                    &raw.target_per_hour,
                ];
                for (f, v) in fields.into_iter().enumerate() {
                    if v.is_some() {
                        expected.set(f, v.clone()).expect("a value parse_cells held");
                    }
                }
                assert_eq!(cells.values(), expected.values(), "{s:?}");
            }
            match parse(&s) {
                Some(fast) => {
                    answered += 1;
                    // Debug tells -0.0 from 0.0, which == does not.
                    assert_eq!(format!("{:?}", Some(fast)), format!("{:?}", by_serde(&s)), "{s:?}");
                }
                None => agreed_none += usize::from(by_serde(&s).is_none()),
            }
        }
        assert!(
            answered > 20_000 && agreed_none > 50_000 && cells_answered > 5_000,
            "{answered} {agreed_none} {cells_answered}"
        );
    }
}
