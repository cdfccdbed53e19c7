//! The SQL API against the Rust layer on random blobs of every spec shape
//! the project carries: for each spec, blobs are generated from its rule
//! paths (captured keys, positions, object rules' keys, with values of
//! every JSON kind, nulls, empty containers and unclaimed keys mixed in),
//! twins are migrated, then patched and saved through SQL on one twin and
//! through Rust on the other. Every call's result, every load (SQL and
//! Rust), the stored residuals and the rows must agree, and rolling back
//! must give the blob the calls left.

use crate::api::{assert_same_json, db_message};
use crate::example::Rng;
use crate::harness::TestDb;
use serde_json::{Map, Value, json};

/// One segment of a rule's path.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Capture(String),
    Position,
}

/// A rule as the generator needs it: its path, and for an object rule the
/// key paths of its columns.
#[derive(Debug)]
struct Rule {
    path: Vec<Seg>,
    table: String,
    value: Option<String>,
    keys: Option<Vec<(Vec<String>, String)>>,
}

/// A column's type and allowed values, as its spec line gives them.
#[derive(Debug, Clone, Default)]
struct Column {
    ty: String,
    values: Vec<String>,
}

/// A spec's source table, id and blob columns, target tables and rules,
/// read from its text (enough of TOML for the specs below).
struct Shape {
    table: String,
    id: String,
    blob: String,
    targets: Vec<String>,
    columns: std::collections::HashMap<(String, String), Column>,
    rules: Vec<Rule>,
}

impl Shape {
    fn column(&self, table: &str, name: &str) -> Column {
        self.columns
            .get(&(table.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

fn string_value(line: &str) -> Option<String> {
    let (_, v) = line.split_once('=')?;
    let v = v.trim();
    let v = v.strip_prefix('"')?;
    Some(v[..v.find('"')?].to_string())
}

fn parse_path(p: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {}
            '[' => {
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                }
                out.push(Seg::Position);
            }
            '{' => {
                let mut col = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    col.push(c);
                }
                out.push(Seg::Capture(col));
            }
            '"' => {
                let mut k = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    k.push(c);
                }
                out.push(Seg::Key(k));
            }
            c => {
                let mut k = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n == '.' || n == '[' {
                        break;
                    }
                    k.push(n);
                    chars.next();
                }
                out.push(Seg::Key(k));
            }
        }
    }
    out
}

/// The key paths and columns of `keys = { a = "x", "geo.lat" = "lat" }`.
fn parse_keys(line: &str) -> Vec<(Vec<String>, String)> {
    let inner = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
    inner
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, c)| {
            (
                k.trim()
                    .trim_matches('"')
                    .split('.')
                    .map(str::to_string)
                    .collect(),
                c.trim().trim_matches('"').to_string(),
            )
        })
        .collect()
}

