//! Invite lifetimes: Go-style durations, defaulted and capped by the org policy.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::{InvitePolicy, InviteSpec};

/// Parses a positive Go duration (`168h`, `90m`); `None` for anything else.
pub fn parse(s: &str) -> Option<SignedDuration> {
    let d: kube::core::Duration = s.parse().ok()?;
    if d.is_negative() {
        return None;
    }
    let d: std::time::Duration = d.into();
    (!d.is_zero())
        .then(|| SignedDuration::try_from(d).ok())
        .flatten()
}

/// The lifetime an invite gets: its `ttl` or the policy's `defaultTTL`, capped by `maxTTL`.
/// The second value is true when the cap shortened what the invite asked for.
pub fn lifetime(spec: &InviteSpec, policy: &InvitePolicy) -> (SignedDuration, bool) {
    let fallback = SignedDuration::from_hours(168);
    let max = parse(&policy.max_ttl).unwrap_or(SignedDuration::from_hours(720));
    let asked = spec
        .ttl
        .as_deref()
        .and_then(parse)
        .or_else(|| parse(&policy.default_ttl))
        .unwrap_or(fallback);
    if asked > max {
        (max, true)
    } else {
        (asked, false)
    }
}

/// When an invite created at `created` stops working.
pub fn expires_at(created: Timestamp, spec: &InviteSpec, policy: &InvitePolicy) -> Timestamp {
    let (life, _) = lifetime(spec, policy);
    created.checked_add(life).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("168h"), Some(SignedDuration::from_hours(168)));
        assert_eq!(parse("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(parse("0s"), None);
        assert_eq!(parse("-1h"), None);
        assert_eq!(parse("soon"), None);
    }

    #[test]
    fn ttl_defaults_from_policy_and_is_capped() {
        let policy = InvitePolicy {
            default_ttl: "24h".into(),
            max_ttl: "48h".into(),
            allow_open_invites: true,
        };
        let mut spec: InviteSpec =
            serde_json::from_value(serde_json::json!({"role": "member"})).unwrap();
        assert_eq!(
            lifetime(&spec, &policy),
            (SignedDuration::from_hours(24), false)
        );
        spec.ttl = Some("100h".into());
        assert_eq!(
            lifetime(&spec, &policy),
            (SignedDuration::from_hours(48), true)
        );
        spec.ttl = Some("1h".into());
        assert_eq!(
            lifetime(&spec, &policy),
            (SignedDuration::from_hours(1), false)
        );
    }
}
