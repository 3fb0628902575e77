//! The README's quick start is `examples/quickstart.rs`, verbatim (the README's Rust blocks
//! are also compiled and run as doctests through `lib.rs`).

#[test]
fn readme_quick_start_is_the_quickstart_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/quickstart.rs");
    assert!(
        readme.contains(&format!("```rust\n{example}```")),
        "README.md's quick start differs from examples/quickstart.rs"
    );
}
