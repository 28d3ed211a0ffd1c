//! Invariant 4: a Membership made with an invite is valid only if the invite exists, its code is
//! proven for the joining user, and the invite is usable by them for that role. The webhook asks
//! it before admitting a redemption and the controller again when it counts uses (the webhook may
//! have been bypassed); both ask the same questions in the same order, and each says the answer in
//! its own words.
//!
//! **Identity providers.** An invite bound to a provider (`spec.identityProvider`) is for users that
//! provider signed in (see [`identity_providers`]): the username must carry the provider's prefix,
//! and `spec.email`, when set, is the address *without* it: an invite for `ada@acme.example`
//! bound to `google` is for the username `google:ada@acme.example`. People write the address they
//! know, and the provider decides the username. An invite bound to no provider ("any") with an
//! `email` accepts that address as the username itself, as before providers existed, or under any
//! configured provider's prefix (`google:ada@acme.example`, `entra:ada@acme.example`); an open one
//! accepts anyone, as before.
//!
//! **Tenants.** Only the webhook sees how a user signed in (`userInfo.extra`), and only for the
//! user who makes the request; the controller never does. So a redemption of an invite bound to a
//! tenant *declares* it (`spec.invite.tenant`, immutable like the rest of `spec.invite`):
//! - both ask that the declaration is the invite's tenant, which the Membership and the Invite
//!   alone decide, so the controller agrees with the webhook and holds the rule where the webhook
//!   was bypassed;
//! - the webhook, when the requester is the joining user, also asks that the authenticator put
//!   the user in that tenant (`extra[tenantKey]`), so nobody declares a tenant they are not in.
//!   A platform principal redeeming on someone else's behalf is taken at its word: it may create
//!   that user's Membership without any invite.

use crate::api::{IdentityProviderRef, Invite, InvitePolicy, MembershipSpec, OrgRole};
use crate::rules::identity_providers::{self, Extra, IdentityProviders};
use crate::rules::{invite_code, open_invites};

/// What is known of one redemption besides the Membership: how the caller sees the invite's time
/// and uses (the webhook at admission, the controller at the Membership's creation), and how the
/// joining user signed in.
pub struct Claim<'a> {
    pub invite: &'a Invite,
    /// The code in the Invite's Secret, if generated.
    pub code: Option<&'a str>,
    pub expired: bool,
    pub exhausted: bool,
    /// The installation's identity providers.
    pub providers: &'a IdentityProviders,
    /// The joining user's `userInfo.extra`, when the caller saw the user sign in (the webhook, for a
    /// request by that user); `None` for the controller.
    pub signed_in: Option<&'a Extra>,
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
    /// The invite is bound to a provider (or tenant) this installation cannot check.
    ProviderUnchecked(identity_providers::Unchecked<'a>),
    /// The user did not sign in with the provider the invite is bound to.
    WrongProvider(&'a identity_providers::IdentityProvider),
    /// The invite is for someone else (its `spec.email`).
    EmailMismatch(&'a str),
    /// `spec.invite.tenant` is not the invite's tenant (`None`: the invite names none).
    TenantNotDeclared {
        tenant: Option<&'a str>,
        declared: Option<&'a str>,
    },
    /// The authenticator did not put the user in the invite's tenant (webhook only).
    NotInTenant {
        provider: &'a identity_providers::IdentityProvider,
        tenant: &'a str,
        seen: &'a [String],
    },
    Open(open_invites::Refusal),
    /// The invite grants another role.
    RoleMismatch(OrgRole),
}

/// The first reason `spec` (by `user`) may not redeem `claim.invite`, if any.
pub fn refusal<'a>(
    spec: &'a MembershipSpec,
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
    let declared = wanted.tenant.as_deref();
    match &invite.spec.identity_provider {
        Some(bound) => {
            if let Some(refusal) = provider_refusal(bound, user, declared, claim) {
                return Some(refusal);
            }
        }
        None => {
            if let Some(email) = &invite.spec.email
                && !claim.providers.any_names(user, email)
            {
                return Some(Refusal::EmailMismatch(email));
            }
            if declared.is_some() {
                return Some(Refusal::TenantNotDeclared {
                    tenant: None,
                    declared,
                });
            }
        }
    }
    if invite.spec.email.is_none()
        && let Some(open) = open_invites::refusal(&invite.spec, policy)
    {
        return Some(Refusal::Open(open));
    }
    (spec.role != invite.spec.role).then_some(Refusal::RoleMismatch(invite.spec.role))
}

/// An invite bound to a provider: the user signed in with it, is the invite's address under its
/// prefix, declares the invite's tenant, and (where the caller saw the sign-in) is in it.
fn provider_refusal<'a>(
    bound: &'a IdentityProviderRef,
    user: &str,
    declared: Option<&'a str>,
    claim: &Claim<'a>,
) -> Option<Refusal<'a>> {
    let provider = match claim.providers.resolve(bound) {
        Ok(p) => p,
        Err(unchecked) => return Some(Refusal::ProviderUnchecked(unchecked)),
    };
    let Some(rest) = provider.signed_in(user) else {
        return Some(Refusal::WrongProvider(provider));
    };
    if let Some(email) = &claim.invite.spec.email
        && rest != email
    {
        return Some(Refusal::EmailMismatch(email));
    }
    let tenant = bound.tenant.as_deref();
    if declared != tenant {
        return Some(Refusal::TenantNotDeclared { tenant, declared });
    }
    if let (Some(tenant), Some(extra)) = (tenant, claim.signed_in)
        && !provider.in_tenant(tenant, extra)
    {
        return Some(Refusal::NotInTenant {
            provider,
            tenant,
            seen: provider.tenants(extra),
        });
    }
    None
}

