//! Examples live in this folder; see its Cargo.toml.
