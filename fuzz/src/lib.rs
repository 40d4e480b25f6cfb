//! Shared pieces of vigie's fuzz targets: a JSON record generator that
//! plants a worker identifier only under identifier fields (in any
//! spelling, escaped, duplicated, as a string, number, array or object),
//! and the check that it never comes out.

use arbitrary::Arbitrary;

/// The planted identifier. Generated text never contains it otherwise.
pub const PLANTED: &str = "PLANTEDxID";
/// A planted numeric identifier.
pub const PLANTED_NUM: &str = "73577357735773";

#[derive(Arbitrary, Debug)]
pub enum Node {
    Null,
    Bool(bool),
    Num(i32),
    Float(f32),
    Str(String),
    Arr(Vec<Node>),
    Obj(Vec<(Key, Node)>),
}

#[derive(Arbitrary, Debug)]
pub enum Key {
    /// A field name from the fuzzer (never an identifier look-alike).
    Plain(String),
    /// A contract field with a fuzzer value.
    Contract(u8),
    /// An identifier field, spelled one of several ways, holding the
    /// planted identifier in one of several shapes.
    Ident { spelling: u8, escape: u8, shape: u8 },
}

const CONTRACT: [&str; 8] = ["event_id", "ts", "site", "kind", "team", "zone", "quantity", "gap_s"];
const SPELLINGS: [&str; 10] =
    ["worker", "Worker", "WORKER", "worker_id", "employee_id", "badge", "user", "Matricule", "operatorId", "id"];

fn escape_str(s: &str) -> String {
    serde_json::to_string(&s.replace(PLANTED, "").replace(PLANTED_NUM, "")).unwrap()
}

/// Writes `key` with some of its characters as `\uXXXX` escapes.
fn escaped_key(key: &str, escape: u8) -> String {
    let mut out = String::from("\"");
    for (i, c) in key.chars().enumerate() {
        if escape != 0 && (i as u8) % (escape % 4 + 1) == 0 {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

fn planted(shape: u8) -> String {
    match shape % 5 {
        0 => format!("\"{PLANTED}\""),
        1 => PLANTED_NUM.to_string(),
        2 => format!("[\"{PLANTED}\", 1]"),
        3 => format!("{{\"inner\": \"{PLANTED}\"}}"),
        _ => format!("\"a{PLANTED}b\""),
    }
}

impl Node {
    /// JSON text of the node, with duplicate keys kept as written.
    pub fn render(&self, out: &mut String, depth: usize) {
        match self {
            Node::Null => out.push_str("null"),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Node::Num(n) => out.push_str(&n.to_string()),
            Node::Float(f) if f.is_finite() => out.push_str(&f.to_string()),
            Node::Float(_) => out.push('0'),
            Node::Str(s) => out.push_str(&escape_str(s)),
            Node::Arr(v) => {
                out.push('[');
                for (i, n) in v.iter().enumerate().take(if depth > 6 { 0 } else { 16 }) {
                    if i > 0 {
                        out.push(',');
                    }
                    n.render(out, depth + 1);
                }
                out.push(']');
            }
            Node::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate().take(if depth > 6 { 0 } else { 16 }) {
                    if i > 0 {
                        out.push(',');
                    }
                    match k {
                        Key::Plain(s) => {
                            // A fuzzer key that is an identifier look-alike
                            // would carry a value we did not plant: renamed.
                            let s = if vigie_ingest::rejects::is_identifier_field(s) { "x" } else { s };
                            out.push_str(&escape_str(s));
                            out.push(':');
                            v.render(out, depth + 1);
                        }
                        Key::Contract(c) => {
                            out.push_str(&escape_str(CONTRACT[*c as usize % CONTRACT.len()]));
                            out.push(':');
                            v.render(out, depth + 1);
                        }
                        Key::Ident { spelling, escape, shape } => {
                            out.push_str(&escaped_key(SPELLINGS[*spelling as usize % SPELLINGS.len()], *escape));
                            out.push(':');
                            out.push_str(&planted(*shape));
                        }
                    }
                }
                out.push('}');
            }
        }
    }
}

/// A record: an object at the top, always.
pub fn record(fields: &[(Key, Node)]) -> String {
    let mut out = String::new();
    Node::Obj(fields.iter().map(|(k, v)| (clone_key(k), clone_node(v))).collect()).render(&mut out, 0);
    out
}

fn clone_key(k: &Key) -> Key {
    match k {
        Key::Plain(s) => Key::Plain(s.clone()),
        Key::Contract(c) => Key::Contract(*c),
        Key::Ident { spelling, escape, shape } => Key::Ident { spelling: *spelling, escape: *escape, shape: *shape },
    }
}

fn clone_node(n: &Node) -> Node {
    match n {
        Node::Null => Node::Null,
        Node::Bool(b) => Node::Bool(*b),
        Node::Num(x) => Node::Num(*x),
        Node::Float(x) => Node::Float(*x),
        Node::Str(s) => Node::Str(s.clone()),
        Node::Arr(v) => Node::Arr(v.iter().map(clone_node).collect()),
        Node::Obj(v) => Node::Obj(v.iter().map(|(k, n)| (clone_key(k), clone_node(n))).collect()),
    }
}

/// Panics if the planted identifier appears in `bytes`.
pub fn assert_absent(bytes: &[u8], record: &str) {
    for needle in [PLANTED, PLANTED_NUM] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the planted identifier came out of {record}: {}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// A pseudonymiser with a fixed key.
pub fn pseudonymiser() -> vigie_ingest::pseudo::Pseudonymiser {
    vigie_ingest::pseudo::Pseudonymiser::new(&[7u8; 32]).unwrap()
}
