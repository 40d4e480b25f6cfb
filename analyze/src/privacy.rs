//! k-anonymity of everything published about a site, with complementary
//! suppression across group kinds, periods and days (docs/privacy.md).
//!
//! Every figure vigie publishes about a site is a sum over shifts, or
//! something an attacker may treat as one: the site, a team or a zone, in
//! one ISO week or over the whole input, and the number of shifts of one
//! local day. Such a figure is a *cell*. A shift falls into an *atom*, the
//! finest cell: one local day, one team (or none), one zone (or none).
//! Every cell is a union of atoms, so any difference of published cells is
//! a union of atoms too, and can be measured in distinct workers.
//!
//! A cell is published when it has at least k distinct workers and:
//! - **no pair** of published cells differs by 1 to k-1 workers (the
//!   symmetric difference of their shifts, so a zone of 11 that contains a
//!   team of 10, or nearly contains it, is caught);
//! - **no chain**: for each published parent (the site in a period, a
//!   group over the whole input) and each way of cutting it into disjoint
//!   parts (its teams, its zones, its weeks, the teams or zones of each
//!   week, its days), the parent minus its published parts is empty or
//!   covers at least k workers.
//!
//! When a pair fails, the smaller cell is hidden; when a chain fails, its
//! smallest published part is. The checks run again until none fails.

use crate::group::{Group, GroupKind};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// One shift, as the suppression sees it.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    /// The worker's pseudonym.
    pub worker: u64,
    /// Local date of the shift start (`2026-03-02`) and its ISO week.
    pub day: &'a str,
    /// The ISO week of `day` (`2026-W10`).
    pub week: &'a str,
    /// `team:NAME` and `zone:NAME`, when the shift has them.
    pub team: Option<&'a str>,
    /// `zone:NAME`, when the shift has a zone.
    pub zone: Option<&'a str>,
}

/// A published figure of one site: `(group, period)`. `group` is `site`,
/// `team:NAME`, `zone:NAME`, or `day` for the shifts of one local date
/// (then `period` is that date).
pub type CellName = (String, String);

/// Cells in a table of atoms.
#[derive(Debug, Default)]
pub struct Table {
    /// Distinct workers of each atom, sorted.
    atoms: Vec<Vec<u64>>,
    cells: Vec<Cell>,
    families: Vec<(usize, Vec<usize>)>,
}

#[derive(Debug)]
struct Cell {
    name: CellName,
    /// Sorted atom indices.
    atoms: Vec<u32>,
    workers: usize,
}

/// Distinct workers of a set of atoms, counting no further than `cap`.
fn workers_upto<'a>(atoms: impl Iterator<Item = &'a Vec<u64>>, cap: usize, seen: &mut HashSet<u64>) -> usize {
    seen.clear();
    for a in atoms {
        for w in a {
            seen.insert(*w);
            if seen.len() >= cap {
                return cap;
            }
        }
    }
    seen.len()
}

impl Table {
    /// A table over atoms given by their workers.
    pub fn new(atoms: Vec<BTreeSet<u64>>) -> Self {
        Table { atoms: atoms.into_iter().map(|w| w.into_iter().collect()).collect(), ..Default::default() }
    }

    /// Adds a cell made of `atoms`; returns its index.
    pub fn cell(&mut self, name: CellName, mut atoms: Vec<u32>) -> usize {
        atoms.sort_unstable();
        atoms.dedup();
        let mut seen = HashSet::new();
        let workers = workers_upto(atoms.iter().map(|a| &self.atoms[*a as usize]), usize::MAX, &mut seen);
        self.cells.push(Cell { name, atoms, workers });
        self.cells.len() - 1
    }

    /// Declares that `children` are disjoint parts of `parent`.
    pub fn family(&mut self, parent: usize, children: Vec<usize>) {
        if !children.is_empty() {
            self.families.push((parent, children));
        }
    }

    /// The name of cell `cell` (an index [`Table::cell`] returned).
    pub fn name(&self, cell: usize) -> &CellName {
        &self.cells[cell].name
    }

