//! Invite lifetimes: Go-style durations, defaulted and capped by the org policy.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::{InvitePolicy, InviteSpec};

/// Parses a positive Go duration (`168h`, `90m`, `1h30m`, `1.5h`); `None` for anything else,
/// including durations too long to represent. Total: it never panics, whatever the input (kube's
/// `Duration` parser panics on overflow and on a negative later segment such as `1h-5h`).
pub fn parse(s: &str) -> Option<SignedDuration> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = SignedDuration::ZERO;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(split);
        let split = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(split);
        let value: f64 = number.parse().ok()?;
        let seconds = match unit {
            "ns" => value / 1e9,
            "us" | "\u{b5}s" | "\u{3bc}s" => value / 1e6,
            "ms" => value / 1e3,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return None,
        };
        total = total.checked_add(SignedDuration::try_from_secs_f64(seconds).ok()?)?;
        rest = after;
    }
    total.is_positive().then_some(total)
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
        assert_eq!(parse("1.5h"), Some(SignedDuration::from_mins(90)));
        assert_eq!(parse("+2m"), Some(SignedDuration::from_mins(2)));
        assert_eq!(parse("1500ms"), Some(SignedDuration::from_millis(1500)));
        assert_eq!(parse("1\u{b5}s"), Some(SignedDuration::from_micros(1)));
        assert_eq!(parse("h"), None);
        assert_eq!(parse("1"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn never_panics_on_overflow_or_signs() {
        assert_eq!(parse("5200000000000000h"), None);
        assert_eq!(parse("99999999999999999999999999h"), None);
        assert_eq!(parse("1h-5h"), None);
        assert_eq!(parse("1h+5h"), None);
        assert_eq!(parse("1..5h"), None);
        assert_eq!(
            parse("2562047h"),
            Some(SignedDuration::from_hours(2_562_047))
        );
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
