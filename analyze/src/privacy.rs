//! k-anonymity of published groups, with complementary suppression.
//!
//! Within one site, one kind of group (teams, or zones) and one period,
//! a group with fewer than k distinct workers is hidden. Subtracting the
//! published groups from the site figure then gives the figure of the
//! hidden ones together (plus the workers in no group of that kind), so
//! more groups are hidden, smallest first, until that remainder covers at
//! least k workers or nothing at all.

use std::collections::{BTreeMap, BTreeSet};

/// Groups of one kind in one site and period: name -> distinct workers.
/// `site_workers` is the site's population in the period.
pub fn suppress(
    groups: &BTreeMap<String, BTreeSet<u64>>,
    site_workers: &BTreeSet<u64>,
    k: usize,
) -> BTreeSet<String> {
    let mut hidden: BTreeSet<String> =
        groups.iter().filter(|(_, w)| w.len() < k).map(|(n, _)| n.clone()).collect();
    // Workers who belong to no group of this kind form an unpublished
    // remainder of their own.
    let grouped: BTreeSet<u64> = groups.values().flatten().copied().collect();
    let loose: BTreeSet<u64> = site_workers.difference(&grouped).copied().collect();
    loop {
        let mut remainder: BTreeSet<u64> = loose.clone();
        for h in &hidden {
            remainder.extend(groups[h].iter().copied());
        }
        // Workers of hidden groups who are also in a published group are
        // still recoverable only as part of the remainder.
        if remainder.is_empty() || remainder.len() >= k {
            return hidden;
        }
        // Hide the smallest published group (by size, then name).
        let next = groups
            .iter()
            .filter(|(n, _)| !hidden.contains(*n))
            .min_by_key(|(n, w)| (w.len(), (*n).clone()))
            .map(|(n, _)| n.clone());
        match next {
            Some(n) => {
                hidden.insert(n);
            }
            // Nothing left to hide: every group is hidden already.
            None => return hidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(sizes: &[usize]) -> (BTreeMap<String, BTreeSet<u64>>, BTreeSet<u64>) {
        let mut g = BTreeMap::new();
        let mut all = BTreeSet::new();
        let mut id = 0u64;
        for (i, n) in sizes.iter().enumerate() {
            let w: BTreeSet<u64> = (id..id + *n as u64).collect();
            id += *n as u64;
            all.extend(w.iter().copied());
            g.insert(format!("g{i}"), w);
        }
        (g, all)
    }

    #[test]
    fn a_lone_small_group_takes_the_smallest_other_with_it() {
        let (g, all) = groups(&[12, 30, 4, 15]);
        let hidden = suppress(&g, &all, 10);
        // g2 (4) is under k; alone it could be recovered as site - rest,
        // so g0 (12, the smallest published) is hidden too.
        assert_eq!(hidden, ["g0", "g2"].iter().map(|s| s.to_string()).collect());
    }

    #[test]
    fn two_small_groups_that_add_up_to_k_stay_the_only_hidden() {
        let (g, all) = groups(&[6, 5, 20]);
        let hidden = suppress(&g, &all, 10);
        assert_eq!(hidden, ["g0", "g1"].iter().map(|s| s.to_string()).collect());
    }

    #[test]
    fn nothing_hidden_when_all_groups_are_large() {
        let (g, all) = groups(&[10, 11]);
        assert!(suppress(&g, &all, 10).is_empty());
    }

    #[test]
    fn workers_in_no_group_count_as_a_hidden_remainder() {
        let (g, mut all) = groups(&[12, 14]);
        all.extend([1000, 1001]);
        let hidden = suppress(&g, &all, 10);
        assert_eq!(hidden, ["g0"].iter().map(|s| s.to_string()).collect());
    }

    /// Property: for random group sizes, no published group is under k and
    /// the remainder (site minus published groups) is empty or covers at
    /// least k workers, so no hidden group can be recovered by subtraction.
    #[test]
    fn property_no_group_under_k_is_published_or_recoverable() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..5000 {
            let k = 5 + next(8) as usize;
            let count = 1 + next(8) as usize;
            let sizes: Vec<usize> = (0..count).map(|_| 1 + next(30) as usize).collect();
            let (g, mut all) = groups(&sizes);
            let loose = next(4);
            all.extend((0..loose).map(|i| 10_000 + i));
            if all.len() < k {
                // A site under k publishes nothing at all (see rules.rs).
                continue;
            }
            let hidden = suppress(&g, &all, k);
            let published: BTreeSet<u64> =
                g.iter().filter(|(n, _)| !hidden.contains(*n)).flat_map(|(_, w)| w.iter().copied()).collect();
            for (n, w) in &g {
                if !hidden.contains(n) {
                    assert!(w.len() >= k, "published {n} with {} < {k}: {sizes:?}", w.len());
                }
            }
            let remainder = all.len() - published.len();
            assert!(remainder == 0 || remainder >= k, "remainder {remainder} < {k}: {sizes:?} loose {loose}");
        }
    }
}
