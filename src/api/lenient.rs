//! Decoding of the status fields that the API server's schema lets through in shapes roster cannot
//! read (its `date-time` format accepts `2026-01-01T00:00:00+99:00` or more than nine fractional
//! digits, which Kubernetes' `Time` refuses). Status is roster's own output, recomputed from spec: what it cannot read it
//! treats as absent and writes again. Failing instead would fail the whole list of a watch, and so
//! freeze every organization behind one object.

use serde::{Deserialize, Deserializer};

use super::Condition;

type Time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A time, or none when it does not read as one.
pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// The conditions that read as conditions; the others are dropped.
pub fn conditions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Condition>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        _ => vec![],
    };
    Ok(items
        .into_iter()
        .filter_map(|c| serde_json::from_value(c).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use crate::api::{InviteStatus, MembershipStatus, OrganizationStatus, TeamStatus};
    use serde_json::json;

    fn condition(time: &str) -> serde_json::Value {
        json!({ "type": "Ready", "status": "True", "reason": "R", "message": "",
                "lastTransitionTime": time })
    }

    #[test]
    fn unreadable_times_and_conditions_read_as_absent() {
        let good = condition("2026-01-01T00:00:00Z");
        let bad = condition("2026-01-01T00:00:00");
        let m: MembershipStatus = serde_json::from_value(json!({
            "phase": "Active", "effectiveRole": "member", "joinedAt": "2026-01-01T00:00:00",
            "conditions": [bad, good]
        }))
        .unwrap();
        assert_eq!(m.joined_at, None);
        assert_eq!(m.conditions.len(), 1);
        let i: InviteStatus = serde_json::from_value(json!({
            "expiresAt": "yesterday", "acceptedBy": [{ "user": "u", "membership": "m", "at": "x" }],
            "conditions": "not a list"
        }))
        .unwrap();
        assert_eq!((i.expires_at, i.accepted_by[0].at.clone()), (None, None));
        assert!(i.conditions.is_empty());
        for status in [json!({ "conditions": [bad] }), json!({})] {
            let o: OrganizationStatus = serde_json::from_value(status.clone()).unwrap();
            assert!(o.conditions.is_empty());
            let t: TeamStatus = serde_json::from_value(status).unwrap();
            assert!(t.conditions.is_empty());
        }
    }
}
