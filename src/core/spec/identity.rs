//! The mapping's identity: a canonical rendering of what decides how rows
//! rebuild a blob (source columns, tables with their columns, types and
//! keys, rules with their paths, tables, columns and constants; not rule
//! names, validation, policies or settings), one line per fact, and its
//! fingerprint. Two specs with the same lines rebuild every user alike; the
//! lines that differ name the difference.

use super::model::{RuleKind, Spec};

impl Spec {
    /// The mapping as sorted, canonical lines.
    pub fn mapping_lines(&self) -> Vec<String> {
        let s = &self.source;
        let mut lines = vec![format!(
            "source {}.{} id={} blob={} flag={}",
            s.schema, s.table, s.id, s.blob, s.flag
        )];
        for t in &self.tables {
            let key: Vec<&str> = t
                .key
                .iter()
                .map(|&ci| t.columns[ci].name.as_str())
                .collect();
            lines.push(format!(
                "table {} user={} key=({})",
                t.name,
                t.user_column,
                key.join(",")
            ));
            for c in &t.columns {
                // the Rust name: timestamptz from epoch ms and from ISO text differ
                lines.push(format!(
                    "table {} column {} {}",
                    t.name,
                    c.name,
                    c.ty.identity()
                ));
            }
        }
        for r in &self.rules {
            let t = &self.tables[r.table];
            let col = |ci: usize| t.columns[ci].name.as_str();
            let mut line = format!("rule {} -> table {}", r.path, t.name);
            if let Some(p) = r.position {
                line.push_str(&format!(" position={}", col(p)));
            }
            match &r.kind {
                RuleKind::Scalar { column } => line.push_str(&format!(" value={}", col(*column))),
                RuleKind::Object {
                    keys,
                    nested,
                    extra,
                } => {
                    let keys: Vec<String> = keys
                        .iter()
                        .map(|(k, ci)| format!("{k}:{}", col(*ci)))
                        .chain(nested.iter().map(|(p, ci)| {
                            let p: Vec<String> = p.iter().map(|k| format!("{k:?}")).collect();
                            format!("{}:{}", p.join("."), col(*ci))
                        }))
                        .collect();
                    line.push_str(&format!(" keys=({}) extra={}", keys.join(","), col(*extra)));
                }
            }
            for (ci, v) in &r.constants {
                line.push_str(&format!(" const {}={}", col(*ci), v.key_text()));
            }
            lines.push(line);
        }
        lines.sort();
        lines
    }

    /// A fingerprint of [`Spec::mapping_lines`]: 32 hex digits.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.mapping_lines())
    }
}

/// The fingerprint of mapping lines (two FNV-1a 64-bit hashes).
pub fn fingerprint(lines: &[String]) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for line in lines {
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            a = (a ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            b = (b ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3 ^ 0x9e37_79b9);
        }
    }
    format!("{a:016x}{b:016x}")
}

/// How a spec's mapping differs from a recorded one: lines only in the
/// recorded one (removed or changed) and only in the spec (added).
pub fn difference(recorded: &[String], now: &[String]) -> (Vec<String>, Vec<String>) {
    let gone = recorded
        .iter()
        .filter(|l| !now.contains(l))
        .cloned()
        .collect();
    let added = now
        .iter()
        .filter(|l| !recorded.contains(l))
        .cloned()
        .collect();
    (gone, added)
}

/// Whether `added` only adds tables and rules into those new tables (what
/// an evolution may do without changing how existing rows rebuild).
pub fn only_new_tables(recorded: &[String], added: &[String]) -> Result<(), String> {
    let existing: Vec<&str> = recorded
        .iter()
        .filter_map(|l| l.strip_prefix("table ")?.split(' ').next())
        .collect();
    for line in added {
        let table = if let Some(rest) = line.strip_prefix("table ") {
            rest.split(' ').next()
        } else if line.starts_with("rule ") {
            line.split(" -> table ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
        } else {
            None
        };
        match table {
            Some(t) if !existing.contains(&t) => {}
            _ => {
                return Err(format!(
                    "`{line}` changes what existing rows mean; an evolution may only add tables and rules into them"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAME: &str = include_str!("../../../fixtures/game/decant.toml");

    #[test]
    fn the_fingerprint_ignores_names_order_and_validation_but_not_the_mapping() {
        let game = Spec::parse(GAME).unwrap();
        let fp = game.fingerprint();
        assert_eq!(fp.len(), 32);
        // validation, policies, rule names and settings do not count
        let relaxed = GAME
            .replace("max_length = 64", "max_length = 99")
            .replace("name = \"mode_statistics\"", "name = \"stats\"")
            .replace("lock_timeout_ms = 2000", "lock_timeout_ms = 10");
        assert_eq!(Spec::parse(&relaxed).unwrap().fingerprint(), fp);
        // a type, a path or a removed table does
        let retyped = GAME.replace("level = { type = \"int2\"", "level = { type = \"int4\"");
        let other = Spec::parse(&retyped).unwrap();
        assert_ne!(other.fingerprint(), fp);
        let (gone, added) = difference(&game.mapping_lines(), &other.mapping_lines());
        assert_eq!(gone, vec!["table user_bot column level Int2".to_string()]);
        assert_eq!(added, vec!["table user_bot column level Int4".to_string()]);
        assert!(only_new_tables(&game.mapping_lines(), &added).is_err());
    }

    #[test]
    fn an_evolution_may_add_tables_and_rules_into_them() {
        let game = Spec::parse(GAME).unwrap();
        let grown = format!(
            "{GAME}\n[tables.user_coins.columns]\ncoins = \"int8\"\n\n[[rules]]\nname = \"coins\"\npath = \"legacyCoins\"\ntable = \"user_coins\"\nvalue = \"coins\"\n"
        );
        let grown = Spec::parse(&grown).unwrap();
        let (gone, added) = difference(&game.mapping_lines(), &grown.mapping_lines());
        assert!(gone.is_empty());
        assert_eq!(added.len(), 3, "{added:?}");
        only_new_tables(&game.mapping_lines(), &added).unwrap();
    }
}
