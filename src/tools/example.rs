//! The bundled examples: the game of SPEC.md (`fixtures/game/`) and a shop
//! (`fixtures/shop/`), each with its table, its mapping spec, its fixups and
//! a deterministic generator of realistic users that tests, the demo and
//! benchmarks share.
//!
//! The game:
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

/// The parsed game spec.
pub fn spec() -> Spec {
    GAME.spec()
}

/// A bundled example: its table, spec, fixups and generator, and what the
/// demo writes and ranks.
#[derive(Debug)]
pub struct Example {
    /// Its name (`--example`).
    pub name: &'static str,
    /// One line about it.
    pub about: &'static str,
    /// The source table (a plain identifier).
    pub table: &'static str,
    /// The table's text column besides the id and the blob.
    pub label_column: &'static str,
    /// The mapping spec.
    pub spec: &'static str,
    /// The table before decant.
    pub schema: &'static str,
    /// The fixups, as (name, file text).
    pub fixups: &'static [(&'static str, &'static str)],
    /// The user with an id under a seed.
    pub user: fn(u64, i64) -> GeneratedUser,
    /// The object under which the demo's backend writes its counter.
    pub writes_under: &'static str,
    /// The ranked statistic the demo reads, and what it counts.
    pub ranked: (&'static str, &'static str),
}

/// The game of SPEC.md.
pub const GAME: Example = Example {
    name: "game",
    about: "a game's players: statistics per mode, achievements, bots, preferences",
    table: "user",
    label_column: "name",
    spec: SPEC,
    schema: SCHEMA,
    fixups: &FIXUPS,
    user,
    writes_under: "pref",
    ranked: ("kidnap_points", "kidnap points"),
};

/// A shop's customers: ISO and epoch-second timestamps, arrays of objects,
/// integer and date keys.
pub const SHOP: Example = Example {
    name: "shop",
    about: "a shop's customers: account, addresses, tags, yearly orders, daily visits",
    table: "customer",
    label_column: "email",
    spec: include_str!("../../fixtures/shop/decant.toml"),
    schema: include_str!("../../fixtures/shop/schema.sql"),
    fixups: &[
        (
            "0001-number-strings",
            include_str!("../../fixtures/shop/fixups/0001-number-strings.toml"),
        ),
        (
            "0002-negative-orders",
            include_str!("../../fixtures/shop/fixups/0002-negative-orders.toml"),
        ),
    ],
    user: shop_user,
    writes_under: "prefs",
    ranked: ("loyalty_points", "loyalty points"),
};

/// Every bundled example.
pub const EXAMPLES: [&Example; 2] = [&GAME, &SHOP];

/// The example of this name.
pub fn by_name(name: &str) -> Result<&'static Example> {
    EXAMPLES
        .iter()
        .copied()
        .find(|e| e.name == name)
        .ok_or_else(|| {
            let names: Vec<String> = EXAMPLES
                .iter()
                .map(|e| format!("{} ({})", e.name, e.about))
                .collect();
            anyhow::anyhow!(
                "no example named {name:?}: choose one of {}",
                names.join("; ")
            )
        })
}

impl Example {
    /// The parsed spec.
    pub fn spec(&self) -> Spec {
        Spec::parse(self.spec).expect("a bundled spec is valid")
    }

    /// The fixups, parsed.
    pub fn fixups(&self) -> Vec<decant::Fixup> {
        self.fixups
            .iter()
            .map(|(name, text)| decant::Fixup::parse(name, text).expect("bundled fixups parse"))
            .collect()
    }

    /// The comment `load` puts on the table it creates: a table without it
    /// was not made by `decant example`.
    fn marker(&self) -> String {
        format!("decant example {}", self.name)
    }
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
pub async fn load(client: &Client, count: i64, seed: u64) -> Result<usize> {
    GAME.load(client, count, seed).await
}

impl Example {
    /// Refuses to load into a source table that `decant example` did not
    /// create for this example (a real one, on a server reached through
    /// $DATABASE_URL by mistake) unless `force`.
    pub async fn refuse_foreign_table(&self, client: &Client, force: bool) -> Result<()> {
        let table = format!("\"{}\"", self.table);
        let row = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL, obj_description(to_regclass($1), 'pg_class'), \
                        current_database()",
                &[&table],
            )
            .await
            .with_context(|| format!("looking for a {table} table"))?;
        let (exists, comment, db): (bool, Option<String>, String) =
            (row.get(0), row.get(1), row.get(2));
        if exists && comment != Some(self.marker()) && !force {
            anyhow::bail!(
                "database {db:?} already has a {table} table that `decant example` did not create: \
                 generated users would be inserted among its rows. Point --database-url at a scratch \
                 database, or pass --force to load into it anyway"
            );
        }
        Ok(())
    }

