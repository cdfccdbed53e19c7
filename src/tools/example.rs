//! The example game of SPEC.md: its table, its mapping spec
//! (`fixtures/game/`), and a deterministic generator of realistic users that
//! tests, the demo and benchmarks share.
//!
//! Blobs: median a few KB and about 140 target rows, a heavy tail of very
//! active users up to ~50 KB, deprecated keys in some, and about 1% dirty
//! (numbers as strings, negative counts, null where an object belongs,
//! unknown modes), which the spec's `fail` rules refuse.

use anyhow::{Context, Result};
use decant::Spec;
use serde_json::{Map, Value, json};
use tokio_postgres::Client;

/// The game's mapping spec (`fixtures/game/decant.toml`).
pub const SPEC: &str = include_str!("../../fixtures/game/decant.toml");

/// The game's table before decant (`fixtures/game/schema.sql`).
pub const SCHEMA: &str = include_str!("../../fixtures/game/schema.sql");

/// The game's fixups (`fixtures/game/fixups`): one per kind of dirt the
/// generator plants, as (name, file text).
pub const FIXUPS: [(&str, &str); 4] = [
    (
        "0001-null-stats",
        include_str!("../../fixtures/game/fixups/0001-null-stats.toml"),
    ),
    (
        "0002-number-strings",
        include_str!("../../fixtures/game/fixups/0002-number-strings.toml"),
    ),
    (
        "0003-negative-counts",
        include_str!("../../fixtures/game/fixups/0003-negative-counts.toml"),
    ),
    (
        "0004-unknown-mode",
        include_str!("../../fixtures/game/fixups/0004-unknown-mode.toml"),
    ),
];

/// The game's fixups, parsed.
pub fn fixups() -> Vec<decant::Fixup> {
    FIXUPS
        .iter()
        .map(|(name, text)| decant::Fixup::parse(name, text).expect("the game's fixups parse"))
        .collect()
}

/// The parsed game spec.
pub fn spec() -> Spec {
    Spec::parse(SPEC).expect("the bundled game spec is valid")
}

/// splitmix64: small, fast, and the same on every platform and version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64) as usize]
    }
}

const MODES: [&str; 10] = [
    "kidnap",
    "murder",
    "classic",
    "ranked_kidnap",
    "ranked_murder",
    "duo",
    "squad",
    "tournament",
    "halloween_2022",
    "winter_2022",
];

const STATS: [&str; 40] = [
    "points",
    "gamesPlayed",
    "gamesWon",
    "gamesLost",
    "kills",
    "deaths",
    "assists",
    "streak",
    "bestStreak",
    "timePlayedMs",
    "rescues",
    "kidnaps",
    "betrayals",
    "escapes",
    "votesCast",
    "votesReceived",
    "itemsUsed",
    "itemsFound",
    "coinsEarned",
    "coinsSpent",
    "quests",
    "questsFailed",
    "mvp",
    "firstBlood",
    "lastStanding",
    "revives",
    "traps",
    "trapsDisarmed",
    "distanceWalked",
    "jumps",
    "emotes",
    "chatMessages",
    "reports",
    "friendsInvited",
    "partiesJoined",
    "draws",
    "surrenders",
    "comebacks",
    "perfectGames",
    "hoursOnline",
];

/// The kinds of dirt the generator plants, one per dirty user.
pub const DIRT: [&str; 4] = [
    "number as string",
    "negative count",
    "null where an object belongs",
    "unknown mode",
];

/// A generated user.
#[derive(Debug, Clone)]
pub struct GeneratedUser {
    /// Its id.
    pub id: i64,
    /// Its display name.
    pub name: String,
    /// Its blob.
    pub blob: Value,
    /// The dirt planted in it, if any (one of [`DIRT`]).
    pub dirt: Option<&'static str>,
}

