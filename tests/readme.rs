//! The README and the pages under `docs/` stay true: the README's quick start is
//! `examples/quickstart.rs`, verbatim (the README's Rust blocks are also compiled and run as
//! doctests through `lib.rs`); no page promises what is "coming" instead of saying what is; every
//! repository path a page names or links to exists; every page under `docs/` is linked from the
//! README. Links to a heading (`page.md#heading`) must find it.

use std::path::{Path, PathBuf};

#[test]
fn readme_quick_start_is_the_quickstart_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/quickstart.rs");
    assert!(
        readme.contains(&format!("```rust\n{example}```")),
        "README.md's quick start differs from examples/quickstart.rs"
    );
}

/// Wording that describes a plan rather than the project as it is.
const STALE_PHRASES: &[&str] = &[
    "today",
    "as they land",
    "(soon)",
    "coming soon",
    "will soon",
    "not yet",
];

/// The top-level folders of the repository: a backticked name starting with one of them is a
/// repository path, resolved from the root.
const REPO_DIRS: &[&str] = &[
    "src/",
    "tests/",
    "benches/",
    "examples/",
    "docs/",
    "fuzz/",
    ".ci/",
];

/// Extensions of source and documentation files: a backticked relative name with a `/` and
/// one of these is a path, resolved from the root or (for the module paths of
/// docs/ARCHITECTURE.md, such as `access/policy.rs`) from `src/`.
const FILE_EXTENSIONS: &[&str] = &[".rs", ".md", ".sh", ".toml", ".py", ".json"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every `docs/*.md`, as (path relative to the root, text).
fn pages() -> Vec<(PathBuf, String)> {
    let root = root();
    let mut pages = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("a readable docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| Path::new("docs").join(path.file_name().expect("a file name in docs/")))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
        .into_iter()
        .map(|page| {
            let text = std::fs::read_to_string(root.join(&page))
                .unwrap_or_else(|e| panic!("{}: {e}", page.display()));
            (page, text)
        })
        .collect()
}

/// The prose of a page: fenced code blocks removed (their contents are code, checked by the
/// doctests or by running them), so only inline spans and links are looked at.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The contents of the inline code spans of `text` (single backticks).
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The targets of the Markdown links `[label](target)` of `text`.
fn link_targets(text: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    targets
}

fn is_path_like(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        && !name.starts_with('/')
        && !name.contains("//")
}

/// The repository paths a page names in backticks, each with where it must exist.
fn named_paths(text: &str) -> Vec<(String, Vec<PathBuf>)> {
    let root = root();
    code_spans(text)
        .into_iter()
        .filter(|span| is_path_like(span))
        .filter_map(|span| {
            let path = span.trim_start_matches("./");
            if REPO_DIRS.iter().any(|dir| path.starts_with(dir)) {
                Some((span.to_string(), vec![root.join(path)]))
            } else if path.contains('/') && FILE_EXTENSIONS.iter().any(|ext| path.ends_with(ext)) {
                Some((
                    span.to_string(),
                    vec![root.join(path), root.join("src").join(path)],
                ))
            } else {
                None
            }
        })
        .collect()
}

/// The local files a page links to, resolved from the page's own folder.
fn linked_paths(page: &Path, text: &str) -> Vec<(String, PathBuf)> {
    let folder = root().join(page.parent().unwrap_or(Path::new("")));
    link_targets(text)
        .into_iter()
        .filter(|target| !target.contains("://") && !target.starts_with('#'))
        .filter(|target| !target.starts_with("mailto:"))
        .map(|target| {
            let file = target.split('#').next().unwrap_or(target);
            (target.to_string(), folder.join(file))
        })
        .collect()
}

/// The anchors of a page's headings, as GitHub makes them (`## Files: safety` → `files-safety`).
fn anchors(text: &str) -> Vec<String> {
    prose(text)
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// The `#fragment` links of a page (to itself or to another Markdown page) whose heading does
/// not exist.
fn broken_anchors(page: &Path, text: &str) -> Vec<String> {
    let folder = root().join(page.parent().unwrap_or(Path::new("")));
    link_targets(text)
        .into_iter()
        .filter(|target| !target.contains("://"))
        .filter_map(|target| {
            let (file, fragment) = target.split_once('#')?;
            let other = if file.is_empty() {
                text.to_string()
            } else if file.ends_with(".md") {
                std::fs::read_to_string(folder.join(file)).ok()?
            } else {
                return None;
            };
            (!anchors(&other).iter().any(|anchor| anchor == fragment)).then(|| target.to_string())
        })
        .collect()
}

#[test]
fn pages_say_what_is_not_what_is_coming() {
    let mut found = Vec::new();
    for (page, text) in pages() {
        for (number, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            for phrase in STALE_PHRASES {
                if lower.contains(phrase) {
                    found.push(format!(
                        "{}:{}: \"{phrase}\": {line}",
                        page.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "describe the project as it is, not as it will be:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_path_a_page_names_or_links_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for (page, text) in pages() {
        let text = prose(&text);
        for (name, candidates) in named_paths(&text) {
            checked += 1;
            if !candidates.iter().any(|path| path.exists()) {
                missing.push(format!("{}: `{name}`", page.display()));
            }
        }
        for (target, path) in linked_paths(&page, &text) {
            checked += 1;
            if !path.exists() {
                missing.push(format!("{}: link ({target})", page.display()));
            }
        }
        for target in broken_anchors(&page, &text) {
            missing.push(format!(
                "{}: link ({target}) to a heading that does not exist",
                page.display()
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "these pages name or link to files that do not exist:\n{}",
        missing.join("\n")
    );
    // The check itself must see the paths the pages are known to name.
    assert!(
        checked >= 20,
        "only {checked} paths found: is the parser broken?"
    );
}

#[test]
fn every_docs_page_is_linked_from_the_readme() {
    let readme = prose(include_str!("../README.md"));
    let linked: Vec<PathBuf> = linked_paths(Path::new("README.md"), &readme)
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    let unlinked: Vec<String> = pages()
        .into_iter()
        .map(|(page, _)| page)
        .filter(|page| page.starts_with("docs"))
        .filter(|page| !linked.contains(&root().join(page)))
        .map(|page| page.display().to_string())
        .collect();
    assert!(
        unlinked.is_empty(),
        "README.md links to none of: {}",
        unlinked.join(", ")
    );
}

#[test]
fn the_checks_see_what_they_check() {
    let text = "See `benches/compare.sh`, `docs/x.md`, `access/policy.rs`, `Db::open`, \
                `fuzz/artifacts/<target>/` and [a page](docs/security.md#files), \
                [redb](https://docs.rs/redb), [here](#top).";
    let named: Vec<String> = named_paths(text)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        named,
        ["benches/compare.sh", "docs/x.md", "access/policy.rs"]
    );
    let linked: Vec<String> = linked_paths(Path::new("README.md"), text)
        .into_iter()
        .map(|(target, _)| target)
        .collect();
    assert_eq!(linked, ["docs/security.md#files"]);
    assert_eq!(prose("a\n```sh\n`docs/x.md`\n```\nb\n"), "a\n\n\n\nb\n");
    assert_eq!(
        anchors("# larder\n## Looking after the file: check, `compact`\n"),
        ["larder", "looking-after-the-file-check-compact"]
    );
    let page =
        "## Files\n[ok](#files), [gone](#nowhere), [other](docs/security.md#no-such-heading)";
    assert_eq!(
        broken_anchors(Path::new("README.md"), page),
        ["#nowhere", "docs/security.md#no-such-heading"]
    );
}