    /// Creates the example's table (if missing) and loads users
    /// `1..=count`. Returns how many were dirty.
    pub async fn load(&self, client: &Client, count: i64, seed: u64) -> Result<usize> {
        let table = format!("\"{}\"", self.table);
        let created: bool = client
            .query_one("SELECT to_regclass($1) IS NULL", &[&table])
            .await
            .with_context(|| format!("looking for a {table} table"))?
            .get(0);
        client
            .batch_execute(self.schema)
            .await
            .with_context(|| format!("creating the {} table", self.name))?;
        if created {
            client
                .batch_execute(&format!("COMMENT ON TABLE {table} IS '{}'", self.marker()))
                .await
                .with_context(|| format!("marking the {} table", self.name))?;
        }
        let stmt = client
            .prepare(&format!(
                "INSERT INTO {table} (id, \"{}\", data) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::jsonb[])",
                self.label_column
            ))
            .await
            .with_context(|| "preparing the user insert")?;
        let mut dirty = 0;
        let mut next = 1;
        while next <= count {
            let end = (next + 2000).min(count + 1);
            let users: Vec<GeneratedUser> = (next..end).map(|id| (self.user)(seed, id)).collect();
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
            .batch_execute(&format!("ANALYZE {table}"))
            .await
            .with_context(|| format!("analyzing the {} table", self.name))?;
        Ok(dirty)
    }
}

/// The shop's kinds of dirt, one per dirty customer (both repaired by the
/// shop's fixups).
pub const SHOP_DIRT: [&str; 2] = ["number as string", "negative count"];

const TAGS: [&str; 8] = [
    "vip",
    "newsletter",
    "b2b",
    "returns-often",
    "early-adopter",
    "gift-buyer",
    "student",
    "wholesale",
];

const CITIES: [(&str, &str); 8] = [
    ("Berlin", "DE"),
    ("Hamburg", "DE"),
    ("Lyon", "FR"),
    ("Paris", "FR"),
    ("Utrecht", "NL"),
    ("Austin", "US"),
    ("Osaka", "JP"),
    ("Zürich", "CH"),
];

/// The shop customer with this id under this seed: the same every time.
/// About a KB each, a tail of big spenders with many years and visits, about
/// 1% dirty ([`SHOP_DIRT`]) and 2% with values a `keep` rule leaves in
/// the residual (a day that does not exist, an over-long tag).
pub fn shop_user(seed: u64, id: i64) -> GeneratedUser {
    let mut rng = Rng::new(seed ^ 0x5400_0000 ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let big = rng.unit() < 0.03;
    // created 2020-01-01 .. 2024-09, as JavaScript writes it
    let created_ms = 1_577_836_800_000i64 + rng.range(0, 147_000_000_000) as i64;
    let created = jiff::Timestamp::from_millisecond(created_ms)
        .expect("in range")
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    // last seen since, in epoch seconds to the quarter second
    let seen = created_ms / 1000 + rng.range(0, 60_000_000) as i64;
    let last_seen = seen as f64 + rng.range(0, 4) as f64 * 0.25;
    let mut account = Map::new();
    account.insert("createdAt".into(), json!(created));
    account.insert("lastSeen".into(), json!(last_seen));
    account.insert(
        "plan".into(),
        json!(rng.pick(&["free", "free", "plus", "business"])),
    );
    if rng.unit() < 0.3 {
        account.insert("referrer".into(), json!(format!("r{}", rng.range(1, 500))));
    }

    let addresses: Vec<Value> = (0..rng.range(0, if big { 6 } else { 3 }))
        .map(|_| {
            let (city, country) = *rng.pick(&CITIES);
            let mut a = Map::new();
            a.insert("label".into(), json!(rng.pick(&["home", "work", "parents", "pickup"])));
            a.insert(
                "street".into(),
                json!(format!("{} {}", rng.pick(&["Hauptstr.", "Rue Neuve", "Main St", "Kanaalweg"]), rng.range(1, 200))),
            );
            a.insert("city".into(), json!(city));
            a.insert("zip".into(), json!(format!("{:05}", rng.range(1000, 99_999))));
            a.insert("country".into(), json!(country));
            if rng.unit() < 0.5 {
                a.insert(
                    "geo".into(),
                    json!({"lat": (rng.range(0, 18_000) as f64 - 9_000.0) / 100.0, "lng": (rng.range(0, 36_000) as f64 - 18_000.0) / 100.0}),
                );
            }
            Value::Object(a)
        })
        .collect();

    let mut tags: Vec<Value> = (0..rng.range(0, 5))
        .map(|_| json!(rng.pick(&TAGS)))
        .collect();

    let first_year = 2020 + (created_ms - 1_577_836_800_000) / 31_536_000_000;
    let mut by_year = Map::new();
    for year in first_year..=2024 {
        if rng.unit() < 0.25 {
            continue;
        }
        let orders = rng.range(1, if big { 120 } else { 12 });
        let mut y = Map::new();
        y.insert("orders".into(), json!(orders));
        y.insert(
            "spent".into(),
            json!(rng.range(orders * 500, orders * 9_000) as f64 / 100.0),
        );
        if rng.unit() < 0.2 {
            y.insert("returns".into(), json!(rng.range(0, orders + 1)));
        }
        by_year.insert(year.to_string(), Value::Object(y));
    }

    let mut visits = Map::new();
    let start = jiff::civil::date(2024, 1, 1);
    for _ in 0..rng.range(0, if big { 120 } else { 15 }) {
        let day = start
            .checked_add(jiff::Span::new().days(rng.range(0, 300) as i64))
            .expect("in range");
        visits.insert(day.to_string(), json!(rng.range(1, 9)));
    }

    let mut stats = Map::new();
    stats.insert(
        "loyaltyPoints".into(),
        json!(rng.range(0, if big { 200_000 } else { 5_000 })),
    );
    stats.insert("reviews".into(), json!(rng.range(0, 40)));
    stats.insert("wishlistSize".into(), json!(rng.range(0, 60)));
    if rng.unit() < 0.5 {
        stats.insert(
            "avgBasket".into(),
            json!(rng.range(500, 20_000) as f64 / 100.0),
        );
    }

    let mut prefs = Map::new();
    prefs.insert("newsletter".into(), json!(rng.unit() < 0.4));
    prefs.insert(
        "currency".into(),
        json!(rng.pick(&["EUR", "USD", "JPY", "CHF"])),
    );
    prefs.insert(
        "lang".into(),
        json!(rng.pick(&["de", "fr", "en", "nl", "ja"])),
    );
    prefs.insert("darkMode".into(), json!(rng.unit() < 0.5));

    // values a keep rule leaves in the residual
    if rng.unit() < 0.01 {
        visits.insert("2024-02-30".into(), json!(1));
    }
    if rng.unit() < 0.01 {
        tags.push(json!("a-tag-far-longer-than-the-column-allows"));
    }

    let mut blob = Map::new();
    blob.insert("account".into(), Value::Object(account));
    blob.insert("addresses".into(), Value::Array(addresses));
    blob.insert("tags".into(), Value::Array(tags));
    blob.insert(
        "orders".into(),
        json!({"byYear": Value::Object(by_year), "currency": "EUR"}),
    );
    blob.insert("visits".into(), Value::Object(visits));
    blob.insert("stats".into(), Value::Object(stats));
    blob.insert("prefs".into(), Value::Object(prefs));
    // a cart nobody maps: it stays in the residual
    if rng.unit() < 0.3 {
        blob.insert(
            "cart".into(),
            json!({"items": [{"sku": format!("SKU-{}", rng.range(1, 999)), "qty": rng.range(1, 4)}]}),
        );
    }
    let mut blob = Value::Object(blob);

    let dirt = if rng.unit() < 0.01 {
        let kind = *rng.pick(&SHOP_DIRT);
        match kind {
            "number as string" => {
                let v = blob["stats"]["loyaltyPoints"].to_string();
                blob["stats"]["loyaltyPoints"] = Value::String(v);
            }
            _ => {
                // the first year, created if there was none
                let years = blob["orders"]["byYear"].as_object_mut().expect("an object");
                let first = years
                    .keys()
                    .next()
                    .cloned()
                    .unwrap_or_else(|| "2024".into());
                years.insert(first, json!({"orders": -1, "spent": 0}));
            }
        }
        Some(kind)
    } else {
        None
    };
    GeneratedUser {
        id,
        name: format!("customer{id}@example.com"),
        blob,
        dirt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use decant::explode;

    #[test]
    fn shop_customers_are_deterministic_dirty_where_said_and_repaired_by_the_fixups() {
        assert_eq!(shop_user(7, 42).blob, shop_user(7, 42).blob);
        assert_ne!(shop_user(7, 42).blob, shop_user(8, 42).blob);
        let spec = SHOP.spec();
        let fixups = SHOP.fixups();
        let (mut dirty, mut warned, mut sizes) = (0, 0, Vec::new());
        let mut tables = std::collections::BTreeSet::new();
        for id in 1..=3000 {
            let u = shop_user(1, id);
            sizes.push(u.blob.to_string().len());
            match explode(&spec, &u.blob) {
                Ok(e) => {
                    assert!(u.dirt.is_none(), "dirt {:?} was accepted", u.dirt);
                    warned += usize::from(!e.warnings.is_empty());
                    tables.extend(e.rows.iter().map(|r| r.table));
                    let back = decant::reconstruct(&spec, &e.rows, &e.residual).unwrap();
                    assert!(decant::json_eq(&back, &u.blob), "customer {id}");
                }
                Err(_) => {
                    assert!(u.dirt.is_some(), "clean customer {id} refused");
                    dirty += 1;
                    let mut fixed = u.blob.clone();
                    assert!(!decant::Fixup::apply_all(&mut fixed, &fixups).is_empty());
                    explode(&spec, &fixed)
                        .unwrap_or_else(|e| panic!("customer {id} after fixups: {e}"));
                }
            }
        }
        assert!((10..70).contains(&dirty), "{dirty} dirty of 3000");
        assert!(warned > 10, "{warned} with values kept in the residual");
        assert_eq!(tables.len(), spec.tables().len(), "every table gets rows");
        sizes.sort();
        let median = sizes[sizes.len() / 2];
        assert!((400..4_000).contains(&median), "median blob {median} bytes");
        assert!(by_name("shop").is_ok() && by_name("nope").is_err());
    }

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