    /// How many cells the table holds.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the table holds no cell.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Which cells to hide: `true` at the index of a hidden cell.
    pub fn suppress(&self, k: usize) -> Vec<bool> {
        let mut hidden: Vec<bool> = self.cells.iter().map(|c| c.workers < k).collect();
        let of_atom = self.cells_of_atoms();
        let pairs = overlapping_pairs(&of_atom);
        let mut s = Scratch { seen: HashSet::new(), mark: vec![0; self.atoms.len()], stamp: 0 };
        loop {
            let mut changed = false;
            // Chains: a parent minus its published parts.
            for (parent, children) in &self.families {
                if hidden[*parent] {
                    continue;
                }
                loop {
                    let rest = self.remainder(*parent, children, &hidden, &mut s);
                    let n = workers_upto(rest.iter().map(|a| &self.atoms[*a as usize]), k, &mut s.seen);
                    if n == 0 || n >= k {
                        break;
                    }
                    match self.smallest(children, &hidden) {
                        Some(c) => {
                            hidden[c] = true;
                            changed = true;
                        }
                        // Cannot happen: with every part hidden the rest is
                        // the parent, published, so of k workers or more.
                        None => break,
                    }
                }
            }
            // Pairs of published cells.
            for &(a, b) in &pairs {
                if hidden[a] || hidden[b] || self.cells[a].workers.abs_diff(self.cells[b].workers) >= k {
                    // Sizes k apart: one of the two differences alone has
                    // k workers or more.
                    continue;
                }
                let diff = symmetric_difference(&self.cells[a].atoms, &self.cells[b].atoms);
                let n = workers_upto(diff.iter().map(|x| &self.atoms[*x as usize]), k, &mut s.seen);
                if n > 0 && n < k {
                    let smaller = if self.rank(a) <= self.rank(b) { a } else { b };
                    hidden[smaller] = true;
                    changed = true;
                }
            }
            // A chain's rest is known as well as a published cell: it must
            // not be close to one either (a hidden team that a zone nearly
            // contains, recovered as the site minus the other teams).
            for (parent, children) in &self.families {
                if hidden[*parent] {
                    continue;
                }
                let rest = self.remainder(*parent, children, &hidden, &mut s);
                if rest.is_empty() {
                    continue;
                }
                let rest_workers =
                    workers_upto(rest.iter().map(|a| &self.atoms[*a as usize]), usize::MAX, &mut s.seen);
                let mut near: BTreeSet<usize> = BTreeSet::new();
                for a in &rest {
                    near.extend(
                        of_atom[*a as usize]
                            .iter()
                            .copied()
                            .filter(|c| !hidden[*c] && self.cells[*c].workers.abs_diff(rest_workers) < k),
                    );
                }
                for c in near {
                    if hidden[c] {
                        continue;
                    }
                    let diff = symmetric_difference(&rest, &self.cells[c].atoms);
                    let n = workers_upto(diff.iter().map(|x| &self.atoms[*x as usize]), k, &mut s.seen);
                    if n > 0 && n < k {
                        // Hide the cell, or a part so that the rest grows,
                        // whichever is smaller.
                        let hide = match self.smallest(children, &hidden) {
                            Some(p) if self.rank(p) < self.rank(c) => p,
                            _ => c,
                        };
                        hidden[hide] = true;
                        changed = true;
                        break;
                    }
                }
            }
            if !changed {
                return hidden;
            }
        }
    }

    /// Hiding order: fewer workers first, then fewer atoms, then name.
    fn rank(&self, c: usize) -> (usize, usize, &CellName) {
        (self.cells[c].workers, self.cells[c].atoms.len(), &self.cells[c].name)
    }

    fn smallest(&self, cells: &[usize], hidden: &[bool]) -> Option<usize> {
        cells.iter().copied().filter(|c| !hidden[*c]).min_by(|a, b| self.rank(*a).cmp(&self.rank(*b)))
    }

    /// Atoms of `parent` in none of its published `children`, sorted.
    fn remainder(&self, parent: usize, children: &[usize], hidden: &[bool], s: &mut Scratch) -> Vec<u32> {
        s.stamp += 1;
        for c in children.iter().filter(|c| !hidden[**c]) {
            for a in &self.cells[*c].atoms {
                s.mark[*a as usize] = s.stamp;
            }
        }
        self.cells[parent].atoms.iter().copied().filter(|a| s.mark[*a as usize] != s.stamp).collect()
    }

    /// The cells each atom belongs to.
    fn cells_of_atoms(&self) -> Vec<Vec<usize>> {
        let mut of_atom: Vec<Vec<usize>> = vec![Vec::new(); self.atoms.len()];
        for (i, c) in self.cells.iter().enumerate() {
            for a in &c.atoms {
                of_atom[*a as usize].push(i);
            }
        }
        of_atom
    }
}

