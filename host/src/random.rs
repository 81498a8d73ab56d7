//! Random bytes for the ids, tokens and secrets the host hands out.
//!
//! Activity ids and task tokens are made for every activity: they come from
//! a per-thread CSPRNG (`rand`'s ChaCha12 `ThreadRng`, seeded from the
//! operating system and reseeded every 64 KiB), not from one system call
//! per value. Long-lived secrets (API tokens, the UI's CSRF key) come from
//! the operating system itself. Neither ever hands out bytes left as they
//! were: a host whose operating system cannot seed a generator stops
//! rather than issue guessable values.

/// Fills `bytes` for an id or a short-lived token.
pub fn fill(bytes: &mut [u8]) {
    rand::fill(bytes);
}

/// Fills `bytes` for a long-lived secret: from the operating system, or
/// the per-thread generator (itself seeded from it) if that call fails.
pub fn fill_secret(bytes: &mut [u8]) {
    if getrandom::fill(bytes).is_err() {
        fill(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_differ_and_are_not_left_zero() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        fill(&mut a);
        fill(&mut b);
        assert_ne!(a, [0u8; 16]);
        assert_ne!(a, b);
        let (mut s, mut t) = ([0u8; 32], [0u8; 32]);
        fill_secret(&mut s);
        fill_secret(&mut t);
        assert_ne!(s, [0u8; 32]);
        assert_ne!(s, t);
    }
}
