//! What the removal budget (`spec.policy.maxRemovalsPerHour`) counts: removals by someone else.
//! Leaving, deleting the Membership that names you, is never refused by the budget and never
//! counted, so that people who may join and leave (self-joiners) cannot spend it.

use crate::api::{MembershipSpec, Organization};

use super::Actor;

/// Whether deleting this Membership is its own user leaving.
pub fn leaving(actor: &Actor, membership: &MembershipSpec) -> bool {
    membership.user.as_deref() == Some(actor.username.as_str())
}

/// The organization's budget, if it has one: only then are removals worth counting.
pub fn budget(organization: Option<&Organization>) -> Option<i32> {
    organization?.spec.policy.max_removals_per_hour
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Config;

    #[test]
    fn only_the_named_user_leaves() {
        let spec = |user: Option<&str>, group: Option<&str>| -> MembershipSpec {
            serde_json::from_value(serde_json::json!({
                "user": user, "group": group, "role": "member"
            }))
            .unwrap()
        };
        let ada = Actor::new("ada@x.example", vec!["eng".into()], &Config::default());
        assert!(leaving(&ada, &spec(Some("ada@x.example"), None)));
        assert!(!leaving(&ada, &spec(Some("bob@x.example"), None)));
        assert!(
            !leaving(&ada, &spec(None, Some("eng"))),
            "a group does not leave"
        );
        assert!(!leaving(&ada, &spec(None, Some("ada@x.example"))));
    }
}