/// Pairs of cells that share an atom (disjoint published cells differ by
/// at least k workers).
fn overlapping_pairs(of_atom: &[Vec<usize>]) -> Vec<(usize, usize)> {
    let mut pairs = HashSet::new();
    for cells in of_atom {
        for (i, a) in cells.iter().enumerate() {
            for b in &cells[i + 1..] {
                pairs.insert((*a.min(b), *a.max(b)));
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = pairs.into_iter().collect();
    pairs.sort_unstable();
    pairs
}

struct Scratch {
    seen: HashSet<u64>,
    mark: Vec<u32>,
    stamp: u32,
}

fn symmetric_difference(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The cells of one site built from its shifts: the site, each team and
/// each zone, per ISO week and over `all`, and each local day, with the
/// ways each parent is cut into parts.
pub fn site_table(slots: &[Slot]) -> Table {
    type AtomKey<'a> = (&'a str, Option<&'a str>, Option<&'a str>);
    let mut atom_of: BTreeMap<AtomKey, usize> = BTreeMap::new();
    let mut workers: Vec<BTreeSet<u64>> = Vec::new();
    let mut week_of_day: BTreeMap<&str, &str> = BTreeMap::new();
    for s in slots {
        let n = atom_of.len();
        let i = *atom_of.entry((s.day, s.team, s.zone)).or_insert(n);
        if i == workers.len() {
            workers.push(BTreeSet::new());
        }
        workers[i].insert(s.worker);
        week_of_day.insert(s.day, s.week);
    }
    // Atoms of each (group, period).
    let mut members: BTreeMap<CellName, Vec<u32>> = BTreeMap::new();
    for (&(day, team, zone), &i) in &atom_of {
        let week = week_of_day[day];
        let i = i as u32;
        for g in std::iter::once("site").chain(team).chain(zone) {
            for p in [week, "all"] {
                members.entry((g.to_string(), p.to_string())).or_default().push(i);
            }
        }
        members.entry(("day".to_string(), day.to_string())).or_default().push(i);
    }
    let mut t = Table::new(workers);
    let mut index: HashMap<CellName, usize> = HashMap::new();
    for (name, atoms) in members {
        let i = t.cell(name.clone(), atoms);
        index.insert(name, i);
    }
    // The parts of each cut, gathered in one pass over the cells (sorted,
    // so that the families do not depend on hash order).
    let mut by_kind_period: HashMap<(GroupKind, &str), Vec<usize>> = HashMap::new();
    let mut by_kind: HashMap<GroupKind, Vec<usize>> = HashMap::new();
    let mut weeks_of_group: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut days_of_week: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut all_days = Vec::new();
    for (name, &i) in &index {
        let (g, p) = (name.0.as_str(), name.1.as_str());
        if g == "day" {
            all_days.push(i);
            if let Some(w) = week_of_day.get(p) {
                days_of_week.entry(w).or_default().push(i);
            }
            continue;
        }
        if p != "all" {
            weeks_of_group.entry(g).or_default().push(i);
        }
        // A team or a zone: a part of its kind's family.
        if let Some(kind) = Group::parse(g).map(|g| g.kind()).filter(|k| *k != GroupKind::Site) {
            by_kind_period.entry((kind, p)).or_default().push(i);
            if p != "all" {
                by_kind.entry(kind).or_default().push(i);
            }
        }
    }
    let sorted = |v: Option<&Vec<usize>>| {
        let mut v = v.cloned().unwrap_or_default();
        v.sort_unstable();
        v
    };
    let weeks: BTreeSet<&str> = week_of_day.values().copied().collect();
    let site_all = index[&("site".to_string(), "all".to_string())];
    for period in weeks.iter().copied().chain(["all"]) {
        let parent = index[&("site".to_string(), period.to_string())];
        for kind in GroupKind::PARTS {
            t.family(parent, sorted(by_kind_period.get(&(kind, period))));
        }
        let days = if period == "all" { sorted(Some(&all_days)) } else { sorted(days_of_week.get(period)) };
        t.family(parent, days);
    }
    // Each group over the whole input, cut into its weeks; and the site
    // over the whole input, cut into the teams (or zones) of each week.
    let mut groups: Vec<(&CellName, usize)> =
        index.iter().filter(|(n, _)| n.1 == "all" && n.0 != "day").map(|(n, i)| (n, *i)).collect();
    groups.sort();
    for (name, i) in groups {
        t.family(i, sorted(weeks_of_group.get(name.0.as_str())));
    }
    for kind in GroupKind::PARTS {
        t.family(site_all, sorted(by_kind.get(&kind)));
    }
    t
}

/// Hidden cells of one site, by name.
pub fn suppress_site(slots: &[Slot], k: usize) -> BTreeSet<CellName> {
    let t = site_table(slots);
    let hidden = t.suppress(k);
    (0..t.len()).filter(|i| hidden[*i]).map(|i| t.name(i).clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers `0..n` in one week and one day, with a team and zone each.
    fn slots<'a>(assign: &'a [(u64, &'a str, Option<&'a str>, Option<&'a str>)]) -> Vec<Slot<'a>> {
        assign
            .iter()
            .map(|(w, day, team, zone)| Slot { worker: *w, day, week: week(day), team: *team, zone: *zone })
            .collect()
    }

    fn week(day: &str) -> &'static str {
        match day {
            "d1" | "d2" => "w1",
            _ => "w2",
        }
    }

    fn name(g: &str, p: &str) -> CellName {
        (g.to_string(), p.to_string())
    }

    #[test]
    fn a_lone_small_team_takes_the_smallest_other_with_it() {
        // Teams of 12, 30, 4 and 15 workers (k = 10): t2 is hidden, and t0
        // with it, else t2 = site - t0 - t1 - t3.
        let mut a = Vec::new();
        let mut id = 0;
        for (t, n) in [("team:t0", 12), ("team:t1", 30), ("team:t2", 4), ("team:t3", 15)] {
            for _ in 0..n {
                a.push((id, "d1", Some(t), None));
                id += 1;
            }
        }
        let hidden = suppress_site(&slots(&a), 10);
        for p in ["w1", "all"] {
            assert!(hidden.contains(&name("team:t2", p)));
            assert!(hidden.contains(&name("team:t0", p)));
            assert!(!hidden.contains(&name("team:t1", p)));
            assert!(!hidden.contains(&name("team:t3", p)));
        }
    }

    #[test]
    fn a_zone_that_contains_a_team_and_one_more_worker_is_caught() {
        // Team a: workers 0..10, all in zone z; zone z also has worker 10.
        // Team b: workers 10..30 (10 in zone z, the rest in zone y). Without
        // the pair check, zone z - team a would be worker 10 alone.
        let mut a = Vec::new();
        for w in 0..10 {
            a.push((w, "d1", Some("team:a"), Some("zone:z")));
        }
        a.push((10, "d1", Some("team:b"), Some("zone:z")));
        for w in 11..30 {
            a.push((w, "d1", Some("team:b"), Some("zone:y")));
        }
        let hidden = suppress_site(&slots(&a), 10);
        // Team a (10) and zone z (11) differ by worker 10: a is hidden. But
        // a = site - b is still known, so zone z goes too; then z = site - y
        // and y goes. Left: the site and team b, from which nothing smaller
        // than team a (10 workers) can be computed.
        for g in ["team:a", "zone:z", "zone:y"] {
            for p in ["w1", "all"] {
                assert!(hidden.contains(&name(g, p)), "{g} {p} published: {hidden:?}");
            }
        }
        assert!(!hidden.contains(&name("team:b", "w1")));
        assert!(!hidden.contains(&name("site", "all")));
        assert!(!hidden.contains(&name("site", "w1")));
        // With ten workers of team b in zone z, every difference covers
        // ten workers: nothing is hidden.
        let mut a2 = a.clone();
        for w in 30..39 {
            a2.push((w, "d1", Some("team:b"), Some("zone:z")));
        }
        let hidden = suppress_site(&slots(&a2), 10);
        assert!(hidden.is_empty(), "{hidden:?}");
    }

    #[test]
    fn the_whole_input_against_its_weeks() {
        // 20 workers in week 1; 3 of them again in week 2. Week 2 (3) is
        // hidden; all - week 1 would be week 2, so week 1 goes too.
        let mut a = Vec::new();
        for w in 0..20 {
            a.push((w, "d1", None, None));
        }
        for w in 0..3 {
            a.push((w, "d3", None, None));
        }
        let hidden = suppress_site(&slots(&a), 10);
        assert!(hidden.contains(&name("site", "w2")));
        assert!(hidden.contains(&name("site", "w1")));
        assert!(!hidden.contains(&name("site", "all")));
        // The days: d3 (3 workers) hidden, so d1 too.
        assert!(hidden.contains(&name("day", "d3")));
        assert!(hidden.contains(&name("day", "d1")));
    }

    #[test]
    fn nothing_hidden_when_every_difference_is_large() {
        let mut a = Vec::new();
        for w in 0..12 {
            a.push((w, "d1", Some("team:a"), Some("zone:z")));
            a.push((w, "d3", Some("team:a"), Some("zone:z")));
        }
        for w in 12..24 {
            a.push((w, "d1", Some("team:b"), Some("zone:y")));
            a.push((w, "d3", Some("team:b"), Some("zone:y")));
        }
        assert!(suppress_site(&slots(&a), 10).is_empty());
    }

    // --- property test: a brute-force attacker ---------------------------

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Shifts of each cell, as (worker, shift index) sets.
    fn cell_shifts(slots: &[Slot], (g, p): &CellName) -> BTreeSet<usize> {
        slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                let in_group = match g.as_str() {
                    "site" => true,
                    "day" => s.day == p,
                    g => s.team == Some(g) || s.zone == Some(g),
                };
                let in_period = g == "day" || p == "all" || s.week == p;
                in_group && in_period
            })
            .map(|(i, _)| i)
            .collect()
    }

    fn distinct(slots: &[Slot], shifts: &BTreeSet<usize>) -> usize {
        shifts.iter().map(|i| slots[*i].worker).collect::<BTreeSet<_>>().len()
    }

    /// Property: with random overlapping team and zone assignments over
    /// several weeks and days, no published cell has fewer than k workers,
    /// no pair of published cells differs by 1 to k-1 workers, and no
    /// chain (a published cell minus any set of disjoint published cells
    /// inside it, found by exhaustive search) leaves 1 to k-1 workers.
    #[test]
    fn property_no_pair_or_chain_of_published_cells_isolates_under_k_workers() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let days = ["d1", "d2", "d3", "d4"];
        let mut checked = 0;
        for case in 0..1500 {
            let k = 3 + rng.below(4) as usize;
            let workers = k as u64 + rng.below(3 * k as u64);
            let n_days = 1 + rng.below(4) as usize;
            let teams = ["team:a", "team:b", "team:c"];
            let zones = ["zone:x", "zone:y"];
            let n_teams = rng.below(4) as usize;
            let n_zones = rng.below(3) as usize;
            let mut owned: Vec<(u64, &str, Option<&str>, Option<&str>)> = Vec::new();
            for w in 0..workers {
                // A home team and zone, sometimes changed for one shift.
                let home_t = (n_teams > 0).then(|| teams[rng.below(n_teams as u64) as usize]);
                let home_z = (n_zones > 0).then(|| zones[rng.below(n_zones as u64) as usize]);
                for d in days.iter().take(n_days) {
                    if rng.below(4) == 0 {
                        continue;
                    }
                    let t = if rng.below(5) == 0 && n_teams > 0 {
                        Some(teams[rng.below(n_teams as u64) as usize])
                    } else {
                        home_t
                    };
                    let z = if rng.below(5) == 0 && n_zones > 0 {
                        Some(zones[rng.below(n_zones as u64) as usize])
                    } else {
                        home_z
                    };
                    owned.push((w, d, t, z));
                }
            }
            let s = slots(&owned);
            if s.is_empty() || distinct(&s, &(0..s.len()).collect()) < k {
                continue;
            }
            let t = site_table(&s);
            let hidden = t.suppress(k);
            let published: Vec<(CellName, BTreeSet<usize>)> = (0..t.len())
                .filter(|i| !hidden[*i])
                .map(|i| (t.name(i).clone(), cell_shifts(&s, t.name(i))))
                .collect();
            for (n, sh) in &published {
                assert!(distinct(&s, sh) >= k, "case {case}: {n:?} published under k");
            }
            for (i, (na, a)) in published.iter().enumerate() {
                for (nb, b) in &published[i + 1..] {
                    let d: BTreeSet<usize> = a.symmetric_difference(b).copied().collect();
                    let n = distinct(&s, &d);
                    assert!(n == 0 || n >= k, "case {case} k {k}: {na:?} and {nb:?} differ by {n} workers");
                }
            }
            // Chains: a parent minus disjoint published cells inside it.
            for (np, p) in &published {
                let inside: Vec<&BTreeSet<usize>> = published
                    .iter()
                    .filter(|(n, c)| n != np && c.is_subset(p) && c != p)
                    .map(|(_, c)| c)
                    .collect();
                if inside.len() > 14 {
                    continue;
                }
                for mask in 1u32..(1 << inside.len()) {
                    let chosen: Vec<&BTreeSet<usize>> =
                        (0..inside.len()).filter(|b| mask & (1 << b) != 0).map(|b| inside[b]).collect();
                    let total: usize = chosen.iter().map(|c| c.len()).sum();
                    let union: BTreeSet<usize> = chosen.iter().flat_map(|c| c.iter().copied()).collect();
                    if union.len() != total {
                        continue; // not disjoint
                    }
                    let rest: BTreeSet<usize> = p.difference(&union).copied().collect();
                    let n = distinct(&s, &rest);
                    assert!(
                        n == 0 || n >= k,
                        "case {case} k {k}: {np:?} minus {} parts leaves {n} workers",
                        chosen.len()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000, "the attacker tried only {checked} chains");
    }
}
