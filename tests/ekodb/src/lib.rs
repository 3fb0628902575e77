//! Nothing here: this package exists for its tests (`tests/client.rs`), which drive the real
//! ekoDB client against larder's ekoDB dialect.
