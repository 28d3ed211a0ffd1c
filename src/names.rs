//! The names roster writes into the cluster, each defined once: its labels, finalizer, field
//! manager and Secret type; and names and label values derived from user-chosen names.
//!
//! The API allows object names of up to 253 characters, but a label value holds at most 63, and a
//! derived name (a prefix plus the name) may exceed 253: such values keep a readable prefix and end
//! in a hash of the whole value, so that two long names sharing a prefix never map to the same
//! value.

use std::hash::Hasher;

/// On everything roster makes for an organization (RoleBindings, ...): the org namespace.
pub const ORGANIZATION_LABEL: &str = "roster.dev/organization";
/// On a member's RoleBindings: the Membership's name (as a label value).
pub const MEMBERSHIP_LABEL: &str = "roster.dev/membership";
/// On a team's RoleBindings: the Team's name (as a label value).
pub const TEAM_LABEL: &str = "roster.dev/team";
/// On org and workload namespaces: the organization's `spec.dataRegion`.
pub const DATA_REGION_LABEL: &str = "roster.dev/data-region";
/// The label, and its value, on every object roster creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "roster");
/// On the Secrets that hold invite codes (value `true`); only these Secrets are watched.
pub const INVITE_CODE_LABEL: &str = "roster.dev/invite-code";
/// On an invite code Secret: the Invite's name (as a label value).
pub const INVITE_LABEL: &str = "roster.dev/invite";
/// The `type` of an invite code Secret.
pub const INVITE_SECRET_TYPE: &str = "roster.dev/invite-code";
/// The finalizer on effective owners' Memberships (like Kubernetes' pvc-protection).
pub const OWNER_PROTECTION: &str = "roster.dev/owner-protection";
/// The one field manager of every write roster makes.
pub const FIELD_MANAGER: &str = "roster";

/// The longest label value Kubernetes accepts.
pub const LABEL_VALUE_MAX: usize = 63;
/// The longest object name (a DNS subdomain) Kubernetes accepts.
pub const NAME_MAX: usize = 253;

/// A stable 64-bit FNV-1a hash: the same in every process and release, unlike std's `DefaultHasher`.
/// Not collision-resistant: for choices nobody gains from steering (a team's colour).
pub fn stable_hash(s: &str) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write(s.as_bytes());
    h.finish()
}

/// The first 96 bits of the SHA-256 of `s`, as 24 hex digits, valid in names and label values.
/// Collision-resistant, because people choose the names hashed into binding names: two that met
/// would have their RoleBindings overwrite each other.
pub fn hash_hex(s: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `prefix` followed by `s`, or, when that is longer than `max`, its first characters and a hash of
/// all of it. `s` is a Kubernetes name, so the result is a valid name or label value when `prefix`
/// is one and `max` allows it.
pub fn bounded_name(prefix: &str, s: &str, max: usize) -> String {
    let full = format!("{prefix}{s}");
    if full.len() <= max {
        return full;
    }
    let hash = hash_hex(&full);
    let mut keep = max.saturating_sub(hash.len() + 1);
    // Names are ASCII, but never split a character whatever comes in.
    while !full.is_char_boundary(keep) {
        keep -= 1;
    }
    // Names and label values must not end in `-` or `.` before the separator.
    let head = full[..keep].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hash}")
}

/// A label value for a name: the name itself when it fits in 63 characters.
pub fn label_value(s: &str) -> String {
    bounded_name("", s, LABEL_VALUE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_label_value(v: &str) -> bool {
        v.len() <= LABEL_VALUE_MAX
            && (v.is_empty()
                || (v.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && v.ends_with(|c: char| c.is_ascii_alphanumeric())
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))))
    }

    #[test]
    fn short_values_stay_as_they_are() {
        assert_eq!(label_value("alice"), "alice");
        assert_eq!(label_value(&"a".repeat(63)), "a".repeat(63));
        assert_eq!(
            bounded_name("roster-member-", "bob", 253),
            "roster-member-bob"
        );
    }

    #[test]
    fn long_values_are_valid_and_distinct() {
        let prefix = "a".repeat(240);
        let (x, y) = (format!("{prefix}-x.y"), format!("{prefix}-x.z"));
        for max in [LABEL_VALUE_MAX, NAME_MAX] {
            let (bx, by) = (
                bounded_name("roster-", &x, max),
                bounded_name("roster-", &y, max),
            );
            assert!(bx.len() <= max && by.len() <= max, "{bx} {by}");
            assert_ne!(bx, by);
            assert!(bx.starts_with("roster-aaa"), "{bx}");
        }
        for v in [
            label_value(&x),
            label_value(&format!("{}.-{}", "b".repeat(45), "c".repeat(40))),
        ] {
            assert!(valid_label_value(&v), "{v}");
        }
        // Stable across processes and releases: the hash names existing objects.
        assert_eq!(
            hash_hex("u:alice@example.com"),
            hash_hex("u:alice@example.com")
        );
        assert_eq!(stable_hash(""), 0xcbf29ce484222325);
    }
}