/// The user with this id under this seed: the same every time.
pub fn user(seed: u64, id: i64) -> GeneratedUser {
    let mut rng = Rng::new(seed ^ (id as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let activity = rng.unit();
    // a heavy tail: 3% very active users carry most of the bytes
    let (modes, stats_lo, stats_hi, ach_hi) = if activity < 0.03 {
        (rng.range(6, 11), 30, 41, 520)
    } else if activity < 0.25 {
        (rng.range(3, 6), 22, 36, 60)
    } else {
        (rng.range(2, 4), 18, 32, 40)
    };
    let mut stats = Map::new();
    let mut mode_order: Vec<&str> = MODES.to_vec();
    for i in 0..modes as usize {
        let j = rng.range(i as u64, MODES.len() as u64) as usize;
        mode_order.swap(i, j);
        let mut m = Map::new();
        let n = rng.range(stats_lo, stats_hi) as usize;
        let played = rng.range(1, 5000);
        for s in STATS.iter().take(n) {
            let v = match *s {
                "gamesPlayed" => played,
                "gamesWon" => played / 2,
                "timePlayedMs" => played * rng.range(60_000, 600_000),
                _ => rng.range(0, played * 3 + 1),
            };
            m.insert((*s).to_string(), json!(v));
        }
        stats.insert(mode_order[i].to_string(), Value::Object(m));
    }
    let last_played = 1_600_000_000_000u64 + rng.range(0, 70_000_000_000);
    stats.insert("lastPlayed".into(), json!(last_played));

    let mut achievements = Map::new();
    for a in 0..rng.range((ach_hi / 8).max(5), ach_hi) {
        let mut ach = Map::new();
        ach.insert(
            "unlockedAt".into(),
            json!(1_600_000_000_000u64 + rng.range(0, 70_000_000_000)),
        );
        ach.insert("progress".into(), json!(rng.range(0, 100)));
        if rng.unit() < 0.1 {
            ach.insert(
                "tier".into(),
                json!(rng.pick(&["bronze", "silver", "gold"])),
            );
        }
        achievements.insert(format!("achievement_{a:03}"), Value::Object(ach));
    }

    let mut bots = Map::new();
    let n_bots = rng.range(2, 12);
    for b in 0..n_bots {
        let mut bot = Map::new();
        bot.insert("level".into(), json!(rng.range(1, 60)));
        bot.insert("unlocked".into(), json!(rng.unit() < 0.8));
        if rng.unit() < 0.2 {
            bot.insert(
                "skin".into(),
                json!(rng.pick(&["red", "blue", "gold", "ghost"])),
            );
        }
        bots.insert(format!("bot_{b:02}"), Value::Object(bot));
    }
    let selected: Vec<Value> = (0..rng.range(1, 4))
        .map(|_| json!(format!("bot_{:02}", rng.range(0, n_bots))))
        .collect();
    bots.insert("selected".into(), Value::Array(selected));

    let mut pref = Map::new();
    pref.insert("sound".into(), json!(rng.unit() < 0.7));
    pref.insert(
        "theme".into(),
        json!(rng.pick(&["dark", "light", "system"])),
    );
    pref.insert(
        "language".into(),
        json!(rng.pick(&["en", "de", "ne", "fr", "ja"])),
    );
    for i in 0..rng.range(2, 12) {
        pref.insert(format!("hint_{i}_seen"), json!(rng.unit() < 0.5));
    }
    pref.insert(
        "keybindings".into(),
        json!({"jump": "space", "crouch": "c"}),
    );

    let mode = *rng.pick(&["kidnap", "murder", "classic"]);
    let mut marriage = Map::new();
    marriage.insert(
        "config".into(),
        json!({"mans": rng.range(1, 8), "mode": mode}),
    );
    marriage.insert("stats".into(), Value::Object(stats));
    marriage.insert("achievements".into(), Value::Object(achievements));

    let mut blob = Map::new();
    blob.insert("xp".into(), json!((rng.range(0, 2_000_000) as f64) / 2.0));
    blob.insert("marriage".into(), Value::Object(marriage));
    blob.insert("bots".into(), Value::Object(bots));
    blob.insert("pref".into(), Value::Object(pref));
    // deprecated keys nobody maps: they stay in the residual
    if rng.unit() < 0.2 {
        blob.insert("legacyCoins".into(), json!(rng.range(0, 10_000)));
        blob.insert("tutorialDone".into(), json!(true));
    }
    let mut blob = Value::Object(blob);

    let dirt = if rng.unit() < 0.01 {
        let kind = *rng.pick(&DIRT);
        let m = &mut blob["marriage"];
        let first_mode = mode_order[0];
        match kind {
            "number as string" => {
                let v = m["stats"][first_mode]["points"].to_string();
                m["stats"][first_mode]["points"] = Value::String(v);
            }
            "negative count" => m["stats"][first_mode]["gamesWon"] = json!(-1),
            "null where an object belongs" => m["stats"] = Value::Null,
            _ => m["config"]["mode"] = json!("zombie"),
        }
        Some(kind)
    } else {
        None
    };
    GeneratedUser {
        id,
        name: format!("player{id}"),
        blob,
        dirt,
    }
}

/// Creates the game's table (if missing) and loads users `1..=count`.
/// Returns how many were dirty.
/// The comment `load` puts on the table it creates: a table without it
/// was not made by `decant example`.
const MADE_BY_EXAMPLE: &str = "decant example game";

/// Refuses to load into a `"user"` table that `decant example` did not
/// create (a real game's, on a server reached through $DATABASE_URL by
/// mistake) unless `force`.
pub async fn refuse_foreign_table(client: &Client, force: bool) -> Result<()> {
    let row = client
        .query_one(
            "SELECT to_regclass('\"user\"') IS NOT NULL, \
                    obj_description(to_regclass('\"user\"'), 'pg_class'), \
                    current_database()",
            &[],
        )
        .await
        .with_context(|| "looking for a \"user\" table")?;
    let (exists, comment, db): (bool, Option<String>, String) =
        (row.get(0), row.get(1), row.get(2));
    if exists && comment.as_deref() != Some(MADE_BY_EXAMPLE) && !force {
        anyhow::bail!(
            "database {db:?} already has a \"user\" table that `decant example` did not create: \
             generated users would be inserted among its rows. Point --database-url at a scratch \
             database, or pass --force to load into it anyway"
        );
    }
    Ok(())
}

pub async fn load(client: &Client, count: i64, seed: u64) -> Result<usize> {
    let created: bool = client
        .query_one("SELECT to_regclass('\"user\"') IS NULL", &[])
        .await
        .with_context(|| "looking for a \"user\" table")?
        .get(0);
    client
        .batch_execute(SCHEMA)
        .await
        .with_context(|| "creating the game table")?;
    if created {
        client
            .batch_execute(&format!("COMMENT ON TABLE \"user\" IS '{MADE_BY_EXAMPLE}'"))
            .await
            .with_context(|| "marking the game table")?;
    }
    let stmt = client
        .prepare(
            "INSERT INTO \"user\" (id, name, data) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::jsonb[])",
        )
        .await
        .with_context(|| "preparing the user insert")?;
    let mut dirty = 0;
    let mut next = 1;
    while next <= count {
        let end = (next + 2000).min(count + 1);
        let users: Vec<GeneratedUser> = (next..end).map(|id| user(seed, id)).collect();
        dirty += users.iter().filter(|u| u.dirt.is_some()).count();
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        let blobs: Vec<&Value> = users.iter().map(|u| &u.blob).collect();
        client
            .execute(&stmt, &[&ids, &names, &blobs])
            .await
            .with_context(|| "loading generated users")?;
        next = end;
    }
    client
        .batch_execute("ANALYZE \"user\"")
        .await
        .with_context(|| "analyzing the game table")?;
    Ok(dirty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use decant::explode;

    #[test]
    fn users_are_deterministic_and_realistic() {
        assert_eq!(user(7, 42).blob, user(7, 42).blob);
        assert_ne!(user(7, 42).blob, user(8, 42).blob);
        let spec = spec();
        let n = 3000;
        let mut sizes = Vec::new();
        let mut rows = Vec::new();
        let mut dirty = 0;
        for id in 1..=n {
            let u = user(1, id);
            sizes.push(u.blob.to_string().len());
            match explode(&spec, &u.blob) {
                Ok(e) => {
                    assert!(u.dirt.is_none(), "dirt {:?} was accepted", u.dirt);
                    rows.push(e.rows.len());
                }
                Err(_) => {
                    assert!(u.dirt.is_some(), "clean user {id} refused");
                    dirty += 1;
                }
            }
        }
        sizes.sort();
        rows.sort();
        let median = sizes[sizes.len() / 2];
        assert!(
            (2_000..8_000).contains(&median),
            "median blob {median} bytes"
        );
        assert!(
            sizes[sizes.len() - 1] > 20_000,
            "no heavy tail: max {} median {median} p99 {}",
            sizes[sizes.len() - 1],
            sizes[sizes.len() * 99 / 100]
        );
        assert!(sizes[sizes.len() - 1] < 60_000, "tail too heavy");
        let median_rows = rows[rows.len() / 2];
        assert!(
            (80..200).contains(&median_rows),
            "median rows {median_rows}"
        );
        assert!((10..70).contains(&dirty), "{dirty} dirty of {n}");
    }
}
