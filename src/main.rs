//! The `larder` command line.
fn main() {}
