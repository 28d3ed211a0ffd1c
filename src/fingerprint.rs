//! 64-bit fingerprints of what roster wrote, to recognize it later without keeping it. The keys
//! are random for each process, so nobody can craft a different value with the same fingerprint.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::OnceLock;

/// The process's keyed hasher.
pub fn hasher() -> &'static RandomState {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new)
}

/// The fingerprint of `value`.
pub fn of<T: Hash>(value: T) -> u64 {
    hasher().hash_one(value)
}
