//! The house plan, checked: every file of `src/` imports only files of its own layer or of
//! layers below it, and no files import each other in a circle. The layers and what each may
//! import are drawn in `docs/ARCHITECTURE.md`; this test is their source of truth.
//!
//! An import is any `crate::…` or `super::…` path outside `#[cfg(test)]` code (use lines and
//! inline paths alike), resolved to the file of the longest module prefix it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: (path prefix under `src/`, layer name). A file belongs to the
/// first entry its path starts with.
const LAYERS: &[(&str, &str)] = &[
    ("error.rs", "foundation"),
    ("store/", "store"),
    ("project/", "project"),
    ("identity/", "identity"),
    ("access/", "access"),
    ("files/", "files"),
    ("data/", "data"),
    ("db.rs", "root"),
    ("actor.rs", "root"),
    ("http/", "http"),
    ("testing.rs", "testing"),
];

/// Files outside the layers: the crate's table of contents and the command-line program.
const OUTSIDE: &[&str] = &["lib.rs", "main.rs"];

struct SourceFile {
    /// Path under `src/`, with `/` separators.
    name: String,
    /// Its module path (`store/mod.rs` is `["store"]`).
    module: Vec<String>,
    text: String,
}

fn source_files() -> Vec<SourceFile> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    collect(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(&src)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            let mut module: Vec<String> = name
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_owned)
                .collect();
            let file = module.last().cloned().unwrap_or_default();
            if file == "mod" || (module.len() == 1 && (file == "lib" || file == "main")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            SourceFile {
                name,
                module,
                text: code_of(&text),
            }
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text that counts: up to the first `#[cfg(test)]`, without `//` comments.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every module path named by a `crate::`/`super::` path in `file`, made absolute.
fn named_paths(file: &SourceFile) -> Vec<Vec<String>> {
    let text = &file.text;
    let mut found = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let head = ["crate::", "super::"]
            .into_iter()
            .find(|h| rest.starts_with(h));
        let boundary = at == 0 || !text[..at].chars().next_back().is_some_and(is_ident);
        let Some(head) = head.filter(|_| boundary) else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let mut base: Vec<String> = if head == "crate::" {
            Vec::new()
        } else {
            // `super` of `data/documents.rs` (module `data::documents`) is `data`.
            let mut base = file.module.clone();
            base.pop();
            base
        };
        let mut cursor = at + head.len();
        // `super::super::…`
        while text[cursor..].starts_with("super::") {
            base.pop();
            cursor += "super::".len();
        }
        cursor = parse_tree(text, cursor, base, &mut found);
        at = cursor.max(at + 1);
    }
    found
}

/// Parses `a::b::{c, d::e}` at `cursor` under `prefix`, adding each full path; returns where it
/// stopped.
fn parse_tree(
    text: &str,
    mut cursor: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        let ident: String = text[cursor..]
            .chars()
            .take_while(|c| is_ident(*c))
            .collect();
        if !ident.is_empty() {
            cursor += ident.len();
            if ident != "self" {
                prefix.push(ident);
            }
            if text[cursor..].starts_with("::") && !text[cursor + 2..].starts_with('{') {
                cursor += 2;
                continue;
            }
        }
        if text[cursor..].starts_with("::{") {
            cursor += 3;
            loop {
                let skipped = text[cursor..].len() - text[cursor..].trim_start().len();
                cursor += skipped;
                if text[cursor..].starts_with('}') {
                    return cursor + 1;
                }
                cursor = parse_tree(text, cursor, prefix.clone(), out);
                let skipped = text[cursor..].len() - text[cursor..].trim_start().len();
                cursor += skipped;
                if text[cursor..].starts_with(',') {
                    cursor += 1;
                } else if text[cursor..].starts_with('}') {
                    return cursor + 1;
                } else {
                    return cursor;
                }
            }
        }
        out.push(prefix);
        return cursor;
    }
}

fn layer_of(name: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (prefix, _))| name.starts_with(prefix))
        .map(|(rank, (_, layer))| (rank_of(layer, rank), *layer))
}

/// Entries of one layer share its rank: the rank of the layer's first entry.
fn rank_of(layer: &str, fallback: usize) -> usize {
    LAYERS
        .iter()
        .position(|(_, l)| *l == layer)
        .unwrap_or(fallback)
}

/// file → the files it imports.
fn import_graph(files: &[SourceFile]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<&[String], &str> = files
        .iter()
        .map(|f| (f.module.as_slice(), f.name.as_str()))
        .collect();
    files
        .iter()
        .map(|file| {
            let targets = named_paths(file)
                .into_iter()
                .filter_map(|path| {
                    (0..=path.len())
                        .rev()
                        .find_map(|len| modules.get(&path[..len]).copied())
                })
                .filter(|target| *target != file.name && !OUTSIDE.contains(target))
                .map(str::to_owned)
                .collect();
            (file.name.clone(), targets)
        })
        .collect()
}

#[test]
fn every_file_belongs_to_a_layer() {
    let strays: Vec<String> = source_files()
        .into_iter()
        .map(|f| f.name)
        .filter(|name| !OUTSIDE.contains(&name.as_str()) && layer_of(name).is_none())
        .collect();
    assert!(
        strays.is_empty(),
        "these files are in no layer: {strays:?}. Put each in the folder of the layer it \
         belongs to (see docs/ARCHITECTURE.md), or add it to LAYERS in tests/layers.rs and to \
         the drawing in docs/ARCHITECTURE.md"
    );
}

