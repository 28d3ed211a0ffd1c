//! Invariant 4: a Membership made with an invite is valid only if the invite exists, its code is
//! proven for the joining user, and the invite is usable by them for that role. The webhook asks
//! it before admitting a redemption and the controller again when it counts uses (the webhook may
//! have been bypassed); both ask the same questions in the same order, and each says the answer in
//! its own words.

use crate::api::{Invite, InvitePolicy, MembershipSpec, OrgRole};
use crate::rules::{invite_code, open_invites};

/// What is known of one redemption besides the Membership: how the caller sees the invite's time
/// and uses (the webhook at admission, the controller at the Membership's creation).
pub struct Claim<'a> {
    pub invite: &'a Invite,
    /// The code in the Invite's Secret, if generated.
    pub code: Option<&'a str>,
    pub expired: bool,
    pub exhausted: bool,
}

/// Why a redemption is not valid, first failing check first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// The code is not generated yet (compared first, so a wrong proof learns nothing else).
    CodeUnavailable,
    ProofMismatch,
    Revoked,
    Expired,
    Exhausted,
    /// The invite is for someone else.
    EmailMismatch(&'a str),
    Open(open_invites::Refusal),
    /// The invite grants another role.
    RoleMismatch(OrgRole),
}

/// The first reason `spec` (by `user`) may not redeem `claim.invite`, if any.
pub fn refusal<'a>(
    spec: &MembershipSpec,
    claim: &Claim<'a>,
    policy: &InvitePolicy,
) -> Option<Refusal<'a>> {
    let wanted = spec.invite.as_ref()?;
    let invite = claim.invite;
    let user = spec.user.as_deref().unwrap_or_default();
    let Some(code) = claim.code else {
        return Some(Refusal::CodeUnavailable);
    };
    let namespace = invite.metadata.namespace.as_deref().unwrap_or_default();
    let proof = wanted.proof.as_deref().unwrap_or_default();
    if !invite_code::proof_matches(code, namespace, &wanted.name, user, proof) {
        return Some(Refusal::ProofMismatch);
    }
    if invite.spec.revoked {
        return Some(Refusal::Revoked);
    }
    if claim.expired {
        return Some(Refusal::Expired);
    }
    if claim.exhausted {
        return Some(Refusal::Exhausted);
    }
    match &invite.spec.email {
        Some(email) if email != user => return Some(Refusal::EmailMismatch(email)),
        Some(_) => {}
        None => {
            if let Some(open) = open_invites::refusal(&invite.spec, policy) {
                return Some(Refusal::Open(open));
            }
        }
    }
    (spec.role != invite.spec.role).then_some(Refusal::RoleMismatch(invite.spec.role))
}
