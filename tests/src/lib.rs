//! Real two-cluster test environment for sync.
