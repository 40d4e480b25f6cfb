//! One writer among several instances: a lease object in the store, taken
//! by a conditional write, renewed each interval, with a generation that
//! fences every write of its holder.
//!
//! - **Take.** An instance writes `leases/NAME.json` if there is none
//!   (write if absent), or replaces another's lease that it has seen
//!   unchanged for the whole term (write if unchanged), with the next
//!   generation. The term is measured on the taker's own monotonic clock,
//!   from when it first saw that version: the hosts' clocks need not agree.
//! - **Hold.** The holder renews (write if unchanged since its last write)
//!   each interval, and counts itself the holder only until 4/5 of the term
//!   after it sent its last successful renewal. A renewal refused means
//!   the lease was taken: the instance stops writing at once.
//! - **Fence.** Before each write of a fenced object, the holder renews;
//!   the write itself is conditional on the version of the object that
//!   this holder last wrote, or read when it took the lease. Of a stale
//!   holder's late write and the new holder's first one, one is refused by
//!   the store, in either order.
//!
//! docs/design.md ("One analysis writer") says why a lease in the store
//! rather than a partition of the consumer group.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::objects::{ObjectError, Objects, Version};

/// The folder of the store that holds the leases.
pub const LEASES: &str = "leases";

/// What a lease object holds (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The holder's name (host and process; never a worker's).
    pub holder: String,
    /// Starts at 1 and grows by one at each change of holder.
    pub generation: u64,
    /// The term, milliseconds: how long another instance waits, seeing
    /// this version unchanged, before it takes the lease.
    pub term_ms: u64,
    /// Renewals by this holder: each renewal writes a new content, so that
    /// its version changes (an S3 entity tag is a digest of the content:
    /// the same record written again would look unchanged to the others).
    #[serde(default)]
    pub renewal: u64,
}

impl LeaseRecord {
    /// Reads a lease object. One that cannot be read counts as held by
    /// nobody known, at generation 0, for the reader's whole term: it is
    /// taken once seen unchanged that long.
    fn read(bytes: &[u8]) -> LeaseRecord {
        serde_json::from_slice(bytes).unwrap_or(LeaseRecord {
            holder: "(unreadable lease)".into(),
            generation: 0,
            term_ms: 0,
            renewal: 0,
        })
    }
}

/// Where this instance stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// This instance holds the lease, at this generation.
    Held {
        /// The lease's generation.
        generation: u64,
    },
    /// Another instance holds it (or held it last and its term is not
    /// over).
    Other {
        /// The other holder's name.
        holder: String,
        /// Its generation.
        generation: u64,
    },
}

/// Why a fenced write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// This instance does not hold the lease (any more): it must not write.
    #[error("the lease {0} is not held by this instance")]
    NotHeld(String),
    /// The object is not one this lease fences.
    #[error("{0} is not fenced by this lease")]
    NotFenced(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ObjectError),
}

#[derive(Debug, Clone)]
struct Held {
    generation: u64,
    renewal: u64,
    version: Version,
    /// When the last successful renewal was sent.
    sent: Instant,
}

#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    since: Instant,
}

/// One instance's side of a lease.
#[derive(Debug)]
pub struct Lease {
    objects: Objects,
    key: String,
    holder: String,
    term: Duration,
    held: Option<Held>,
    seen: Option<Seen>,
    /// The objects this lease fences, and the version of each that this
    /// holder last wrote or found when it took the lease (`None`: there
    /// was none, so its first write is a create).
    fenced: HashMap<String, Option<Version>>,
    /// Whether `fenced` was read since the lease was taken.
    fenced_read: bool,
}

impl Lease {
    /// The lease `name` (`analysis`) in `objects`, for the instance called
    /// `holder`, with a term of `term` (the service: one analysis
    /// interval), fencing the writes of the objects `fenced` (keys).
    pub fn new(objects: Objects, name: &str, holder: &str, term: Duration, fenced: &[&str]) -> Lease {
        Lease {
            objects,
            key: format!("{LEASES}/{name}.json"),
            holder: holder.to_string(),
            term,
            held: None,
            seen: None,
            fenced: fenced.iter().map(|k| ((*k).to_string(), None)).collect(),
            fenced_read: false,
        }
    }

    /// Whether this instance took the lease and has not let it go (its
    /// term may have run out on its own clock since).
    pub fn was_taken(&self) -> bool {
        self.held.is_some()
    }

    /// The lease object's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The generation this instance holds, if its term is not over on its
    /// own clock (4/5 of the term after its last renewal was sent).
    pub fn held(&self) -> Option<u64> {
        self.held.as_ref().filter(|h| h.sent.elapsed() < self.term * 4 / 5).map(|h| h.generation)
    }

