//! Event contract, version 1 (see docs/events.md): the types a record
//! becomes once it has passed validation and pseudonymisation.

use std::fmt;
use std::sync::Arc;

/// Name of the event schema, as written in docs and outputs.
pub const EVENT_SCHEMA: &str = "vigie.event.v1";

/// A record larger than this is rejected with `too_large`.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $(#[doc = concat!("`", $text, "` in the event format.")] $variant = $code),+ }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in the event format.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the name used in the event format.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The compact code stored in the Parquet store.
            pub fn code(self) -> u8 { self as u8 }

            /// Inverse of [`Self::code`].
            pub fn from_code(c: u8) -> Option<Self> {
                match c { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

code_enum!(
    /// What happened (`kind`).
    Kind {
        ShiftStart = 0 => "shift_start",
        ShiftEnd = 1 => "shift_end",
        BreakStart = 2 => "break_start",
        BreakEnd = 3 => "break_end",
        Scan = 4 => "scan",
        VoicePrompt = 5 => "voice_prompt",
        IdleFlag = 6 => "idle_flag",
        SpeedFlag = 7 => "speed_flag",
        JustificationRequest = 8 => "justification_request",
        RateTarget = 9 => "rate_target",
    }
);

code_enum!(
    /// The work process (`process`).
    Process {
        Pick = 0 => "pick",
        Stow = 1 => "stow",
        Pack = 2 => "pack",
        Receive = 3 => "receive",
        Replenish = 4 => "replenish",
        Load = 5 => "load",
        Other = 6 => "other",
    }
);

code_enum!(
    /// The device that produced the event (`device`).
    Device {
        Scanner = 0 => "scanner",
        Voice = 1 => "voice",
        Other = 2 => "other",
    }
);

code_enum!(
    /// Why a record was refused: a bounded set, so that it can be a
    /// metric label.
    RejectReason {
        InvalidJson = 0 => "invalid_json",
        InvalidUtf8 = 1 => "invalid_utf8",
        TooLarge = 2 => "too_large",
        MissingField = 3 => "missing_field",
        InvalidType = 4 => "invalid_type",
        InvalidValue = 5 => "invalid_value",
        InvalidTimestamp = 6 => "invalid_timestamp",
        FutureTimestamp = 7 => "future_timestamp",
        ExpiredTimestamp = 8 => "expired_timestamp",
    }
);

/// A worker pseudonym: the first 8 bytes of HMAC-SHA256(key, worker).
/// Never derived from anything but the keyed hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym(pub u64);

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A validated, pseudonymised event. The worker identifier received is
/// not part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The record's `event_id`: 1 to 128 characters, unique per source (a repeat is
    /// dropped as a duplicate).
    pub event_id: String,
    /// Instant, microseconds since the Unix epoch (UTC).
    pub ts_us: i64,
    /// The offset carried by the timestamp, in seconds east of UTC: days
    /// and ISO weeks are taken in it.
    pub offset_s: i32,
    /// The site, `[A-Za-z0-9._-]{1,64}`.
    pub site: Arc<str>,
    /// The worker's pseudonym (keyed HMAC of the identifier received); the identifier
    /// itself is never kept.
    pub worker: Pseudonym,
    /// What happened.
    pub kind: Kind,
    /// The zone, same character set as `site`; `None` when the record had none.
    pub zone: Option<Arc<str>>,
    /// The team, same character set as `site`; `None` when the record had none.
    pub team: Option<Arc<str>>,
    /// The work process; `None` when the record had none.
    pub process: Option<Process>,
    /// The device that produced the event; `None` when the record had none.
    pub device: Option<Device>,
    /// Units confirmed; 1 for a scan that carried none.
    pub quantity: Option<u32>,
    /// Mass handled by this scan, in kilograms (0 to 1000); `None` when not given.
    pub weight_kg: Option<f64>,
    /// The threshold the employer's system used for an `idle_flag` or `speed_flag`, in
    /// seconds (> 0); `None` when not given.
    pub threshold_s: Option<f64>,
    /// The gap a `justification_request` is about, in seconds (>= 0); `None` when not
    /// given.
    pub gap_s: Option<f64>,
    /// The quota a `rate_target` sets or announces, per hour (> 0); `None` when not
    /// given.
    pub target_per_hour: Option<f64>,
}

/// Where a record came from: enough to find it again, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a text file (1-based), or a row of a Parquet file
    /// (1-based, counting data rows only).
    File {
        /// The file's path, as given to the reader.
        file: Arc<str>,
        /// The 1-based line (text) or data row (Parquet).
        line: u64,
    },
    /// A Kafka message.
    Kafka {
        /// The topic it was read from.
        topic: Arc<str>,
        /// The topic's partition.
        partition: i32,
        /// The message's offset in its partition.
        offset: i64,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { file, line } => write!(f, "{file}:{line}"),
            Origin::Kafka { topic, partition, offset } => write!(f, "{topic}/{partition}@{offset}"),
        }
    }
}

