//! Who may write status: roster alone. Status is what is in force: the webhook takes effective roles
//! from it, so whoever writes status decides who is an owner. Platform principals included, since
//! a broad platform role or a misbehaving tool is exactly what this guards against; they change
//! spec, and roster computes the status that follows.

use super::Actor;

/// The rule a refused status write names.
pub const STATUS_OWNED_BY_ROSTER: &str = "StatusOwnedByRoster";

/// Admits a status write only from roster's own identity (`roster`; `None` when roster does not know
/// who it is, which admits nobody). The error is the message of the refusal.
pub fn status_write(actor: &Actor, roster: Option<&str>) -> Result<(), String> {
    if roster.is_some_and(|me| me == actor.username) {
        return Ok(());
    }
    Err(format!(
        "only roster writes status (it is the effective state roster computes from spec, and the \
         webhook decides from it); {} may change spec instead",
        actor.username
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Config;

    fn actor(name: &str, groups: &[&str]) -> Actor {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        Actor::new(name, groups, &Config::default())
    }

    #[test]
    fn only_roster_writes_status() {
        let me = Some("system:serviceaccount:roster-system:roster");
        assert!(
            status_write(
                &actor("system:serviceaccount:roster-system:roster", &[]),
                me
            )
            .is_ok()
        );
        let admin = actor("admin", &["system:masters"]);
        assert!(admin.platform);
        assert!(status_write(&admin, me).is_err(), "platform principals too");
        assert!(status_write(&actor("mallory@example.com", &[]), me).is_err());
        let denied = status_write(&actor("roster", &[]), None).unwrap_err();
        assert!(denied.contains("roster may change spec"), "{denied}");
    }
}
