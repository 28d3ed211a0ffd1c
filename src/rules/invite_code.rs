//! Invite codes: 80 random bits shown as `ABCD-EFGH-JKLM-NPQR`, compared in constant time.
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

/// Whether `given` is `expected`, in time that does not depend on where they differ.
pub fn matches(expected: &str, given: &str) -> bool {
    let (e, g) = (normalize(expected), normalize(given));
    e.len() == g.len() && bool::from(e.ct_eq(&g))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn matching_ignores_case_and_separators_only() {
        assert!(matches("ABCD-EFGH-JKLM-NPQR", "abcd efgh jklm npqr"));
        assert!(matches("ABCD-EFGH-JKLM-NPQR", "ABCDEFGHJKLMNPQR"));
        assert!(!matches("ABCD-EFGH-JKLM-NPQR", "ABCD-EFGH-JKLM-NPQS"));
        assert!(!matches("ABCD-EFGH-JKLM-NPQR", "ABCD-EFGH-JKLM"));
        assert!(!matches("ABCD-EFGH-JKLM-NPQR", ""));
    }
}
