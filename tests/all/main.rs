//! End-to-end tests (see harness.rs).
