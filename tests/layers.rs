//! The layout's rule, checked on the source itself: the layers of `src/`
//! depend only downward (command line → daemon and operations → migration
//! and the compatibility layer → PostgreSQL → error type → pure core), and
//! no file reaches itself through its imports. Every `crate::`, `super::`
//! and child-module path outside comments and test modules is an arrow.
//!
//! Run alone: `cargo test --test layers -- --nocapture` prints the arrows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A source file of either crate, relative to `src/`.
type File = String;

/// The layer of a file: a file may only use files of its own layer or
/// of lower ones.
fn layer(file: &str) -> u8 {
    let top = file.split('/').next().unwrap_or(file);
    match top {
        "core" => 0,
        "error.rs" => 1,
        "pg" => 2,
        "migrate.rs" => 3,
        "compat.rs" => 4,
        "daemon" | "ops" => 5,
        "lib.rs" => 6,
        "main.rs" | "cli" | "tools" => 7,
        other => {
            panic!("src/{other}: a file outside the known layers; give it one in tests/layers.rs")
        }
    }
}

/// Whether a file belongs to the binary crate (rooted at main.rs).
fn in_binary(file: &str) -> bool {
    layer(file) == 7
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file within its crate: `pg/store.rs` → [pg, store].
fn module_of(file: &str) -> Vec<String> {
    let file = file.strip_suffix(".rs").unwrap();
    let mut parts: Vec<String> = file.split('/').map(String::from).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The file defining the longest prefix of `path` in the crate of `from`.
fn resolve(from: &str, path: &[String], files: &BTreeSet<File>) -> Option<File> {
    for n in (0..=path.len()).rev() {
        let prefix = path[..n].join("/");
        let candidates = if n == 0 {
            vec![if in_binary(from) { "main.rs" } else { "lib.rs" }.to_string()]
        } else {
            vec![format!("{prefix}.rs"), format!("{prefix}/mod.rs")]
        };
        for c in candidates {
            if files.contains(&c) && in_binary(&c) == in_binary(from) {
                return Some(c);
            }
        }
    }
    None
}

/// The code of a file without comments, string contents and its trailing
/// test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        // drop string literals' contents so SQL or messages are not paths
        let mut in_str = false;
        let mut prev = ' ';
        for ch in line.chars() {
            if ch == '"' && prev != '\\' {
                in_str = !in_str;
                out.push('"');
            } else if !in_str {
                out.push(ch);
            }
            prev = ch;
        }
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a piece of code names after `start` (`crate`, `super`, a
/// child module), with `use` groups `{a, b::c}` expanded one level.
fn paths_after(code: &str, start: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let text = code;
    let mut from = 0;
    while let Some(i) = text[from..].find(start).map(|i| i + from) {
        from = i + start.len();
        let before = text[..i].chars().last();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        let mut rest = &text[i + start.len()..];
        if !rest.starts_with("::") {
            continue;
        }
        let mut segs = Vec::new();
        while let Some(r) = rest.strip_prefix("::") {
            if let Some(group) = r.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let item: Vec<String> = item
                        .split("::")
                        .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                        .filter(|s| !s.is_empty() && s != "self" && s != "*")
                        .collect();
                    let mut full = segs.clone();
                    full.extend(item);
                    out.push(full);
                }
                segs.clear();
                break;
            }
            let len = r.find(|c: char| !is_ident(c)).unwrap_or(r.len());
            if len == 0 {
                break;
            }
            segs.push(r[..len].to_string());
            rest = &r[len..];
        }
        if !segs.is_empty() || rest.starts_with("::*") {
            out.push(segs);
        }
    }
    out
}

/// Every arrow between files of `src/`: (from, to).
fn arrows() -> BTreeSet<(File, File)> {
    let root = src();
    let mut paths = Vec::new();
    rust_files(&root, &mut paths);
    let files: BTreeMap<File, String> = paths
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, code(&std::fs::read_to_string(p).unwrap()))
        })
        .collect();
    let names: BTreeSet<File> = files.keys().cloned().collect();
    let mut arrows = BTreeSet::new();
    for (file, code) in &files {
        let here = module_of(file);
        let parent = |up: usize| here[..here.len().saturating_sub(up)].to_vec();
        let mut targets: Vec<Vec<String>> = Vec::new();
        for p in paths_after(code, "crate") {
            targets.push(p);
        }
        for p in paths_after(code, "super") {
            // `super::super::x` climbs twice
            let ups = 1 + p.iter().take_while(|s| *s == "super").count();
            let mut full = parent(ups);
            full.extend(p.into_iter().skip(ups - 1));
            targets.push(full);
        }
        // child modules the file declares, named by their own name
        for line in code.lines() {
            let t = line.trim();
            let decl = t
                .strip_prefix("mod ")
                .or_else(|| t.strip_prefix("pub mod "))
                .or_else(|| t.strip_prefix("pub(crate) mod "));
            if let Some(child) = decl.and_then(|d| d.strip_suffix(';')) {
                for p in paths_after(code, child) {
                    let mut full = here.clone();
                    full.push(child.to_string());
                    full.extend(p);
                    targets.push(full);
                }
            }
        }
        for t in targets {
            if let Some(to) = resolve(file, &t, &names) {
                if &to != file {
                    arrows.insert((file.clone(), to));
                }
            }
        }
    }
    arrows
}

#[test]
fn layers_depend_only_downward() {
    let arrows = arrows();
    // the check sees the code: known arrows are there
    for known in [
        ("pg/store.rs", "core/explode.rs"),
        ("daemon/job.rs", "migrate.rs"),
        ("compat.rs", "pg/store.rs"),
        ("error.rs", "core/spec/mod.rs"),
        ("core/spec/toml.rs", "core/spec/model.rs"),
    ] {
        assert!(
            arrows.contains(&(known.0.to_string(), known.1.to_string())),
            "the layer check no longer sees {} -> {}; fix tests/layers.rs",
            known.0,
            known.1
        );
    }
    let up: Vec<String> = arrows
        .iter()
        .filter(|(a, b)| layer(b) > layer(a))
        .map(|(a, b)| format!("src/{a} -> src/{b}"))
        .collect();
    for (a, b) in &arrows {
        println!("src/{a} -> src/{b}");
    }
    assert!(up.is_empty(), "arrows running back up:\n{}", up.join("\n"));
}

#[test]
fn no_file_reaches_itself_through_its_imports() {
    let arrows = arrows();
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in &arrows {
        next.entry(a).or_default().push(b);
    }
    // depth-first search for a back edge
    fn visit<'a>(
        n: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        state.insert(n, 1);
        stack.push(n);
        for &m in next.get(n).into_iter().flatten() {
            match state.get(m) {
                Some(1) => {
                    let at = stack.iter().position(|&s| s == m).unwrap();
                    let mut circle = stack[at..].to_vec();
                    circle.push(m);
                    return Some(circle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, next, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    let nodes: Vec<&str> = next.keys().copied().collect();
    for n in nodes {
        if !state.contains_key(n) {
            if let Some(circle) = visit(n, &next, &mut state, &mut Vec::new()) {
                panic!("an import circle: {}", circle.join(" -> "));
            }
        }
    }
}
