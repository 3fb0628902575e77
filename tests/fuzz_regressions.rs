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

use std::path::Path;

fn selected() -> impl Iterator<Item = &'static (&'static str, larder_fuzz::Target)> {
    let only = std::env::var("LARDER_FUZZ_TARGET").ok();
    larder_fuzz::TARGETS
        .iter()
        .filter(move |(name, _)| only.as_deref().is_none_or(|o| o == *name))
}

#[test]
fn saved_inputs_still_pass() {
    let mut replayed = 0;
    for (name, target) in selected() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions")
            .join(name);
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            println!("{name}: {}", path.display());
            target(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    println!("{replayed} saved inputs replayed");
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