/// `name = "int4"` or `name = { type = "text", values = ["a", "b"] }`.
fn parse_column(line: &str) -> Option<(String, Column)> {
    let (name, rest) = line.split_once('=')?;
    let rest = rest.trim();
    let quoted = |t: &str| -> Vec<String> {
        t.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let ty = if rest.starts_with('{') {
        let at = rest.find("type")?;
        quoted(&rest[at..]).first()?.clone()
    } else {
        quoted(rest).first()?.clone()
    };
    let values = rest
        .find("values")
        .map(|at| {
            let list = &rest[at..];
            quoted(&list[..list.find(']').unwrap_or(list.len())])
        })
        .unwrap_or_default();
    Some((
        name.trim().trim_matches('"').to_string(),
        Column { ty, values },
    ))
}

fn shape(spec: &str) -> Shape {
    let mut s = Shape {
        table: String::new(),
        id: "id".into(),
        blob: "data".into(),
        targets: Vec::new(),
        columns: Default::default(),
        rules: Vec::new(),
    };
    let mut section = "";
    for line in spec.lines().map(str::trim) {
        if line.starts_with('[') {
            section = if line == "[source]" {
                "source"
            } else if line == "[[rules]]" {
                s.rules.push(Rule {
                    path: Vec::new(),
                    table: String::new(),
                    value: None,
                    keys: None,
                });
                "rule"
            } else {
                if let Some(t) = line
                    .strip_prefix("[tables.")
                    .and_then(|l| l.strip_suffix(".columns]"))
                {
                    s.targets.push(t.to_string());
                    "columns"
                } else {
                    ""
                }
            };
            continue;
        }
        match section {
            "source" if line.starts_with("table ") || line.starts_with("table=") => {
                s.table = string_value(line).unwrap();
            }
            "source" if line.starts_with("id ") => s.id = string_value(line).unwrap(),
            "source" if line.starts_with("blob ") => s.blob = string_value(line).unwrap(),
            "rule" if line.starts_with("path ") => {
                s.rules.last_mut().unwrap().path = parse_path(&string_value(line).unwrap());
            }
            "rule" if line.starts_with("keys ") => {
                s.rules.last_mut().unwrap().keys = Some(parse_keys(line));
            }
            "rule" if line.starts_with("table ") => {
                s.rules.last_mut().unwrap().table = string_value(line).unwrap();
            }
            "rule" if line.starts_with("value ") => {
                s.rules.last_mut().unwrap().value = string_value(line);
            }
            "columns" if !line.is_empty() && !line.starts_with('#') => {
                if let Some((name, c)) = parse_column(line) {
                    let t = s.targets.last().unwrap().clone();
                    s.columns.insert((t, name), c);
                }
            }
            _ => {}
        }
    }
    assert!(!s.table.is_empty() && !s.rules.is_empty());
    s
}

/// A leaf value: mostly plausible for some column type, often not.
fn leaf(rng: &mut Rng) -> Value {
    rng.pick(&[
        json!(0),
        json!(1),
        json!(-1),
        json!(7),
        json!(42),
        json!(2024),
        json!(100000),
        json!(1.5),
        json!(-0.0),
        json!(1e300),
        json!(1_714_564_800_000u64),
        json!(1714564800.25),
        json!("x"),
        json!(""),
        json!("EUR"),
        json!("free"),
        json!("2024-05-01"),
        json!("2021-03-04T10:11:12.345Z"),
        json!("a string longer than thirty-two characters, surely"),
        json!(true),
        json!(false),
        json!(null),
        json!(null),
        json!({}),
        json!([]),
        json!({"k": 1}),
        json!([1, "a"]),
    ])
    .clone()
}

fn key(rng: &mut Rng) -> String {
    rng.pick(&[
        "a",
        "b",
        "7",
        "2024",
        "1999",
        "2024-05-01",
        "x.y",
        "loyaltyPoints",
        "gamesPlayed",
        "rating",
        "kidnap",
        "points",
    ])
    .to_string()
}

/// A value a column of `c`'s type takes (most of the time), or anything.
fn value_for(rng: &mut Rng, c: &Column) -> Value {
    if rng.unit() < 0.2 {
        return leaf(rng);
    }
    if !c.values.is_empty() {
        return json!(rng.pick(&c.values));
    }
    match c.ty.as_str() {
        "bool" => json!(rng.unit() < 0.5),
        "int2" | "int4" | "int8" => json!(rng.range(0, 100)),
        "float8" => json!(rng.range(0, 80) as f64 / 4.0),
        "numeric" => json!(rng.range(0, 10_000) as f64 / 100.0),
        "text" => json!(format!("t{}", rng.range(0, 50))),
        "date" => json!(format!("2024-0{}-1{}", rng.range(1, 10), rng.range(0, 10))),
        "timestamptz" | "timestamptz_ms" => json!(1_600_000_000_000u64 + rng.range(0, 1 << 30)),
        "timestamptz_s" => json!(1714564800.25),
        "timestamptz_iso_ms" => json!("2021-03-04T10:11:12.345Z"),
        t if t.starts_with("timestamptz_iso") => json!("2024-05-01T12:00:00Z"),
        _ => leaf(rng),
    }
}

/// A key captured into a column of `c`'s type (most of the time).
fn key_for(rng: &mut Rng, c: &Column) -> String {
    if rng.unit() < 0.15 {
        return key(rng);
    }
    if !c.values.is_empty() {
        return rng.pick(&c.values).clone();
    }
    match c.ty.as_str() {
        "int2" | "int4" | "int8" => rng.range(2000, 2030).to_string(),
        "date" => format!("2024-05-0{}", rng.range(1, 10)),
        _ => rng
            .pick(&[
                "a",
                "b",
                "kidnap",
                "points",
                "gamesPlayed",
                "rating",
                "loyaltyPoints",
            ])
            .to_string(),
    }
}

fn object_leaf(rng: &mut Rng, shape: &Shape, rule: &Rule, keys: &[(Vec<String>, String)]) -> Value {
    if rng.unit() < 0.05 {
        return leaf(rng);
    }
    let mut v = json!({});
    for (k, col) in keys {
        if rng.unit() < 0.6 {
            let mut at = &mut v;
            for (i, part) in k.iter().enumerate() {
                if !at.is_object() {
                    break;
                }
                let next = if i + 1 == k.len() {
                    value_for(rng, &shape.column(&rule.table, col))
                } else {
                    json!({})
                };
                at = at
                    .as_object_mut()
                    .unwrap()
                    .entry(part.clone())
                    .or_insert(next);
            }
        }
    }
    if rng.unit() < 0.3 {
        v.as_object_mut().unwrap().insert(key(rng), leaf(rng));
    }
    v
}

fn grow(rng: &mut Rng, shape: &Shape, path: &[Seg], rule: &Rule) -> Value {
    let Some(first) = path.first() else {
        return match (&rule.keys, &rule.value) {
            (Some(keys), _) => object_leaf(rng, shape, rule, keys),
            (None, Some(col)) => value_for(rng, &shape.column(&rule.table, col)),
            (None, None) => leaf(rng),
        };
    };
    // now and then something else where the path goes on
    if rng.unit() < 0.03 {
        return leaf(rng);
    }
    match first {
        Seg::Key(k) => {
            let mut m = Map::new();
            m.insert(k.clone(), grow(rng, shape, &path[1..], rule));
            if rng.unit() < 0.1 {
                m.insert(format!("other_{}", key(rng)), leaf(rng));
            }
            Value::Object(m)
        }
        Seg::Capture(col) => {
            let c = shape.column(&rule.table, col);
            let mut m = Map::new();
            for _ in 0..rng.range(0, 3) {
                m.insert(key_for(rng, &c), grow(rng, shape, &path[1..], rule));
            }
            Value::Object(m)
        }
        Seg::Position => Value::Array(
            (0..rng.range(0, 4))
                .map(|_| grow(rng, shape, &path[1..], rule))
                .collect(),
        ),
    }
}

/// `b` merged into `a` where they meet as objects or arrays.
fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in y {
                match x.get_mut(&k) {
                    Some(old) => merge(old, v),
                    None => {
                        x.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, v) in y.into_iter().enumerate() {
                match x.get_mut(i) {
                    Some(old) => merge(old, v),
                    None => x.push(v),
                }
            }
        }
        _ => {}
    }
}