/// `invite ns/name is bound to identity provider p (tenant t)`: how refusals about providers
/// start, in the webhook's and the controller's words alike.
pub fn bound_to(invite: &Invite) -> String {
    let ns = invite.metadata.namespace.as_deref().unwrap_or_default();
    let name = invite.metadata.name.as_deref().unwrap_or_default();
    match &invite.spec.identity_provider {
        Some(IdentityProviderRef {
            name: p,
            tenant: Some(t),
        }) => format!("invite {ns}/{name} is bound to identity provider {p}, tenant {t}"),
        Some(IdentityProviderRef { name: p, .. }) => {
            format!("invite {ns}/{name} is bound to identity provider {p}")
        }
        None => format!("invite {ns}/{name} is bound to no identity provider"),
    }
}

/// What the refusals about identity providers say, the same for the webhook and the controller;
/// `None` for the others, which each words in its own way.
pub fn provider_message(
    refusal: &Refusal<'_>,
    invite: &Invite,
    user: &str,
    providers: &IdentityProviders,
) -> Option<String> {
    let bound = bound_to(invite);
    Some(match *refusal {
        Refusal::ProviderUnchecked(unchecked) => format!(
            "{bound}, which this installation cannot check: {}",
            unchecked.message("spec.identityProvider", providers)
        ),
        Refusal::WrongProvider(p) => format!(
            "{bound}; user {user} did not sign in with it ({}'s usernames start with {}); sign in with {} and join again, or ask for an invite for the provider you use",
            p.name, p.username_prefix, p.name
        ),
        Refusal::TenantNotDeclared {
            tenant: Some(t),
            declared,
        } => format!(
            "{bound}; spec.invite.tenant must declare that tenant ({}): set it to {t} (kubectl roster join --tenant {t})",
            match declared {
                Some(d) => format!("it is {d}"),
                None => "it is not set".into(),
            }
        ),
        Refusal::TenantNotDeclared { tenant: None, .. } => {
            format!("{bound} and names no tenant; spec.invite.tenant must not be set: leave it out")
        }
        Refusal::NotInTenant {
            provider,
            tenant,
            seen,
        } => format!(
            "{bound}; user {user} did not sign in to that tenant (userInfo.extra[{}] holds {}); sign in with an account of tenant {tenant}, or ask for an invite for yours",
            provider.tenant_key.as_deref().unwrap_or_default(),
            if seen.is_empty() {
                "nothing".to_string()
            } else {
                seen.join(", ")
            }
        ),
        _ => return None,
    })
}

/// What an invite's `spec.email` stands for, for messages: the address, and the username it means
/// when the invite is bound to a provider.
pub fn invitee(invite: &Invite, providers: &IdentityProviders) -> String {
    let email = invite.spec.email.as_deref().unwrap_or_default();
    match invite
        .spec
        .identity_provider
        .as_ref()
        .and_then(|r| providers.get(&r.name))
    {
        Some(p) => format!(
            "{email} signed in with {} (username {})",
            p.name,
            p.username(email)
        ),
        None => email.to_string(),
    }
}
