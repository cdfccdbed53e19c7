//! The pure core: the mapping spec, JSON and number handling, column values,
//! explode/reconstruct and schedules. Nothing here does I/O or knows the
//! database driver; everything is unit- and property-tested in place.

pub(crate) mod census;
pub(crate) mod explode;
pub(crate) mod fixup;
pub(crate) mod id;
pub(crate) mod json;
pub(crate) mod number;
pub(crate) mod schedule;
pub(crate) mod spec;
pub(crate) mod value;

/// A count of users for a message: "1 user", "2 users" (a count that is
/// not a `u64`, such as a negative one, reads as 0).
pub fn users(n: impl TryInto<u64>) -> String {
    users_of(n, "")
}

/// `n` users of a kind, as `users` words them: `1 migrated user`, `2
/// migrated users` (no kind: `1 user`).
pub fn users_of(n: impl TryInto<u64>, kind: &str) -> String {
    let kind = if kind.is_empty() {
        String::new()
    } else {
        format!("{kind} ")
    };
    match n.try_into().unwrap_or(0) {
        1 => format!("1 {kind}user"),
        n => format!("{n} {kind}users"),
    }
}

/// `n` of `total` in percent with `decimals` places, never rounded to 0
/// or 100 when it is neither: one user of a million reads `<0.01`, all
/// but one `>99.99` (0 when `total` is 0).
pub fn percent(n: impl TryInto<u64>, total: impl TryInto<u64>, decimals: usize) -> String {
    let (n, total) = (n.try_into().unwrap_or(0), total.try_into().unwrap_or(0));
    if total == 0 {
        return format!("{:.decimals$}", 0.0);
    }
    let share = 100.0 * n as f64 / total as f64;
    let shown = format!("{share:.decimals$}");
    let step = 10f64.powi(-(decimals as i32));
    if n > 0 && shown.parse::<f64>() == Ok(0.0) {
        format!("<{step:.decimals$}")
    } else if n < total && shown.parse::<f64>() == Ok(100.0) {
        format!(">{:.decimals$}", 100.0 - step)
    } else {
        shown
    }
}

/// The verb after a count: "is" for one, "are" for the others.
pub fn is_are(n: impl TryInto<u64>) -> &'static str {
    if n.try_into().is_ok_and(|n| n == 1) {
        "is"
    } else {
        "are"
    }
}

/// How many of the leading users, by their sizes in order, a page or a
/// batch of `budget` bytes holds: the first always, then each while the
/// total stays within the budget (a negative size counts as 0); 0 only
/// when there is no user.
pub(crate) fn fits(sizes: impl Iterator<Item = i64>, budget: u64) -> usize {
    let mut total = 0u64;
    let mut n = 0;
    for size in sizes {
        total = total.saturating_add(size.max(0) as u64);
        if n > 0 && total > budget {
            break;
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::{fits, percent};
    use proptest::prelude::*;

    #[test]
    fn a_percentage_is_never_rounded_to_none_or_all() {
        assert_eq!(percent(5024u64, 5025u64, 1), ">99.9");
        assert_eq!(percent(5025u64, 5025u64, 1), "100.0");
        assert_eq!(percent(1u64, 1_000_000u64, 2), "<0.01");
        assert_eq!(percent(0u64, 1_000_000u64, 2), "0.00");
        assert_eq!(percent(3694i64, 4999i64, 1), "73.9");
        assert_eq!(percent(1u64, 0u64, 1), "0.0");
    }

    #[test]
    fn a_page_ends_before_the_user_that_passes_its_bytes() {
        assert_eq!(fits([].into_iter(), 100), 0);
        assert_eq!(fits([500].into_iter(), 100), 1, "the first always comes");
        assert_eq!(fits([40, 60, 1].into_iter(), 100), 2);
        assert_eq!(fits([40, 60].into_iter(), 100), 2, "up to the budget");
        assert_eq!(fits([0, 0, 0].into_iter(), 0), 3);
        assert_eq!(fits([i64::MAX, i64::MAX].into_iter(), i64::MAX as u64), 1);
        assert_eq!(
            fits([-5, 10].into_iter(), 10),
            2,
            "a size is never negative"
        );
    }

    proptest! {
        #[test]
        fn pages_cover_every_user_in_order(
            sizes in proptest::collection::vec(0i64..1000, 0..50),
            budget in 0u64..3000,
        ) {
            let mut at = 0;
            while at < sizes.len() {
                let n = fits(sizes[at..].iter().copied(), budget);
                prop_assert!(n >= 1);
                let page: u64 = sizes[at..at + n].iter().map(|&z| z as u64).sum();
                prop_assert!(n == 1 || page <= budget);
                if at + n < sizes.len() {
                    prop_assert!(page + sizes[at + n] as u64 > budget, "a page ends early");
                }
                at += n;
            }
        }
    }
}
