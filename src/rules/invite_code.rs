//! Invite codes: 80 random bits shown as `ABCD-EFGH-JKLM-NPQR`, proven in constant time.
//!
//! A redemption never carries the code itself: members and viewers read Memberships, and a
//! multi-use code read there would let anyone join. It carries a *proof*, an HMAC of the joiner's
//! username (and the invite's namespace and name) keyed with the code. A proof works for that one
//! username only, and the code cannot be recovered from it (80 bits to guess offline).
//!
//! Randomness is an input (the controller draws it), so this module stays pure.

use subtle::ConstantTimeEq;

/// 32 symbols (5 bits each) without the look-alikes 0/O and 1/I.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Bytes of randomness a code carries (80 bits).
pub const RANDOM_BYTES: usize = 10;

/// Formats 80 random bits as four groups of four symbols.
pub fn format(random: [u8; RANDOM_BYTES]) -> String {
    let bits = random.iter().fold(0u128, |acc, &b| (acc << 8) | b as u128);
    let mut out = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let symbol = (bits >> (75 - 5 * i)) & 0x1f;
        out.push(ALPHABET[symbol as usize] as char);
    }
    out
}

/// Codes as people type them: case and separators do not matter.
fn normalize(code: &str) -> Vec<u8> {
    code.bytes()
        .filter(|b| !matches!(b, b'-' | b' '))
        .map(|b| b.to_ascii_uppercase())
        .collect()
}

/// How a proof starts; the CRD's CEL rule refuses anything else in `spec.invite.proof`.
pub const PROOF_PREFIX: &str = "hmac-sha256:";

/// What a proof signs: one invite, for one username. Namespace and invite names are DNS names and
/// hold no newline, so the fields cannot run into each other; the version tag lets a later scheme
/// coexist.
fn proof_message(namespace: &str, invite: &str, username: &str) -> String {
    format!("roster.dev/invite-proof/v1\n{namespace}\n{invite}\n{username}")
}

fn proof_bytes(code: &str, namespace: &str, invite: &str, username: &str) -> ring::hmac::Tag {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &normalize(code));
    ring::hmac::sign(&key, proof_message(namespace, invite, username).as_bytes())
}

/// The proof that `username` holds `code` for Invite `invite` in `namespace`, as
/// `hmac-sha256:` and 64 lower-case hex digits. Case and separators of the code do not matter.
pub fn proof(code: &str, namespace: &str, invite: &str, username: &str) -> String {
    let tag = proof_bytes(code, namespace, invite, username);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{PROOF_PREFIX}{hex}")
}

/// Whether `presented` proves that `username` holds `code`, in time that does not depend on where
/// they differ. Usernames are compared exactly (Kubernetes usernames are case-sensitive).
pub fn proof_matches(
    code: &str,
    namespace: &str,
    invite: &str,
    username: &str,
    presented: &str,
) -> bool {
    let expected = proof(code, namespace, invite, username);
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_works_for_its_own_username_invite_and_namespace_only() {
        let code = "ABCD-EFGH-JKLM-NPQR";
        let p = proof(code, "acme", "welcome", "bob@a.example");
        assert!(
            p.starts_with(PROOF_PREFIX) && p.len() == PROOF_PREFIX.len() + 64,
            "{p}"
        );
        assert!(proof_matches(code, "acme", "welcome", "bob@a.example", &p));
        assert!(proof_matches(
            "abcd efgh jklm npqr",
            "acme",
            "welcome",
            "bob@a.example",
            &p
        ));
        assert!(!proof_matches(code, "acme", "welcome", "BOB@A.EXAMPLE", &p));
        assert!(!proof_matches(code, "acme", "welcome", "eve@a.example", &p));
        assert!(!proof_matches(code, "acme", "other", "bob@a.example", &p));
        assert!(!proof_matches(
            code,
            "other",
            "welcome",
            "bob@a.example",
            &p
        ));
        assert!(!proof_matches(
            "ABCD-EFGH-JKLM-NPQS",
            "acme",
            "welcome",
            "bob@a.example",
            &p
        ));
        assert!(!proof_matches(
            code,
            "acme",
            "welcome",
            "bob@a.example",
            code
        ));
        assert!(!p.contains("ABCD") && !p.to_uppercase().contains("EFGH"));
    }

    #[test]
    fn formats_in_groups_of_four() {
        let code = format([0xff; RANDOM_BYTES]);
        assert_eq!(code, "9999-9999-9999-9999");
        let code = format([0; RANDOM_BYTES]);
        assert_eq!(code, "AAAA-AAAA-AAAA-AAAA");
        let code = format([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(code.len(), 19);
        assert!(code.split('-').all(|g| g.len() == 4));
    }

    #[test]
    fn distinct_randomness_gives_distinct_codes() {
        let a = format([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let b = format([1, 2, 3, 4, 5, 6, 7, 8, 9, 11]);
        assert_ne!(a, b);
    }
}
