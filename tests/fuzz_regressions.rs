//! The fuzz targets of `fuzz/` on stable, in CI: every saved input under
//! `fuzz/regressions/<target>/` (findings and hand-made seeds), then seeded random inputs per
//! target, decoded by the same `arbitrary` structures the fuzzer uses.
//!
//! Environment variables: `LARDER_FUZZ_INPUTS` (default 150) random inputs per target;
//! `LARDER_FUZZ_TARGET` runs one target only.
#![cfg(feature = "testing")]

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code, unreachable_pub)]
mod larder_fuzz;

use std::path::{Path, PathBuf};

fn selected() -> impl Iterator<Item = &'static (&'static str, larder_fuzz::Target)> {
    let only = std::env::var("LARDER_FUZZ_TARGET").ok();
    // A misspelt target would otherwise select nothing, and nothing passes.
    if let Some(only) = &only {
        assert!(
            larder_fuzz::TARGETS.iter().any(|(name, _)| name == only),
            "LARDER_FUZZ_TARGET={only} names no fuzz target"
        );
    }
    larder_fuzz::TARGETS
        .iter()
        .filter(move |(name, _)| only.as_deref().is_none_or(|o| o == *name))
}

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions")
}

#[test]
fn saved_inputs_still_pass() {
    for (name, target) in selected() {
        // Every target has saved inputs (findings, or seeds), so a renamed, moved or emptied
        // folder fails here instead of replaying nothing.
        let folder = regressions().join(name);
        let entries = std::fs::read_dir(&folder).unwrap_or_else(|e| {
            panic!(
                "fuzz target {name}: its saved inputs should be in {}: {e}",
                folder.display()
            )
        });
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        let mut replayed = 0;
        for path in paths {
            println!("{name}: {}", path.display());
            target(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
        assert!(
            replayed > 0,
            "fuzz target {name}: no saved input replayed from {}",
            folder.display()
        );
        println!("{name}: {replayed} saved inputs replayed");
    }
}

/// Every folder of saved inputs belongs to a target: a folder whose name is not a target's
/// would never be replayed.
#[test]
fn every_regressions_folder_names_a_target() {
    for entry in std::fs::read_dir(regressions()).unwrap() {
        let folder = entry.unwrap().path();
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            larder_fuzz::TARGETS
                .iter()
                .any(|(target, _)| *target == name),
            "{} is replayed by no fuzz target (the targets are in fuzz/src/lib.rs)",
            folder.display()
        );
    }
}

#[test]
fn seeded_random_inputs_pass() {
    let count: u64 = std::env::var("LARDER_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    for (name, target) in selected() {
        for seed in 0..count {
            let mut rng = fastrand::Rng::with_seed(seed);
            let len = rng.usize(0..2048);
            let data: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}, seed {seed}: see the panic above");
        }
    }
}