/// An accepted event as the door hands it to a sink, borrowing what it
/// can from the record and the door (no allocation per event).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRef<'a> {
    /// The record's rank among the valid records of the read (see
    /// [`crate::dedup`]).
    pub seq: u64,
    /// The record's `event_id` (see [`Event::event_id`]).
    pub event_id: &'a str,
    /// Instant, microseconds since the Unix epoch (UTC).
    pub ts_us: i64,
    /// The offset carried by the timestamp, in seconds east of UTC.
    pub offset_s: i32,
    /// The site (a shared copy of its name).
    pub site: &'a Arc<str>,
    /// The worker's pseudonym; the identifier received is never part of the event.
    pub worker: Pseudonym,
    /// What happened.
    pub kind: Kind,
    /// The zone; `None` when the record had none.
    pub zone: Option<&'a Arc<str>>,
    /// The team; `None` when the record had none.
    pub team: Option<&'a Arc<str>>,
    /// The work process; `None` when the record had none.
    pub process: Option<Process>,
    /// The device that produced the event; `None` when the record had none.
    pub device: Option<Device>,
    /// Units confirmed; 1 for a scan that carried none.
    pub quantity: Option<u32>,
    /// Mass handled by this scan, in kilograms; `None` when not given.
    pub weight_kg: Option<f64>,
    /// The threshold of an `idle_flag` or `speed_flag`, in seconds; `None` when not
    /// given.
    pub threshold_s: Option<f64>,
    /// The gap a `justification_request` is about, in seconds; `None` when not given.
    pub gap_s: Option<f64>,
    /// The quota a `rate_target` sets or announces, per hour; `None` when not given.
    pub target_per_hour: Option<f64>,
}

/// The local calendar date of a local instant (microseconds since the
/// epoch, in the offset the event carried).
pub fn local_date(local_us: i64) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_micros(local_us).unwrap_or_default().naive_utc().date()
}

impl Event {
    /// The event, borrowed (sequence number 0).
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            seq: 0,
            event_id: &self.event_id,
            ts_us: self.ts_us,
            offset_s: self.offset_s,
            site: &self.site,
            worker: self.worker,
            kind: self.kind,
            zone: self.zone.as_ref(),
            team: self.team.as_ref(),
            process: self.process,
            device: self.device,
            quantity: self.quantity,
            weight_kg: self.weight_kg,
            threshold_s: self.threshold_s,
            gap_s: self.gap_s,
            target_per_hour: self.target_per_hour,
        }
    }
}

impl EventRef<'_> {
    /// The owned event.
    pub fn to_event(&self) -> Event {
        Event {
            event_id: self.event_id.to_string(),
            ts_us: self.ts_us,
            offset_s: self.offset_s,
            site: self.site.clone(),
            worker: self.worker,
            kind: self.kind,
            zone: self.zone.cloned(),
            team: self.team.cloned(),
            process: self.process,
            device: self.device,
            quantity: self.quantity,
            weight_kg: self.weight_kg,
            threshold_s: self.threshold_s,
            gap_s: self.gap_s,
            target_per_hour: self.target_per_hour,
        }
    }
}