#[test]
fn no_file_imports_a_layer_above_its_own() {
    let files = source_files();
    let graph = import_graph(&files);
    let mut upward = Vec::new();
    for (from, targets) in &graph {
        let Some((from_rank, from_layer)) = layer_of(from) else {
            continue;
        };
        for to in targets {
            if let Some((to_rank, to_layer)) = layer_of(to)
                && to_rank > from_rank
            {
                upward.push(format!("{from} ({from_layer}) -> {to} ({to_layer})"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that reach up a layer:\n  {}\nMove the shared code down to the lower layer \
         (or into store/names.rs if it is a check of names), or let the root (db.rs) wire the \
         higher layer in, as it does with the cascades; docs/ARCHITECTURE.md says what each \
         layer may import",
        upward.join("\n  ")
    );
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let files = source_files();
    let graph = import_graph(&files);
    let circles = strongly_connected(&graph);
    assert!(
        circles.is_empty(),
        "files that import each other in a circle: {circles:?}. Split the shared part into a \
         file both can import, lower in the layer"
    );
}

#[test]
fn the_parser_sees_grouped_and_inline_paths() {
    let file = SourceFile {
        name: "data/documents.rs".into(),
        module: vec!["data".into(), "documents".into()],
        text: code_of(
            "use crate::store::{self, schema::{DOCS, Table}, ids};\n\
             let x = crate::files::Bucket::new(); // crate::http::router\n\
             use super::query::Filter;\n",
        ),
    };
    let paths: Vec<String> = named_paths(&file).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        paths,
        [
            "store",
            "store::schema::DOCS",
            "store::schema::Table",
            "store::ids",
            "files::Bucket::new",
            "data::query::Filter",
        ]
    );
}

/// Tarjan's strongly connected components of more than one file.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(state: &mut State<'g>, node: &'g str) {
        let next = state.index.len();
        state.index.insert(node, next);
        state.low.insert(node, next);
        state.stack.push(node);
        state.on_stack.insert(node);
        let graph = state.graph;
        for target in graph.get(node).into_iter().flatten() {
            let target = target.as_str();
            if !state.index.contains_key(target) {
                visit(state, target);
                let low = state.low[node].min(state.low[target]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(target) {
                let low = state.low[node].min(state.index[target]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(top) = state.stack.pop() {
                state.on_stack.remove(top);
                component.push(top.to_owned());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// Where a kind of code may appear: (what it is, the needles that find it, the files allowed to
/// hold it, where new code of that kind goes instead).
struct Confined {
    what: &'static str,
    needles: &'static [&'static str],
    allowed: &'static [&'static str],
    instead: &'static str,
}

const CONFINED: &[Confined] = &[
    Confined {
        what: "an authorization decision",
        needles: &["authorize("],
        allowed: &[
            "access/policy.rs",
            "actor.rs",
            "data/documents.rs",
            "files/mod.rs",
        ],
        instead: "act through a handle scoped to the caller's principal (an Actor from \
                  `db.acting_as(principal)`: `collection`, `bucket`, `keys()?`, `administrator`), \
                  which asks the policy itself",
    },
    Confined {
        what: "a Principal made from parts",
        needles: &[
            "Principal::system(",
            "Principal::key(",
            "Principal::user_session(",
            "Principal::anonymous(",
        ],
        // db.rs and actor.rs make the embedding program's own principal; files/mod.rs redeems
        // a signed upload grant, a capability decided when it was granted.
        allowed: &[
            "access/principal.rs",
            "access/auth.rs",
            "db.rs",
            "actor.rs",
            "files/mod.rs",
        ],
        instead: "get it from the authentication edge (access/auth.rs: `authenticate`, `user`, \
                  `key`, `of_session`, `anonymous`)",
    },
    Confined {
        what: "a documents table opened outside the store",
        needles: &["DocsTable"],
        allowed: &["store/schema.rs", "store/changes.rs"],
        instead: "write documents through `changes::DocsWriter` (it records every change in \
                  the change log) and read them with `schema::open_docs`",
    },
    Confined {
        what: "an unscoped data handle in the HTTP front",
        needles: &["db.collection(", "db.collection::<", "db.bucket("],
        allowed: &[],
        instead: "use `db.collection_as(name, principal)`, `db.bucket_as(name, principal)` or an \
                  Actor, so the caller's rights apply",
    },
];

#[test]
fn decisions_and_principals_are_made_only_where_allowed() {
    let mut misplaced = Vec::new();
    for file in source_files() {
        for rule in CONFINED {
            let in_scope = rule.what != "an unscoped data handle in the HTTP front"
                || file.name.starts_with("http/");
            if !in_scope || rule.allowed.contains(&file.name.as_str()) {
                continue;
            }
            for (number, line) in file.text.lines().enumerate() {
                if let Some(needle) = rule.needles.iter().find(|n| line.contains(*n)) {
                    // The definitions themselves are not uses.
                    if line.trim_start().starts_with("pub(crate) fn ")
                        || line.trim_start().starts_with("fn ")
                    {
                        continue;
                    }
                    misplaced.push(format!(
                        "src/{}:{}: {} (`{needle}`): {}",
                        file.name,
                        number + 1,
                        rule.what,
                        rule.instead
                    ));
                }
            }
        }
    }
    assert!(
        misplaced.is_empty(),
        "code outside its one place:\n  {}",
        misplaced.join("\n  ")
    );
}