    fn record(&self, generation: u64, renewal: u64) -> Vec<u8> {
        let r = LeaseRecord {
            holder: self.holder.clone(),
            generation,
            term_ms: u64::try_from(self.term.as_millis()).unwrap_or(u64::MAX),
            renewal,
        };
        serde_json::to_vec(&r).expect("a lease record serialises")
    }

    /// One step, each interval: renews the lease if held, takes it if there
    /// is none or if another's has not changed for a whole term. An error
    /// of the store leaves the standing as it was (the held term runs out
    /// on its own).
    pub async fn tick(&mut self) -> Result<Standing, ObjectError> {
        if let Some(generation) = self.renew().await? {
            return Ok(Standing::Held { generation });
        }
        self.take().await
    }

    /// How long this instance still counts itself the holder on its own
    /// clock (zero when it does not).
    pub fn held_for(&self) -> Duration {
        self.held.as_ref().map_or(Duration::ZERO, |h| (self.term * 4 / 5).saturating_sub(h.sent.elapsed()))
    }

    /// Renews the lease if this instance holds it: the generation, or
    /// `None` when it does not hold it (any more: another instance took it).
    async fn renew(&mut self) -> Result<Option<u64>, ObjectError> {
        if let Some(h) = self.held.clone() {
            let sent = Instant::now();
            let renewal = h.renewal + 1;
            match self.objects.update(&self.key, &self.record(h.generation, renewal), &h.version).await {
                Ok(version) => {
                    self.held = Some(Held { generation: h.generation, renewal, version, sent });
                    return Ok(Some(h.generation));
                }
                Err(ObjectError::Conflict { .. }) => {
                    // A renewal that succeeded but whose answer was lost
                    // (and was retried) looks like a conflict: the lease
                    // then holds exactly what this holder sent.
                    if let Some((bytes, version)) = self.objects.get(&self.key).await? {
                        let r = LeaseRecord::read(&bytes);
                        let mine =
                            r.holder == self.holder && r.generation == h.generation && r.renewal == renewal;
                        if mine {
                            self.held = Some(Held { generation: h.generation, renewal, version, sent });
                            return Ok(Some(h.generation));
                        }
                    }
                    tracing::warn!(lease = %self.key, generation = h.generation, "Lease taken by another instance: this one stops writing");
                    self.held = None;
                    self.fenced_read = false;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Takes the lease when there is none, when it was let go, or when
    /// another's has not changed for a whole term.
    async fn take(&mut self) -> Result<Standing, ObjectError> {
        let sent = Instant::now();
        match self.objects.get(&self.key).await? {
            None => match self.objects.create(&self.key, &self.record(1, 0)).await {
                Ok(version) => Ok(self.took(1, version, sent).await),
                Err(ObjectError::Conflict { .. }) => self.observe().await,
                Err(e) => Err(e),
            },
            Some((bytes, version)) => {
                let record = LeaseRecord::read(&bytes);
                if record.holder == self.holder && record.generation > 0 && record.term_ms > 0 {
                    // This instance's own record, not let go, that it does
                    // not count as held: a create or a take whose answer was
                    // lost, retried and refused as a conflict; or a term that
                    // ran out on its clock while no one else took it. It is
                    // renewed (over that version) and held again.
                    let renewal = record.renewal + 1;
                    let generation = record.generation;
                    return match self
                        .objects
                        .update(&self.key, &self.record(generation, renewal), &version)
                        .await
                    {
                        Ok(v) => {
                            self.held = Some(Held { generation, renewal, version: v, sent });
                            self.seen = None;
                            self.fenced_read = false;
                            if let Err(e) = self.read_fenced().await {
                                tracing::warn!(lease = %self.key, error = %e, "Could not read the fenced objects' versions; read again at the first write");
                            }
                            Ok(Standing::Held { generation })
                        }
                        Err(ObjectError::Conflict { .. }) => self.observe().await,
                        Err(e) => Err(e),
                    };
                }
                let now = Instant::now();
                let since = match &self.seen {
                    Some(s) if s.version == version => s.since,
                    _ => now,
                };
                self.seen = Some(Seen { version: version.clone(), since });
                // The term that counts is the longer of the holder's and
                // ours; a lease let go (term 0) is free at once.
                let term = if record.term_ms == 0 && record.generation > 0 {
                    Duration::ZERO
                } else {
                    self.term.max(Duration::from_millis(record.term_ms))
                };
                if now.duration_since(since) < term {
                    return Ok(Standing::Other { holder: record.holder, generation: record.generation });
                }
                let generation = record.generation + 1;
                match self.objects.update(&self.key, &self.record(generation, 0), &version).await {
                    Ok(v) => {
                        if term.is_zero() {
                            // Let go (a flush's partition lease, every flush).
                            tracing::debug!(lease = %self.key, generation, "Lease taken: it was free");
                        } else {
                            tracing::info!(lease = %self.key, generation, previous = %record.holder, "Lease taken: the previous holder's term ran out");
                        }
                        Ok(self.took(generation, v, sent).await)
                    }
                    Err(ObjectError::Conflict { .. }) => self.observe().await,
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// The lease was just taken: the fenced objects' versions are read
    /// now, so that a previous holder's late write after this point makes
    /// this holder's first write fail rather than vanish under it.
    async fn took(&mut self, generation: u64, version: Version, sent: Instant) -> Standing {
        self.held = Some(Held { generation, renewal: 0, version, sent });
        self.seen = None;
        self.fenced_read = false;
        if let Err(e) = self.read_fenced().await {
            tracing::warn!(lease = %self.key, error = %e, "Could not read the fenced objects' versions at take; read again at the first write");
        }
        Standing::Held { generation }
    }

    /// Reads the version of each fenced object, once after the lease was
    /// taken: the first write of each is conditional on it, so that a
    /// previous holder's late write, before or after it, is never silently
    /// overwritten nor overwrites.
    async fn read_fenced(&mut self) -> Result<(), ObjectError> {
        if self.fenced_read {
            return Ok(());
        }
        let keys: Vec<String> = self.fenced.keys().cloned().collect();
        for k in keys {
            let v = self.objects.get(&k).await?.map(|(_, v)| v);
            self.fenced.insert(k, v);
        }
        self.fenced_read = true;
        Ok(())
    }

    /// Someone else wrote the lease between our read and our write.
    async fn observe(&mut self) -> Result<Standing, ObjectError> {
        match self.objects.get(&self.key).await? {
            Some((bytes, version)) => {
                let record = LeaseRecord::read(&bytes);
                self.seen = Some(Seen { version, since: Instant::now() });
                Ok(Standing::Other { holder: record.holder, generation: record.generation })
            }
            None => Ok(Standing::Other { holder: String::new(), generation: 0 }),
        }
    }

    /// Renews the lease now; the generation when this instance still holds
    /// it. Call it right before a write. It never takes the lease: a holder
    /// that lost it (even one that could take it again, the lease being
    /// free) is refused, so that a write prepared under one generation is
    /// never made under another.
    pub async fn fence(&mut self) -> Result<u64, FenceError> {
        match self.renew().await? {
            Some(generation) => Ok(generation),
            None => Err(FenceError::NotHeld(self.key.clone())),
        }
    }

    /// Writes `key` (one of the fenced objects) as the holder: renews
    /// first, then writes only if the object is still at the version this
    /// holder last wrote, or found when it took the lease. Another
    /// writer's object in between means this holder lost the lease: it
    /// writes nothing and lets the lease go.
    pub async fn write(&mut self, key: &str, bytes: &[u8]) -> Result<u64, FenceError> {
        if !self.fenced.contains_key(key) {
            return Err(FenceError::NotFenced(key.to_string()));
        }
        let generation = self.fence().await?;
        self.read_fenced().await?;
        let r = match self.fenced.get(key).cloned().flatten() {
            Some(v) => self.objects.update(key, bytes, &v).await,
            None => self.objects.create(key, bytes).await,
        };
        match r {
            Ok(v) => {
                self.fenced.insert(key.to_string(), Some(v));
                Ok(generation)
            }
            Err(ObjectError::Conflict { .. }) => {
                tracing::warn!(lease = %self.key, object = key, generation, "Another writer changed the object since this holder last wrote it: this one lets the lease go");
                self.release().await?;
                Err(FenceError::NotHeld(self.key.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Lets the lease go at shutdown: the next instance need not wait for
    /// the term (the lease is marked free, term 0, only if still ours).
    pub async fn release(&mut self) -> Result<(), ObjectError> {
        self.fenced_read = false;
        if let Some(h) = self.held.take() {
            // Mark it free by writing a record whose term is zero.
            let free = LeaseRecord {
                holder: self.holder.clone(),
                generation: h.generation,
                term_ms: 0,
                renewal: h.renewal + 1,
            };
            let bytes = serde_json::to_vec(&free).expect("a lease record serialises");
            match self.objects.update(&self.key, &bytes, &h.version).await {
                Ok(_) | Err(ObjectError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
