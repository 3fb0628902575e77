//! Document benchmarks (being written).
fn main() {}
