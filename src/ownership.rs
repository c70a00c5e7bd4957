//! Table ownership (issue 13, item 6): a part opens only its own tables; it asks another part's
//! service for anything else. This test reads the source: a table belongs to the top folder
//! (or top file) under `src/` whose code defines its `TableDefinition` constant, and any other
//! folder that names that constant through a `crate::<owner>::…` path crosses into it.
//! `store/` is the ground floor, not a part: its own tables (`META`) are everyone's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// The crossings that exist today, as (file, owner::TABLE). Each is a debt to pay by moving the
/// code behind the owner's service (or the table to the part that uses it); remove the line
/// when it is paid. A new crossing fails the test: add a service call instead.
const KNOWN_CROSSINGS: &[(&str, &str)] = &[
    // Chat's feedback checks that an event id exists: should ask `issues` (item 6).
    ("src/chat/feedback.rs", "issues::EVENT_IDS"),
    // A chat unit test reads the bus log directly to see what was published.
    ("src/chat/tests.rs", "bus::LOG"),
    // Ingest reads issues' tables in two places (references for replay, event ids and issues
    // for its read handlers); event preparation moves into `issues` (item 8).
    ("src/ingest/mod.rs", "issues::EVENT_IDS"),
    ("src/ingest/mod.rs", "issues::ISSUES"),
    ("src/ingest/mod.rs", "issues::REFERENCES"),
    // Feedback retention matches feedback to stored events: feedback moves to `issues`.
    ("src/ingest/store.rs", "issues::EVENT_IDS"),
    // Issues' API reads ingest's feedback table: feedback moves to `issues` (item 6).
    ("src/issues/api.rs", "ingest::FEEDBACK"),
    // Grouping settings write the project's grouping version into accounts' projects table.
    ("src/issues/grouping_settings.rs", "accounts::PROJECTS"),
    // Issues reads accounts' users table to name assignees: should call `Accounts`.
    ("src/issues/mod.rs", "accounts::USERS"),
    // Search restricts a project's queries by the project's issue list (issue 18): the issues
    // index moves to `issues` (item 3), which then owns both.
    ("src/search/mod.rs", "issues::BY_PROJECT"),
    // `db stats` counts events per project from the issues table: should ask `issues`.
    ("src/store/stats.rs", "issues::ISSUES"),
    // The schema list (item 6: it moves to the top) names every part's table setup.
    ("src/store/migrations.rs", "*"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/chat/api/mod.rs` → `chat`; `src/cli.rs` → `cli`.
fn part_of(rel: &str) -> String {
    let rest = rel.strip_prefix("src/").unwrap_or(rel);
    match rest.split_once('/') {
        Some((top, _)) => top.to_string(),
        None => rest.trim_end_matches(".rs").to_string(),
    }
}

/// (relative path, source) of every Rust file under `src/`.
fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).expect("under root");
            let rel = rel.to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&p).expect("read source");
            (rel, text)
        })
        .collect()
}

/// owner part → the table constants its code defines.
fn tables(sources: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let def = Regex::new(r"const ([A-Z][A-Z0-9_]*)\s*:\s*(?:Multimap)?TableDefinition").unwrap();
    let mut owned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in sources {
        for c in def.captures_iter(text) {
            owned
                .entry(part_of(rel))
                .or_default()
                .insert(c[1].to_string());
        }
    }
    owned.remove("store");
    owned
}

/// Every (file, owner::TABLE) where a file names another part's table constant through a
/// `crate::owner::…::TABLE` path or a `use crate::owner::…::{…, TABLE, …}` group.
fn crossings(sources: &[(String, String)]) -> BTreeSet<(String, String)> {
    let owned = tables(sources);
    let path = Regex::new(r"crate::([a-z_]+)((?:::[a-z_]+)*)::([A-Z][A-Z0-9_]*)\b").unwrap();
    let group = Regex::new(r"crate::([a-z_]+)(?:::[a-z_]+)*::\{([^}]*)\}").unwrap();
    let mut found = BTreeSet::new();
    for (rel, text) in sources {
        let me = part_of(rel);
        let mut named: Vec<(String, String)> = path
            .captures_iter(text)
            .map(|c| (c[1].to_string(), c[3].to_string()))
            .collect();
        for c in group.captures_iter(text) {
            for name in c[2].split(',').map(str::trim) {
                named.push((c[1].to_string(), name.to_string()));
            }
        }
        for (owner, name) in named {
            let theirs = owned.get(&owner).is_some_and(|t| t.contains(&name));
            if owner != me && theirs {
                found.insert((rel.clone(), format!("{owner}::{name}")));
            }
        }
    }
    found
}

fn allowed(file: &str, table: &str) -> bool {
    KNOWN_CROSSINGS
        .iter()
        .any(|(f, t)| *f == file && (*t == "*" || *t == table))
}

#[test]
fn no_part_opens_another_parts_table() {
    let sources = sources();
    let owned = tables(&sources);
    assert!(
        owned.get("accounts").is_some_and(|t| t.contains("USERS")),
        "the table scan found no accounts::USERS: {owned:?}"
    );
    let found = crossings(&sources);
    let new: Vec<String> = found
        .iter()
        .filter(|(file, table)| !allowed(file, table))
        .map(|(file, table)| format!("{file} opens {table}"))
        .collect();
    assert!(
        new.is_empty(),
        "a part opens another part's table (call the owner's service instead):\n{}",
        new.join("\n")
    );
    let stale: Vec<String> = KNOWN_CROSSINGS
        .iter()
        .filter(|(file, table)| {
            *table != "*" && !found.contains(&(file.to_string(), table.to_string()))
        })
        .map(|(file, table)| format!("{file} -> {table}"))
        .collect();
    assert!(
        stale.is_empty(),
        "paid crossings: remove them from KNOWN_CROSSINGS:\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_scan_sees_qualified_paths_and_use_groups() {
    let sources = vec![
        (
            "src/a/store.rs".to_string(),
            "pub const T: TableDefinition<u64, u64> = TableDefinition::new(\"a\");".to_string(),
        ),
        (
            "src/b/x.rs".to_string(),
            "txn.open_table(crate::a::store::T)?;".to_string(),
        ),
        (
            "src/c.rs".to_string(),
            "use crate::a::store::{T, other};".to_string(),
        ),
        ("src/a/y.rs".to_string(), "crate::a::store::T".to_string()),
    ];
    let found: Vec<_> = crossings(&sources).into_iter().collect();
    assert_eq!(
        found,
        vec![
            ("src/b/x.rs".to_string(), "a::T".to_string()),
            ("src/c.rs".to_string(), "a::T".to_string()),
        ]
    );
}