fn blob(rng: &mut Rng, shape: &Shape, rules: usize) -> Value {
    let mut b = json!({});
    for _ in 0..rules {
        let r = rng.pick(&shape.rules);
        merge(&mut b, grow(rng, shape, &r.path, r));
    }
    if rng.unit() < 0.2 {
        b.as_object_mut()
            .unwrap()
            .insert(format!("unclaimed_{}", key(rng)), leaf(rng));
    }
    b
}

/// A merge patch: new values along some rule paths, and nulls that
/// remove what the blob holds, now and then a whole blob that is no
/// object.
fn patch(rng: &mut Rng, shape: &Shape, current: &Value) -> Value {
    if rng.unit() < 0.05 {
        return rng
            .pick(&[json!([1, 2]), json!(null), json!("s"), json!(5)])
            .clone();
    }
    let n = rng.range(1, 3) as usize;
    let mut p = blob(rng, shape, n);
    // remove a key somewhere down the current blob
    if rng.unit() < 0.5 {
        let mut path = Vec::new();
        let mut at = current;
        while let Value::Object(m) = at {
            if m.is_empty() {
                break;
            }
            let keys: Vec<&String> = m.keys().collect();
            let k = (*rng.pick(&keys)).clone();
            at = &m[&k];
            path.push(k);
            if rng.unit() < 0.4 {
                break;
            }
        }
        if !path.is_empty() {
            let mut removal = Value::Null;
            for k in path.iter().rev() {
                removal = json!({ k: removal });
            }
            merge(&mut p, removal);
        }
    }
    p
}

async fn rows(client: &tokio_postgres::Client, shape: &Shape, user: i64) -> Vec<String> {
    let mut out = Vec::new();
    for t in &shape.targets {
        for r in client
            .query(
                &format!(
                    "SELECT (to_jsonb(t) - 'user_id')::text FROM \"{t}\" AS t WHERE user_id = $1"
                ),
                &[&user],
            )
            .await
            .unwrap()
        {
            out.push(format!("{t} {}", r.get::<_, String>(0)));
        }
    }
    out.sort();
    out
}

