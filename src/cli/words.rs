//! Counts in the command line's messages.

/// A count of users for a message: "1 user", "2 users".
pub(crate) fn users(n: impl TryInto<u64>) -> String {
    match n.try_into().unwrap_or(0) {
        1 => "1 user".into(),
        n => format!("{n} users"),
    }
}
