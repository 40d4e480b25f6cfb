//! Groups and periods as types (CONTRACT.md, findings.json): a finding's
//! `group` is `site`, `team:NAME` or `zone:NAME`, its `period` an ISO week
//! (`2026-W10`) or `all`. On disk and in metrics they stay those strings;
//! in the code they are [`Group`] and [`Period`], so that a kind is a
//! `match`, not a prefix compared by hand.

// Every public item of this module is documented (issue 15, item 9).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a type kept in its written form shares: it converts from a
/// `String` when `parse` takes it (serde reads it so) and back, shows as
/// that text, derefs to it and compares with it.
macro_rules! written_form {
    ($t:ident, $what:literal) => {
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<$t, String> {
                $t::parse(&s).ok_or_else(|| format!("{s:?} {}", $what))
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

/// The kinds of group a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKind {
    /// Every worker of the site.
    Site,
    /// A team (`team` of the event contract).
    Team,
    /// A zone of the site (`zone` of the event contract).
    Zone,
}

impl GroupKind {
    /// The kinds a site is cut into (each one a family of the privacy
    /// check).
    pub const PARTS: [GroupKind; 2] = [GroupKind::Team, GroupKind::Zone];

    /// The prefix of a group of this kind (`team:`), empty for the site.
    pub fn prefix(self) -> &'static str {
        match self {
            GroupKind::Site => "",
            GroupKind::Team => "team:",
            GroupKind::Zone => "zone:",
        }
    }
}

/// A group, kept in its written form (`site`, `team:NAME`, `zone:NAME`),
/// so that it reads as text without allocating. Ordered as that text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Group(String);

impl Group {
    /// All workers of the site.
    pub fn site() -> Group {
        Group("site".into())
    }

    /// The team `name`.
    pub fn team(name: &str) -> Group {
        Group(format!("team:{name}"))
    }

    /// The zone `name`.
    pub fn zone(name: &str) -> Group {
        Group(format!("zone:{name}"))
    }

    /// A group from its written form; `None` for anything else. Every
    /// group [`Group::team`] and [`Group::zone`] build parses back (labels
    /// are never empty at the door, but a store file read back is not
    /// trusted to say so).
    pub fn parse(s: &str) -> Option<Group> {
        let ok = s == "site" || GroupKind::PARTS.iter().any(|k| s.starts_with(k.prefix()));
        ok.then(|| Group(s.to_string()))
    }

    /// What kind of group this is.
    pub fn kind(&self) -> GroupKind {
        if self.0.starts_with("team:") {
            GroupKind::Team
        } else if self.0.starts_with("zone:") {
            GroupKind::Zone
        } else {
            GroupKind::Site
        }
    }

    /// Whether this is the whole site.
    pub fn is_site(&self) -> bool {
        self.kind() == GroupKind::Site
    }

    /// The team's or zone's name; `None` for the site.
    pub fn name(&self) -> Option<&str> {
        match self.kind() {
            GroupKind::Site => None,
            k => Some(&self.0[k.prefix().len()..]),
        }
    }

    /// The written form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

written_form!(Group, "is not a group (site, team:NAME or zone:NAME)");

/// The period of a finding: an ISO week, or the whole input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Period(String);

impl Period {
    /// The whole input.
    pub fn all() -> Period {
        Period("all".into())
    }

    /// An ISO week, `2026-W10`.
    pub fn week(year: i32, week: u32) -> Period {
        let sign = if year < 0 { "-" } else { "" };
        Period(format!("{sign}{:04}-W{week:02}", year.unsigned_abs()))
    }

    /// A period from its written form: `all` or an ISO week as
    /// [`Period::week`] writes it, `YYYY-Www`: week 01 to 53, the year in
    /// four digits or more, with a sign when negative (the door keeps
    /// years 0000 to 9999, whose first and last weeks are of ISO years -1
    /// and 10000, but a store file read back is not trusted to); `None`
    /// for anything else.
    pub fn parse(s: &str) -> Option<Period> {
        let week = s.rsplit_once("-W").is_some_and(|(year, week)| {
            let digits = year.strip_prefix('-').unwrap_or(year);
            digits.len() >= 4
                && digits.bytes().all(|c| c.is_ascii_digit())
                && week.len() == 2
                && week.bytes().all(|c| c.is_ascii_digit())
                && (1..=53).contains(&week.parse::<u32>().unwrap_or(0))
        });
        (s == "all" || week).then(|| Period(s.to_string()))
    }

    /// Whether this is the whole input.
    pub fn is_all(&self) -> bool {
        self.0 == "all"
    }

    /// The written form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

written_form!(Period, "is not a period (all or an ISO week, 2026-W10)");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_read_and_write_as_the_contract_spells_them() {
        assert_eq!(Group::site().as_str(), "site");
        assert_eq!(Group::team("a b").as_str(), "team:a b");
        assert_eq!(Group::zone("z").name(), Some("z"));
        assert_eq!(Group::parse("team:t1").map(|g| g.kind()), Some(GroupKind::Team));
        assert_eq!(Group::parse("zone:x").map(|g| g.kind()), Some(GroupKind::Zone));
        assert!(Group::parse("site").is_some_and(|g| g.is_site() && g.name().is_none()));
        assert_eq!(Group::parse("team:"), Some(Group::team("")));
        for bad in ["", "Site", "team", "shift:x", " site", "zone"] {
            assert_eq!(Group::parse(bad), None, "{bad:?}");
        }
        // Ordered as the text: site, then teams, then zones.
        let mut v = [Group::zone("a"), Group::team("b"), Group::site(), Group::team("a")];
        v.sort();
        let s: Vec<&str> = v.iter().map(Group::as_str).collect();
        assert_eq!(s, ["site", "team:a", "team:b", "zone:a"]);
        // JSON: the string, and a string that is no group is refused.
        assert_eq!(serde_json::to_string(&Group::team("t")).unwrap(), "\"team:t\"");
        assert_eq!(serde_json::from_str::<Group>("\"zone:q\"").unwrap(), Group::zone("q"));
        assert!(serde_json::from_str::<Group>("\"crew:q\"").is_err());
    }

    #[test]
    fn periods_are_all_or_an_iso_week() {
        assert_eq!(Period::week(2026, 3).as_str(), "2026-W03");
        assert!(Period::all().is_all());
        for ok in ["all", "2026-W01", "2026-W53"] {
            assert_eq!(Period::parse(ok).map(String::from).as_deref(), Some(ok));
        }
        // The weeks of the contract's first and last days (years 0000 and
        // 9999) are weeks of ISO years -1 and 10000: written and read back.
        for d in [(0, 1, 1), (9999, 12, 31), (2024, 12, 30), (2021, 1, 3), (262_000, 6, 1), (-262_000, 6, 1)]
        {
            use chrono::Datelike;
            let w = chrono::NaiveDate::from_ymd_opt(d.0, d.1, d.2).unwrap().iso_week();
            let p = Period::week(w.year(), w.week());
            assert_eq!(Period::parse(p.as_str()), Some(p.clone()), "{p}");
        }
        for bad in [
            "",
            "ALL",
            "2026-W00",
            "2026-W54",
            "2026W10",
            "2026-w10",
            "26-W10",
            "2026-W1",
            "+2026-W10",
            "--001-W52",
        ] {
            assert_eq!(Period::parse(bad), None, "{bad:?}");
        }
        assert!(serde_json::from_str::<Period>("\"2026-W99\"").is_err());
    }
}