async fn twins_agree(spec: &str, seed: u64) {
    let shape = shape(spec);
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{}\" (\"{}\" bigint PRIMARY KEY, \"{}\" jsonb)",
            shape.table, shape.id, shape.blob
        ))
        .await
        .unwrap();
    let mut rng = Rng::new(seed);
    let users = 30i64;
    let twin = 1000;
    let mut want = Vec::new();
    for u in 1..=users {
        let n = rng.range(1, 6) as usize;
        let b = blob(&mut rng, &shape, n);
        for id in [u, u + twin] {
            client
                .execute(
                    &format!("INSERT INTO \"{}\" VALUES ($1, $2)", shape.table),
                    &[&id, &b],
                )
                .await
                .unwrap();
        }
        want.push(b);
    }
    let decant = db.decant_with(spec, 2);
    decant::init(&client, decant.spec()).await.unwrap();
    let load = async |u: i64| crate::harness::sql_load(&client, u).await;
    let mut migrated = 0;
    for u in 1..=users {
        // most users migrate (the dirty ones fail and stay legacy)
        if u % 5 != 0 {
            for id in [u, u + twin] {
                migrated += decant.migrate_user(id).await.unwrap().migrated.len();
            }
        }
        let b = &want[u as usize - 1];
        assert_same_json(&load(u).await, b, &format!("SQL load of user {u}"));
        assert_same_json(
            &decant.load(u + twin).await.unwrap(),
            b,
            &format!("Rust load of user {}", u + twin),
        );
    }
    assert!(migrated > users as usize / 2, "{migrated} migrated");
    for step in 0..6 {
        for u in 1..=users {
            let current = decant.load(u + twin).await.unwrap();
            let save = rng.unit() < 0.15;
            let p = if save {
                let n = rng.range(0, 5) as usize;
                blob(&mut rng, &shape, n)
            } else {
                patch(&mut rng, &shape, &current)
            };
            let what = format!(
                "step {step}, user {u}, {} {p}",
                if save { "save" } else { "patch" }
            );
            let (a, b) = if save {
                let a = client
                    .execute("SELECT decant.save($1, $2)", &[&u, &p])
                    .await
                    .map(|_| p.clone())
                    .map_err(|e| db_message(&e));
                let b = decant
                    .save(u + twin, &p)
                    .await
                    .map(|_| p.clone())
                    .map_err(|e| e.to_string());
                (a, b)
            } else {
                let a = client
                    .query_one("SELECT decant.patch($1, $2)", &[&u, &p])
                    .await
                    .map(|r| r.get::<_, Value>(0))
                    .map_err(|e| db_message(&e));
                let b = decant.patch(u + twin, &p).await.map_err(|e| e.to_string());
                (a, b)
            };
            match (&a, &b) {
                (Ok(a), Ok(b)) => assert_same_json(a, b, &what),
                (Err(_), Err(_)) => {}
                _ => panic!("{what}: SQL {a:?}, Rust {b:?}"),
            }
            let after = decant.load(u + twin).await.unwrap();
            assert_same_json(&load(u).await, &after, &format!("{what}: SQL load"));
            assert_same_json(
                &decant.load(u).await.unwrap(),
                &after,
                &format!("{what}: Rust load of the SQL twin"),
            );
            let stored = crate::harness::texts(
                &client,
                &format!(
                    "SELECT coalesce(\"{b}\"::text, 'NULL') FROM \"{t}\" WHERE \"{i}\" IN ($1, $2) ORDER BY \"{i}\"",
                    b = shape.blob,
                    t = shape.table,
                    i = shape.id
                ),
                &[&u, &(u + twin)],
            )
            .await;
            assert_eq!(stored[0], stored[1], "{what}: the residuals");
            assert_eq!(
                rows(&client, &shape, u).await,
                rows(&client, &shape, u + twin).await,
                "{what}: the rows"
            );
        }
    }
    // rolled back, each blob is what the calls left
    for u in 1..=users {
        let after = decant.load(u).await.unwrap();
        decant.rollback_user(u).await.unwrap();
        let got: Option<Value> = client
            .query_one(
                &format!(
                    "SELECT \"{}\" FROM \"{}\" WHERE \"{}\" = $1",
                    shape.blob, shape.table, shape.id
                ),
                &[&u],
            )
            .await
            .unwrap()
            .get(0);
        assert_same_json(
            &got.unwrap_or(Value::Null),
            &after,
            &format!("user {u} rolled back"),
        );
    }
}

#[tokio::test]
async fn sql_and_rust_agree_on_random_blobs_of_the_game() {
    twins_agree(crate::example::SPEC, 11).await;
}

#[tokio::test]
async fn sql_and_rust_agree_on_random_blobs_of_the_shop() {
    twins_agree(include_str!("../../fixtures/shop/decant.toml"), 12).await;
}

#[tokio::test]
async fn sql_and_rust_agree_on_random_blobs_through_arrays() {
    twins_agree(include_str!("../../fixtures/specs/through_arrays.toml"), 13).await;
    twins_agree(crate::api::THROUGH_ARRAYS, 14).await;
}

#[tokio::test]
async fn sql_and_rust_agree_on_random_blobs_of_objects_and_deeper_rules() {
    twins_agree(
        include_str!("../../fixtures/specs/object_and_deeper.toml"),
        15,
    )
    .await;
    twins_agree(crate::api::MEETING_RULES, 16).await;
}

#[tokio::test]
async fn sql_and_rust_agree_on_random_blobs_of_typed_statistics() {
    twins_agree(include_str!("../../fixtures/specs/typed_stats.toml"), 17).await;
}
