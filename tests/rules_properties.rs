//! Property tests for the rules engine (docs/design.md §3 and §4): over random organizations with
//! random histories, the effective state never breaks an invariant, is idempotent and deterministic,
//! and GitOps-style syncs between two valid states converge in any order without breaking one.
//!
//! `make test` runs each property with PROPTEST_CASES=1000.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::sample::Index;
use roster::api::{
    Invite, InvitePhase, Membership, MembershipPhase, MembershipSpec, MembershipStatus, OrgRole,
    Organization, Subject, Team,
};
use roster::rules::conditions::{self, Standing};
use roster::rules::{self, Actor, Config, Context, Effective, Operation, OrgIndex, OrgObjects};

const EPOCH: i64 = 1_800_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(EPOCH + secs).unwrap()
}

fn org(
    min_owners: i32,
    max_owners: Option<i32>,
    max_members: Option<i32>,
    allow_open: bool,
) -> Organization {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "acme", "namespace": "acme", "generation": 1,
                      "creationTimestamp": Time(at(0)) },
        "spec": { "policy": {
            "minOwners": min_owners, "maxOwners": max_owners, "maxMembers": max_members,
            "invites": { "defaultTTL": "1h", "maxTTL": "3h", "allowOpenInvites": allow_open }
        } }
    }))
    .unwrap()
}

fn subject_json(subject: &Subject) -> (Option<String>, Option<String>) {
    match subject {
        Subject::User(u) => (Some(u.clone()), None),
        Subject::Group(g) => (None, Some(g.clone())),
    }
}

fn membership(name: &str, subject: &Subject, role: OrgRole, created: i64) -> Membership {
    let (user, group) = subject_json(subject);
    let mut m: Membership = serde_json::from_value(serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
        "metadata": { "name": name, "namespace": "acme", "generation": 1,
                      "creationTimestamp": Time(at(created)) },
        "spec": { "role": role }
    }))
    .unwrap();
    m.spec.user = user;
    m.spec.group = group;
    m
}

fn invite(
    name: &str,
    email: Option<&str>,
    max_uses: i32,
    ttl_mins: i64,
    revoked: bool,
    created: i64,
) -> Invite {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Invite",
        "metadata": { "name": name, "namespace": "acme", "generation": 1,
                      "creationTimestamp": Time(at(created)) },
        "spec": { "email": email, "role": "member", "maxUses": max_uses,
                  "ttl": format!("{ttl_mins}m"), "revoked": revoked }
    }))
    .unwrap()
}

/// An invite that makes admins: at most one may be pending, whatever races let in.
fn admin_invite(mut i: Invite) -> Invite {
    i.spec.role = OrgRole::Admin;
    i
}

fn subject_strategy() -> impl Strategy<Value = Subject> {
    prop_oneof![
        4 => (0..6u8).prop_map(|i| Subject::User(format!("u{i}@acme.example"))),
        1 => (0..2u8).prop_map(|i| Subject::Group(format!("acme:g{i}"))),
    ]
}

fn role_strategy() -> impl Strategy<Value = OrgRole> {
    prop_oneof![
        Just(OrgRole::Owner),
        Just(OrgRole::Admin),
        Just(OrgRole::Member),
        Just(OrgRole::Viewer)
    ]
}

fn phase_strategy() -> impl Strategy<Value = Option<MembershipPhase>> {
    prop_oneof![
        Just(None),
        Just(Some(MembershipPhase::Active)),
        Just(Some(MembershipPhase::Pending)),
        Just(Some(MembershipPhase::Denied))
    ]
}

/// A random organization with a random history: any desired state, any previous statuses.
#[derive(Clone, Debug)]
struct World {
    organization: Option<Organization>,
    memberships: Vec<Membership>,
    invites: Vec<Invite>,
    codes: BTreeMap<String, String>,
    now: Timestamp,
}

impl World {
    /// The effective state of this world at `now`.
    fn compute(&self, now: Timestamp) -> Effective {
        let memberships: Vec<&Membership> = self.memberships.iter().collect();
        rules::compute(
            OrgObjects {
                organization: self.organization.as_ref(),
                memberships: &memberships,
                invites: &self.invites,
                teams: &[] as &[Team],
                invite_codes: &self.codes,
                identity_providers: &rules::IdentityProviders::default(),
            },
            now,
        )
    }

    /// Writes the computed statuses back, as the controller does.
    fn apply(&mut self, eff: &Effective) {
        for m in &mut self.memberships {
            m.status = Some(
                eff.memberships[m.metadata.name.as_ref().unwrap()]
                    .status
                    .clone(),
            );
        }
        for i in &mut self.invites {
            let mut status = eff.invites[i.metadata.name.as_ref().unwrap()].clone();
            status.code_secret_name = Some(format!("{}-code", i.metadata.name.as_ref().unwrap()));
            i.status = Some(status);
        }
        if let (Some(o), Some(s)) = (&mut self.organization, &eff.organization) {
            o.status = Some(s.clone());
        }
    }
}

prop_compose! {
    fn world()(
        has_org in prop::bool::weighted(0.9),
        min_owners in 1..=2i32,
        max_owners in prop::option::of(1..=3i32),
        max_members in prop::option::of(2..=8i32),
        allow_open in any::<bool>(),
        raw_members in prop::collection::vec(
            (subject_strategy(), role_strategy(), prop::bool::weighted(0.15), phase_strategy(),
             prop::option::of(role_strategy()), prop::option::of((0..3usize, any::<bool>()))),
            0..14),
        raw_invites in prop::collection::vec(
            (prop::option::of(0..6u8), 1..=3i32, 10..=240i64, prop::bool::weighted(0.2),
             prop::bool::weighted(0.4)), 0..4),
        now in 0..20_000i64,
    ) -> World {
        let max_owners = max_owners.map(|m| m.max(min_owners));
        let max_members = max_members.map(|m| m.max(min_owners));
        let invites: Vec<Invite> = raw_invites.iter().enumerate().map(|(i, (email, uses, ttl, revoked, admin))| {
            let email = email.map(|e| format!("u{e}@acme.example"));
            let inv = invite(&format!("inv{i}"), email.as_deref(), *uses, *ttl, *revoked, i as i64 * 600);
            if *admin { admin_invite(inv) } else { inv }
        }).collect();
        let codes = (0..invites.len()).map(|i| (format!("inv{i}"), format!("CODE-{i}"))).collect();
        let memberships = raw_members.iter().enumerate().map(|(i, (subject, role, deleting, phase, prev_role, redeem))| {
            let mut m = membership(&format!("m{i:02}"), subject, *role, i as i64 * 300);
            if *deleting {
                m.metadata.deletion_timestamp = Some(Time(at(i as i64 * 300 + 1)));
                m.metadata.finalizers = Some(vec!["roster.dev/owner-protection".into()]);
            }
            if let (Some((inv, right_code)), Subject::User(user)) = (redeem, subject)
                && *inv < invites.len()
            {
                let code = if *right_code { format!("CODE-{inv}") } else { "WRONG".into() };
                m.spec.invite = Some(proven(&format!("inv{inv}"), &code, user));
            }
            if phase.is_some() {
                let active = *phase == Some(MembershipPhase::Active);
                m.status = Some(MembershipStatus {
                    phase: *phase,
                    effective_role: prev_role.filter(|_| active),
                    // The controller records a redemption whenever it admits one.
                    invite: m.spec.invite.as_ref().filter(|_| active).map(|r| r.name.clone()),
                    ..Default::default()
                });
            }
            m
        }).collect::<Vec<Membership>>();
        // Histories the controller can have written: no invite recorded beyond its maxUses
        // (maxUses can only grow, a CRD rule).
        let mut memberships = memberships;
        let mut recorded: BTreeMap<String, i32> = BTreeMap::new();
        for m in &mut memberships {
            let Some(name) = m.status.as_ref().and_then(|s| s.invite.clone()) else { continue };
            let max = invites.iter().find(|i| i.metadata.name.as_deref() == Some(&name)).map_or(0, |i| i.spec.max_uses);
            let n = recorded.entry(name).or_default();
            if *n >= max {
                m.status = None;
            } else {
                *n += 1;
            }
        }
        World {
            organization: has_org.then(|| org(min_owners, max_owners, max_members, allow_open)),
            memberships,
            invites,
            codes,
            now: at(now),
        }
    }
}

/// Every invariant of docs/design.md §3 that the effective state carries.
fn check_invariants(world: &World, eff: &Effective) -> Result<(), TestCaseError> {
    let policy = world
        .organization
        .as_ref()
        .map(|o| o.spec.policy.clone())
        .unwrap_or_default();
    let active: Vec<(&Membership, OrgRole)> = world
        .memberships
        .iter()
        .filter_map(|m| {
            let s = &eff.memberships[m.metadata.name.as_ref().unwrap()].status;
            (s.phase == Some(MembershipPhase::Active))
                .then(|| (m, s.effective_role.expect("Active has a role")))
        })
        .collect();
    if world.organization.is_none() {
        prop_assert!(
            active.is_empty(),
            "no Membership is effective without an Organization"
        );
        return Ok(());
    }
    // 1. At least minOwners effective owners while the org has effective members.
    let owners = active.iter().filter(|(_, r)| *r == OrgRole::Owner).count();
    prop_assert!(
        active.is_empty() || owners >= policy.min_owners as usize,
        "owners {owners} < minOwners with {} members",
        active.len()
    );
    // 2. One effective Membership per user or group.
    let subjects: HashSet<Subject> = active
        .iter()
        .map(|(m, _)| m.spec.subject().unwrap())
        .collect();
    prop_assert_eq!(subjects.len(), active.len(), "a subject is effective twice");
    // 3. Seats.
    if let Some(limit) = policy.max_members {
        prop_assert!(
            active.len() <= limit as usize,
            "{} effective > maxMembers {limit}",
            active.len()
        );
    }
    // 4. Invites: at most one usable admin invite; never beyond maxUses; a new redemption only
    //    with the right code, before expiry, not revoked, for the right e-mail.
    let usable_admin_invites = world
        .invites
        .iter()
        .filter(|i| i.spec.role == OrgRole::Admin)
        .filter(|i| {
            let s = &eff.invites[i.metadata.name.as_ref().unwrap()];
            s.phase == Some(InvitePhase::Pending)
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
        .count();
    prop_assert!(
        usable_admin_invites <= 1,
        "{usable_admin_invites} usable admin invites"
    );
    for inv in &world.invites {
        let name = inv.metadata.name.as_ref().unwrap();
        let s = &eff.invites[name];
        prop_assert!(
            s.uses <= inv.spec.max_uses,
            "invite {name} used {} > {}",
            s.uses,
            inv.spec.max_uses
        );
        prop_assert_eq!(s.uses as usize, s.accepted_by.len());
    }
    for (m, role) in &active {
        let Some(r) = &m.spec.invite else { continue };
        let recorded = m.status.as_ref().and_then(|s| s.invite.as_deref()) == Some(r.name.as_str());
        if recorded {
            continue;
        }
        let inv = world
            .invites
            .iter()
            .find(|i| i.metadata.name.as_deref() == Some(r.name.as_str()));
        let inv = inv.expect("an unrecorded redemption needs its Invite");
        let user = m.spec.user.as_deref().unwrap_or_default();
        prop_assert_eq!(
            world
                .codes
                .get(&r.name)
                .and_then(|code| proven(&r.name, code, user).proof),
            r.proof.clone(),
            "wrong code admitted"
        );
        prop_assert!(!inv.spec.revoked, "revoked invite admitted");
        let expires = eff.invites[&r.name].expires_at.as_ref().unwrap().0;
        prop_assert!(
            m.metadata.creation_timestamp.as_ref().unwrap().0 < expires,
            "expired invite admitted"
        );
        if let Some(email) = &inv.spec.email {
            prop_assert_eq!(m.spec.user.as_ref(), Some(email));
        }
        prop_assert_eq!(
            m.spec.role,
            inv.spec.role,
            "a redemption takes the invite's role"
        );
        let _ = role;
    }
    // Effective role is the desired one unless a change is held, and only ever held at owner.
    for (m, role) in &active {
        let s = &eff.memberships[m.metadata.name.as_ref().unwrap()].status;
        let held = s
            .conditions
            .iter()
            .any(|c| c.type_ == "RoleChangeHeld" && c.status == "True");
        if held {
            prop_assert_eq!(*role, OrgRole::Owner);
        } else {
            prop_assert_eq!(*role, m.spec.role);
            prop_assert!(
                m.metadata.deletion_timestamp.is_none(),
                "a leaving Membership is effective without a hold"
            );
        }
    }
    // The org status agrees with the memberships.
    let status = eff.organization.as_ref().unwrap();
    prop_assert_eq!(status.members as usize, active.len());
    prop_assert_eq!(status.owners.len(), owners);
    prop_assert_eq!(status.seats.used, status.members);
    // Owner protection: exactly the effective owners keep the finalizer.
    for m in &world.memberships {
        let e = &eff.memberships[m.metadata.name.as_ref().unwrap()];
        let owner = e.status.phase == Some(MembershipPhase::Active)
            && e.status.effective_role == Some(OrgRole::Owner);
        prop_assert_eq!(e.protect, owner);
    }
    Ok(())
}

/// Statuses only; notices are transitions and differ by design on a second run.
fn statuses(eff: &Effective) -> Effective {
    Effective {
        notices: Vec::new(),
        ..eff.clone()
    }
}

proptest! {
    #[test]
    fn effective_state_never_breaks_an_invariant(mut w in world()) {
        let eff = w.compute(w.now);
        check_invariants(&w, &eff)?;
        // And neither does the next round, computed from the statuses just written.
        w.apply(&eff);
        let again = w.compute(w.now);
        check_invariants(&w, &again)?;
    }

    #[test]
    fn effective_state_is_idempotent(mut w in world()) {
        // Once statuses are written, recomputing at the same moment changes nothing.
        let first = w.compute(w.now);
        w.apply(&first);
        let second = w.compute(w.now);
        w.apply(&second);
        let third = w.compute(w.now);
        prop_assert_eq!(statuses(&second), statuses(&third));
        prop_assert!(third.notices.is_empty(), "a settled state raises no new events: {:?}", third.notices);
    }

    #[test]
    fn every_status_states_one_kstatus_standing(mut w in world()) {
        // What kstatus (Flux's `wait`) and Argo CD read: Ready=True alone, or Ready=False with
        // exactly one of Reconciling and Stalled; never Ready=False alone, which reads as "in
        // progress" forever. Denied is Stalled, Pending is Reconciling, settled invites are Ready.
        for _ in 0..2 {
            let eff = w.compute(w.now);
            let all = eff.memberships.iter().map(|(n, e)| (n.as_str(), &e.status.conditions))
                .chain(eff.invites.iter().map(|(n, s)| (n.as_str(), &s.conditions)))
                .chain(eff.organization.iter().map(|s| ("the Organization", &s.conditions)));
            for (name, conditions) in all {
                let ready = conditions::is_true(conditions, "Ready");
                let reconciling = conditions::is_true(conditions, "Reconciling");
                let stalled = conditions::is_true(conditions, "Stalled");
                prop_assert!(conditions::find(conditions, "Ready").is_some(), "{name}: no Ready");
                prop_assert_eq!(u8::from(ready) + u8::from(reconciling) + u8::from(stalled), 1, "{}: {:?}", name, conditions);
                prop_assert!(conditions.iter().all(|c| c.status == "True" || !["Reconciling", "Stalled"].contains(&c.type_.as_str())), "{name}: abnormal-true conditions are present only while true");
            }
            for e in eff.memberships.values() {
                let standing = conditions::standing(&e.status.conditions);
                match e.status.phase {
                    Some(MembershipPhase::Denied) => prop_assert_eq!(standing, Standing::Stalled),
                    Some(MembershipPhase::Pending) => prop_assert_eq!(standing, Standing::Reconciling),
                    _ => {}
                }
            }
            for s in eff.invites.values() {
                if s.phase != Some(InvitePhase::Pending) {
                    prop_assert!(conditions::is_true(&s.conditions, "Ready"), "a settled invite is Ready: {:?}", s);
                    prop_assert!(!conditions::is_true(&s.conditions, "Usable"));
                }
            }
            w.apply(&eff);
        }
    }

    #[test]
    fn effective_state_ignores_input_order(w in world(), seed in any::<u64>()) {
        let eff = w.compute(w.now);
        let mut shuffled = w.clone();
        let mut rng = seed;
        for i in (1..shuffled.memberships.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.memberships.swap(i, (rng >> 33) as usize % (i + 1));
        }
        shuffled.invites.reverse();
        prop_assert_eq!(statuses(&eff), statuses(&shuffled.compute(w.now)));
    }

    /// The caches keep Memberships packed and the index current event by event: every Membership
    /// comes back from the cache as it went in, and an index kept current through upserts and
    /// removals in any order answers as one built from scratch.
    #[test]
    fn caches_answer_as_the_objects_do(mut w in world(), seed in any::<u64>(), gone in any::<u64>()) {
        let eff = w.compute(w.now);
        w.apply(&eff);
        let packed = roster::caches::Packed::<Membership>::default();
        for m in &w.memberships {
            let mut m = m.clone();
            m.metadata.namespace = Some("acme".into());
            packed.apply(&kube::runtime::watcher::Event::Apply(m));
        }
        let back: BTreeMap<String, serde_json::Value> = packed.in_namespace("acme").iter()
            .map(|m| (m.metadata.name.clone().unwrap(), serde_json::to_value(m.as_ref()).unwrap()))
            .collect();
        prop_assert_eq!(back.len(), w.memberships.len());
        for m in &w.memberships {
            let mut m = m.clone();
            m.metadata.namespace = Some("acme".into());
            prop_assert_eq!(&back[m.metadata.name.as_ref().unwrap()], &serde_json::to_value(&m).unwrap());
        }

        // Some Memberships are removed again; the index sees upserts in a shuffled order, each
        // removal, and a second upsert of some.
        let kept: Vec<&Membership> = w.memberships.iter().enumerate()
            .filter(|(i, _)| gone >> (i % 64) & 1 == 0).map(|(_, m)| m).collect();
        let fresh = OrgIndex::new(w.organization.as_ref(), kept.iter().copied(), &w.invites);
        let mut live = OrgIndex::new(w.organization.as_ref(), [], &w.invites);
        let mut order: Vec<&Membership> = w.memberships.iter().collect();
        let mut rng = seed;
        for i in (1..order.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (rng >> 33) as usize % (i + 1));
        }
        for m in &order {
            live.upsert_membership(m);
        }
        for (i, m) in w.memberships.iter().enumerate() {
            if gone >> (i % 64) & 1 == 1 {
                live.remove_membership(m.metadata.name.as_ref().unwrap());
            } else if i % 3 == 0 {
                live.upsert_membership(m);
            }
        }
        prop_assert_eq!(live.owners(), fresh.owners());
        prop_assert_eq!(live.effective_members(), fresh.effective_members());
        for m in &w.memberships {
            let subject = m.spec.subject().unwrap();
            prop_assert_eq!(live.claimed_by(&subject), fresh.claimed_by(&subject));
            prop_assert_eq!(live.effective_role(&subject), fresh.effective_role(&subject));
            if let Subject::User(u) = &subject {
                prop_assert_eq!(live.role_of(u, &[]), fresh.role_of(u, &[]));
            }
        }
    }

    #[test]
    fn invites_expire_exactly_when_next_change_says(w in world()) {
        let eff = w.compute(w.now);
        if let Some(t) = eff.next_change {
            prop_assert!(t > w.now);
            let later = w.compute(t);
            let expired_now = later.invites.values().filter(|s| s.phase == Some(InvitePhase::Expired)).count();
            let expired_before = eff.invites.values().filter(|s| s.phase == Some(InvitePhase::Expired)).count();
            prop_assert!(expired_now > expired_before, "nothing expired at next_change");
        }
    }
}

proptest! {
    #[test]
    fn removing_owners_behind_the_webhook_never_suspends_the_organization(
        mut w in world(),
        choices in prop::collection::vec(0..3u8, 14),
    ) {
        // Settle any history first, as a running controller would have.
        for _ in 0..2 {
            let eff = w.compute(w.now);
            w.apply(&eff);
        }
        let active_before: HashSet<String> = w.memberships.iter()
            // Leaving ones are released once nobody else remains, so only staying members count.
            .filter(|m| m.metadata.deletion_timestamp.is_none())
            .filter(|m| m.status.as_ref().is_some_and(|s| s.phase == Some(MembershipPhase::Active)))
            .map(|m| m.metadata.name.clone().unwrap()).collect();
        // Demote or delete effective owners without asking the webhook (it was down, say).
        let mut touched = HashSet::new();
        for (m, choice) in w.memberships.iter_mut().zip(&choices) {
            let owner = m.status.as_ref().is_some_and(|s| s.effective_role == Some(OrgRole::Owner));
            if !owner || *choice == 0 { continue; }
            touched.insert(m.metadata.name.clone().unwrap());
            if *choice == 1 {
                m.spec.role = OrgRole::Member;
            } else {
                m.metadata.deletion_timestamp = Some(Time(w.now));
            }
        }
        let eff = w.compute(w.now);
        check_invariants(&w, &eff)?;
        // Everyone else who was in force still is: the last owners' changes are held instead.
        for name in active_before.difference(&touched) {
            let s = &eff.memberships[name].status;
            prop_assert_eq!(s.phase, Some(MembershipPhase::Active), "{} lost its membership: {:?}", name, s.conditions);
        }
    }
}

#[test]
fn demoting_the_last_owner_is_held_with_a_condition_until_another_owner_exists() {
    let mut w = World {
        organization: Some(org(1, None, None, true)),
        memberships: vec![
            membership(
                "alice",
                &Subject::User("alice@acme.example".into()),
                OrgRole::Owner,
                1,
            ),
            membership(
                "bob",
                &Subject::User("bob@acme.example".into()),
                OrgRole::Member,
                2,
            ),
        ],
        invites: Vec::new(),
        codes: BTreeMap::new(),
        now: at(10),
    };
    let eff = w.compute(w.now);
    w.apply(&eff);
    assert!(eff.memberships["alice"].protect);

    w.memberships[0].spec.role = OrgRole::Member;
    let eff = w.compute(w.now);
    let alice = &eff.memberships["alice"];
    assert_eq!(
        alice.status.effective_role,
        Some(OrgRole::Owner),
        "the old effective role remains"
    );
    assert!(alice.protect, "the last owner keeps its protection");
    let held = alice
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "RoleChangeHeld")
        .expect("a condition says why");
    assert_eq!(held.reason, "LastOwnerDemotionHeld");
    assert!(
        held.message.contains("make another member owner first"),
        "{}",
        held.message
    );
    assert_eq!(
        eff.notices.len(),
        1,
        "one event for the held demotion: {:?}",
        eff.notices
    );
    w.apply(&eff);

    // Bob becomes owner: alice's demotion applies by itself.
    w.memberships[1].spec.role = OrgRole::Owner;
    let eff = w.compute(w.now);
    w.apply(&eff);
    let eff = w.compute(w.now);
    assert_eq!(
        eff.memberships["alice"].status.effective_role,
        Some(OrgRole::Member)
    );
    assert!(!eff.memberships["alice"].protect);
    assert_eq!(
        eff.organization.unwrap().owners,
        vec!["bob@acme.example".to_string()]
    );
}

// ---- Any-order convergence (docs/design.md §4) ----

/// A valid desired state: unique subjects, enough owners, within the seat limit.
#[derive(Clone, Debug)]
struct Desired(BTreeMap<Subject, OrgRole>);

fn desired(max_members: usize) -> impl Strategy<Value = Desired> {
    prop::collection::btree_map(subject_strategy(), role_strategy(), 1..=max_members)
        .prop_flat_map(|m| (Just(m.clone()), 0..m.len()))
        .prop_map(|(mut m, owner)| {
            let key = m.keys().nth(owner).unwrap().clone();
            m.insert(key, OrgRole::Owner);
            Desired(m)
        })
}

/// A cluster as the sync sees it: objects with finalizers, the controller run after every write.
struct Cluster {
    world: World,
    clock: i64,
    next_name: usize,
}

impl Cluster {
    fn new(org: Organization) -> Cluster {
        Cluster {
            world: World {
                organization: Some(org),
                memberships: Vec::new(),
                invites: Vec::new(),
                codes: BTreeMap::new(),
                now: at(0),
            },
            clock: 0,
            next_name: 0,
        }
    }

    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.world.now = at(self.clock);
        self.clock
    }

    /// One controller pass: compute, write statuses, add or release owner protection, and let the
    /// API server finish deletions whose finalizers are gone.
    fn reconcile(&mut self) -> Effective {
        let eff = self.world.compute(self.world.now);
        self.world.apply(&eff);
        for m in &mut self.world.memberships {
            m.metadata.finalizers = eff.memberships[m.metadata.name.as_ref().unwrap()]
                .protect
                .then(|| vec!["p".into()]);
        }
        self.world
            .memberships
            .retain(|m| m.metadata.deletion_timestamp.is_none() || m.metadata.finalizers.is_some());
        eff
    }

    fn find(&self, s: &Subject) -> Option<usize> {
        self.world.memberships.iter().position(|m| {
            m.spec.subject().as_ref() == Some(s) && m.metadata.deletion_timestamp.is_none()
        })
    }

    /// Applies one change the way kubectl/Argo CD would, through the webhook's decision.
    /// Returns false when the webhook refused it (the sync retries later).
    fn apply_change(&mut self, subject: &Subject, role: Option<OrgRole>) -> bool {
        let index = OrgIndex::new(
            self.world.organization.as_ref(),
            &self.world.memberships,
            &self.world.invites,
        );
        let config = Config::default();
        let actor = Actor::new(
            "system:serviceaccount:argocd:argocd-application-controller",
            vec!["system:masters".into()],
            &config,
        );
        let ctx = Context {
            now: self.world.now,
            removals_last_hour: 0,
            namespace_deleting: false,
        };
        let existing = self.find(subject);
        let now = self.tick();
        let (user, group) = subject_json(subject);
        let new_spec = role.map(|role| MembershipSpec {
            user,
            group,
            role,
            display_name: None,
            email: None,
            invite: None,
        });
        let op = match (existing, &new_spec) {
            (None, Some(spec)) => Operation::CreateMembership {
                spec,
                redemption: None,
            },
            (Some(i), Some(spec)) => Operation::UpdateMembership {
                old: &self.world.memberships[i].spec,
                new: spec,
            },
            (Some(i), None) => Operation::DeleteMembership(&self.world.memberships[i].spec),
            (None, None) => return true,
        };
        if !rules::authorize(&index, &config, &actor, &op, &ctx).allowed() {
            return false;
        }
        match (existing, new_spec) {
            (None, Some(spec)) => {
                self.next_name += 1;
                let mut m = membership(&format!("m{:04}", self.next_name), subject, spec.role, now);
                m.spec = spec;
                self.world.memberships.push(m);
            }
            (Some(i), Some(spec)) => self.world.memberships[i].spec = spec,
            (Some(i), None) => {
                self.world.memberships[i].metadata.deletion_timestamp = Some(Time(at(now)))
            }
            (None, None) => unreachable!(),
        }
        true
    }
}

proptest! {
    #[test]
    fn gitops_sync_converges_in_any_order(
        min_owners in 1..=2i32,
        max_members in 3..=7usize,
        a in desired(7),
        b in desired(7),
        order in prop::collection::vec(any::<Index>(), 16),
    ) {
        // Make both states valid for the policy.
        let fix = |d: Desired| {
            let mut m: Vec<(Subject, OrgRole)> = d.0.into_iter().collect();
            m.truncate(max_members);
            let owners = m.iter().filter(|(_, r)| *r == OrgRole::Owner).count();
            for (_, r) in m.iter_mut().take(min_owners as usize) {
                if owners < min_owners as usize { *r = OrgRole::Owner; }
            }
            Desired(m.into_iter().collect())
        };
        let (a, b) = (fix(a), fix(b));
        prop_assume!(a.0.len() >= min_owners as usize && b.0.len() >= min_owners as usize);
        let mut cluster = Cluster::new(org(min_owners, None, Some(max_members as i32), true));

        // Reach A from nothing with a platform principal, oldest first.
        for (s, r) in &a.0 {
            cluster.apply_change(s, Some(OrgRole::Owner).filter(|_| *r == OrgRole::Owner).or(Some(*r)));
        }
        for _ in 0..3 { cluster.reconcile(); }

        // The changes from A to B, in a random order, each retried until the webhook admits it.
        let mut changes: Vec<(Subject, Option<OrgRole>)> = a.0.keys().chain(b.0.keys())
            .collect::<HashSet<_>>().into_iter()
            .filter(|s| a.0.get(*s) != b.0.get(*s))
            .map(|s| (s.clone(), b.0.get(s).copied()))
            .collect();
        changes.sort();
        for (i, ix) in order.iter().enumerate() {
            let n = changes.len(); if n > 1 { changes.swap(i % n, ix.index(n)); }
        }
        let mut rounds = 0;
        while !changes.is_empty() {
            rounds += 1;
            prop_assert!(rounds < 50, "sync is stuck with {:?} left", changes);
            let mut left = Vec::new();
            for (s, r) in changes {
                if !cluster.apply_change(&s, r) { left.push((s, r)); }
                let eff = cluster.reconcile();
                check_invariants(&cluster.world, &eff)?;
            }
            changes = left;
        }
        for _ in 0..3 { cluster.reconcile(); }
        let eff = cluster.reconcile();
        check_invariants(&cluster.world, &eff)?;

        // B is what is desired and what is effective.
        let got: BTreeMap<Subject, OrgRole> = cluster.world.memberships.iter()
            .map(|m| (m.spec.subject().unwrap(), m.spec.role)).collect();
        prop_assert_eq!(&got, &b.0);
        for m in &cluster.world.memberships {
            let s = &eff.memberships[m.metadata.name.as_ref().unwrap()].status;
            prop_assert_eq!(s.phase, Some(MembershipPhase::Active), "{:?} not Active: {:?}", m.spec.subject(), s.conditions);
            prop_assert_eq!(s.effective_role, Some(m.spec.role));
        }
    }
}

#[test]
fn a_transfer_applied_demotion_first_is_refused_then_converges() {
    // The concrete story behind the property: alice hands the org to bob.
    let mut cluster = Cluster::new(org(1, Some(1), None, true));
    let alice = Subject::User("alice@acme.example".into());
    let bob = Subject::User("bob@acme.example".into());
    assert!(cluster.apply_change(&alice, Some(OrgRole::Owner)));
    assert!(cluster.apply_change(&bob, Some(OrgRole::Member)));
    cluster.reconcile();
    assert!(
        !cluster.apply_change(&alice, Some(OrgRole::Admin)),
        "demoting the last owner is refused"
    );
    assert!(cluster.apply_change(&bob, Some(OrgRole::Owner)));
    cluster.reconcile();
    assert!(cluster.apply_change(&alice, Some(OrgRole::Admin)));
    let eff = cluster.reconcile();
    let status = eff.organization.unwrap();
    assert_eq!(status.owners, vec!["bob@acme.example".to_string()]);
    assert_eq!(status.admins, vec!["alice@acme.example".to_string()]);
    let _ = SignedDuration::ZERO;
}

/// An open admin invite (from before admin invites had to name their invitee) is never redeemed:
/// the controller denies it even if the webhook was bypassed, and the Invite says why.
#[test]
fn an_open_admin_invite_is_never_redeemed() {
    let mut open_admin = invite("staff", None, 5, 60, false, 1);
    open_admin.spec.role = OrgRole::Admin;
    let mut joiner = membership(
        "bea",
        &Subject::User("bea@acme.example".into()),
        OrgRole::Admin,
        2,
    );
    joiner.spec.invite = Some(proven("staff", "ABCD-EFGH-JKLM-NPQR", "bea@acme.example"));
    let w = World {
        organization: Some(org(1, None, None, true)),
        memberships: vec![
            membership(
                "alice",
                &Subject::User("alice@acme.example".into()),
                OrgRole::Owner,
                0,
            ),
            joiner,
        ],
        invites: vec![open_admin],
        codes: BTreeMap::from([("staff".to_string(), "ABCD-EFGH-JKLM-NPQR".to_string())]),
        now: at(10),
    };
    let eff = w.compute(w.now);
    let bea = &eff.memberships["bea"].status;
    assert_eq!(bea.phase, Some(MembershipPhase::Denied));
    let ready = bea.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "OpenAdminInvite", "{ready:?}");
    let invite = eff.invites["staff"]
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(invite.reason, "OpenAdminInvite", "{invite:?}");
}

fn redeeming(name: &str, user: &str, invite: &str, created: i64) -> Membership {
    let mut m = membership(name, &Subject::User(user.into()), OrgRole::Member, created);
    m.spec.invite = Some(proven(invite, "ABCD-EFGH-JKLM-NPQR", user));
    m
}

/// A redemption of `invite` (in namespace acme) by `user` with `code`, as `kubectl roster join`
/// writes it.
fn proven(invite: &str, code: &str, user: &str) -> roster::api::InviteRef {
    roster::api::InviteRef {
        name: invite.into(),
        proof: Some(roster::rules::invite_code::proof(
            code, "acme", invite, user,
        )),
        tenant: None,
    }
}

fn lab(memberships: Vec<Membership>, invites: Vec<Invite>, now: i64) -> World {
    let mut all = vec![membership(
        "owner",
        &Subject::User("owner@acme.example".into()),
        OrgRole::Owner,
        0,
    )];
    all.extend(memberships);
    World {
        organization: Some(org(1, None, None, true)),
        memberships: all,
        codes: invites
            .iter()
            .map(|i| {
                (
                    i.metadata.name.clone().unwrap(),
                    "ABCD-EFGH-JKLM-NPQR".to_string(),
                )
            })
            .collect(),
        invites,
        now: at(now),
    }
}

fn uses(eff: &Effective, invite: &str) -> (i32, Option<InvitePhase>) {
    let s = &eff.invites[invite];
    (s.uses, s.phase)
}

/// A use is never given back: not while its Membership is Terminating (held by the owner
/// protection, say), and not when a Membership of the same name is created again.
#[test]
fn an_invite_use_outlives_its_membership_and_its_name() {
    let mut w = lab(
        vec![redeeming("bea", "bea@acme.example", "once", 2)],
        vec![invite("once", None, 1, 600, false, 1)],
        3,
    );
    let eff = w.compute(w.now);
    w.apply(&eff);
    assert_eq!(uses(&eff, "once"), (1, Some(InvitePhase::Accepted)));

    // Bea's Membership is being deleted but still there.
    w.memberships[1].metadata.deletion_timestamp = Some(Time(at(4)));
    let eff = w.compute(at(4));
    w.apply(&eff);
    assert_eq!(uses(&eff, "once"), (1, Some(InvitePhase::Accepted)));

    // It is gone, and someone creates a Membership of the same name with the same code.
    w.memberships.remove(1);
    w.memberships
        .push(redeeming("bea", "eve@acme.example", "once", 5));
    let eff = w.compute(at(5));
    assert_eq!(uses(&eff, "once"), (1, Some(InvitePhase::Accepted)));
    assert_eq!(
        eff.memberships["bea"].status.phase,
        Some(MembershipPhase::Denied),
        "the code was used up by the first bea"
    );
}

/// Expired is final: a longer ttl after the fact never revives a code.
#[test]
fn an_expired_invite_stays_expired_when_its_ttl_grows() {
    let mut w = lab(vec![], vec![invite("short", None, 5, 1, false, 0)], 120);
    let eff = w.compute(w.now);
    w.apply(&eff);
    assert_eq!(uses(&eff, "short").1, Some(InvitePhase::Expired));
    w.invites[0].spec.ttl = Some("720h".into());
    let eff = w.compute(at(180));
    assert_eq!(uses(&eff, "short").1, Some(InvitePhase::Expired));
    w.memberships
        .push(redeeming("late", "late@acme.example", "short", 170));
    let eff = w.compute(at(180));
    assert_eq!(
        eff.memberships["late"].status.phase,
        Some(MembershipPhase::Denied)
    );
}

// ---------------------------------------------------------------------------------------------
// Identity providers: an invite or a selfJoin policy bound to a provider (and tenant) lets in only
// users that provider signed in, and the controller, which never sees how anyone signed in,
// agrees with the webhook.
// ---------------------------------------------------------------------------------------------

use roster::api::{IdentityProviderRef, InviteRef, SelfJoin, SelfJoinRole};
use roster::rules::IdentityProviders;
use roster::rules::identity_providers::Extra;
use roster::rules::redemption::{self, Refusal};

const TID: &str = "entra.example/tid";
const CODE: &str = "ABCD-EFGH-JKLM-NPQR";

/// Google (`google:`), Entra (`entra:`, tenants in [`TID`]) and GitHub (`gh:`, no tenants).
fn providers() -> IdentityProviders {
    IdentityProviders::new([
        "name=google,usernamePrefix=google:".parse().unwrap(),
        format!("name=entra,usernamePrefix=entra:,tenantKey={TID}")
            .parse()
            .unwrap(),
        "name=gh,usernamePrefix=gh:".parse().unwrap(),
    ])
    .unwrap()
}

/// Usernames as an attacker would try them: every configured prefix, prefixes in other cases,
/// nested, unknown or missing, before an address that is or resembles the invited one.
fn username_strategy() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        3 => prop::sample::select(vec!["google:", "entra:", "gh:"]),
        2 => prop::sample::select(vec![
            "", "Google:", "GOOGLE:", "okta:", "google", "entra:google:", "google:entra:",
            "gh:google:", " google:", "system:",
        ]),
    ];
    let address = prop_oneof![
        3 => Just("ada@acme.example"),
        2 => prop::sample::select(vec![
            "Ada@acme.example",
            "ada@ACME.example",
            "bob@acme.example",
            "ada@acme.example.evil.example",
            "x@evil.example@acme.example",
            "",
        ]),
    ];
    (prefix, address).prop_map(|(p, a)| format!("{p}{a}"))
}

fn tenant_strategy() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(Some("t-1".to_string())),
        2 => Just(None),
        1 => prop::sample::select(vec!["t-2", "T-1"]).prop_map(|t| Some(t.to_string())),
    ]
}

/// `userInfo.extra` as an authenticator (or an impersonating client) might send it.
fn extra_strategy() -> impl Strategy<Value = Extra> {
    let key = prop::sample::select(vec![TID, "okta.example/tid", "Entra.example/TID"]);
    let values = prop::collection::vec(prop::sample::select(vec!["t-1", "t-2", "T-1", ""]), 0..3);
    let any = prop::collection::btree_map(key, values, 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(k, vs)| (k.to_string(), vs.into_iter().map(String::from).collect()))
            .collect()
    });
    prop_oneof![
        1 => Just(Extra::from([(TID.to_string(), vec!["t-1".to_string()])])),
        1 => any,
    ]
}

/// A binding to a configured provider, an unknown one, or none ("any provider").
fn binding_strategy() -> impl Strategy<Value = Option<IdentityProviderRef>> {
    let sensible = prop::sample::select(vec![
        ("google", None),
        ("gh", None),
        ("entra", None),
        ("entra", Some("t-1".to_string())),
    ]);
    let name = prop::sample::select(vec!["google", "entra", "gh", "okta"]);
    let any = (name, tenant_strategy());
    let binding = prop_oneof![3 => sensible, 1 => any];
    prop::option::weighted(0.8, binding).prop_map(|b| {
        b.map(|(name, tenant)| IdentityProviderRef {
            name: name.into(),
            tenant,
        })
    })
}

/// A pending invite `inv` in namespace acme, for `email` (or open), bound as given.
fn bound_invite(email: Option<&str>, binding: Option<IdentityProviderRef>) -> Invite {
    let mut i = invite("inv", email, 5, 600, false, 0);
    i.spec.identity_provider = binding;
    i
}

/// The Membership spec `user` writes to redeem `inv`, declaring `tenant`.
fn redemption_spec(user: &str, tenant: Option<String>) -> MembershipSpec {
    MembershipSpec {
        user: Some(user.into()),
        group: None,
        role: OrgRole::Member,
        display_name: None,
        email: None,
        invite: Some(InviteRef {
            name: "inv".into(),
            proof: Some(roster::rules::invite_code::proof(CODE, "acme", "inv", user)),
            tenant,
        }),
    }
}

fn claim<'a>(
    invite: &'a Invite,
    providers: &'a IdentityProviders,
    signed_in: Option<&'a Extra>,
) -> redemption::Claim<'a> {
    redemption::Claim {
        invite,
        code: Some(CODE),
        expired: false,
        exhausted: false,
        providers,
        signed_in,
    }
}

proptest! {
    /// A username belongs to at most one provider: the one whose prefix it starts with.
    #[test]
    fn a_username_belongs_to_one_provider_at_most(user in username_strategy()) {
        let p = providers();
        let signed: Vec<&str> = p.iter().filter(|x| x.signed_in(&user).is_some()).map(|x| x.name.as_str()).collect();
        prop_assert!(signed.len() <= 1, "{user}: {signed:?}");
        match p.signed_in_with(&user) {
            Some((x, rest)) => {
                prop_assert_eq!(signed, vec![x.name.as_str()]);
                prop_assert_eq!(format!("{}{rest}", x.username_prefix), user.clone());
                prop_assert!(!rest.is_empty());
            }
            None => prop_assert!(signed.is_empty()),
        }
    }

    /// Whatever the username, tenant declared and `extra`: a redemption the webhook admits is by a
    /// user of the invite's provider, whose address after the prefix is the invite's, who declared
    /// the invite's tenant and whose sign-in put them in it; an invite bound to nothing admits the
    /// address itself or under a configured prefix.
    #[test]
    fn a_bound_invite_admits_only_its_providers_users(
        binding in binding_strategy(),
        email in prop::option::of(prop::sample::select(vec!["ada@acme.example", "bob@acme.example"])),
        user in username_strategy(),
        declared in tenant_strategy(),
        extra in extra_strategy(),
    ) {
        let p = providers();
        let invite = bound_invite(email, binding.clone());
        let spec = redemption_spec(&user, declared.clone());
        let policy = roster::api::InvitePolicy::default();
        let refused = redemption::refusal(&spec, &claim(&invite, &p, Some(&extra)), &policy);
        if refused.is_some() {
            return Ok(());
        }
        match &binding {
            Some(b) => {
                let provider = p.get(&b.name);
                prop_assert!(provider.is_some(), "admitted through unconfigured {}", b.name);
                let provider = provider.unwrap();
                let rest = user.strip_prefix(provider.username_prefix.as_str());
                prop_assert!(rest.is_some_and(|r| !r.is_empty()), "{user} is not {}'s", b.name);
                if let Some(email) = email {
                    prop_assert_eq!(rest, Some(email));
                }
                prop_assert_eq!(&declared, &b.tenant);
                if let Some(t) = &b.tenant {
                    prop_assert!(extra.get(TID).is_some_and(|vs| vs.contains(t)), "{user} not in {t}: {extra:?}");
                    prop_assert_eq!(b.name.as_str(), "entra");
                }
            }
            None => {
                prop_assert_eq!(declared, None);
                if let Some(email) = email {
                    let prefixes = ["", "google:", "entra:", "gh:"];
                    prop_assert!(prefixes.iter().any(|pre| user == format!("{pre}{email}")), "{user}");
                }
            }
        }
    }

    /// The controller, which never sees `extra`, decides like the webhook except for the one
    /// thing only the webhook can check: whether the sign-in put the user in the declared tenant.
    /// So whatever the webhook admits, the controller admits; and a Membership written behind
    /// the webhook's back is held to everything else.
    #[test]
    fn the_controller_agrees_with_the_webhook(
        binding in binding_strategy(),
        email in prop::option::of(prop::sample::select(vec!["ada@acme.example"])),
        user in username_strategy(),
        declared in tenant_strategy(),
        extra in extra_strategy(),
    ) {
        let p = providers();
        let invite = bound_invite(email, binding);
        let spec = redemption_spec(&user, declared);
        let policy = roster::api::InvitePolicy::default();
        let webhook = redemption::refusal(&spec, &claim(&invite, &p, Some(&extra)), &policy);
        let controller = redemption::refusal(&spec, &claim(&invite, &p, None), &policy);
        match webhook {
            Some(Refusal::NotInTenant { .. }) => prop_assert_eq!(controller, None),
            other => prop_assert_eq!(controller, other),
        }
    }

    /// Through the effective state: every Membership that roster makes Active with a bound invite is
    /// one of the provider's users who declared the invite's tenant; every one refused for its
    /// provider or tenant is Denied with a condition that names the provider.
    #[test]
    fn the_effective_state_holds_bound_invites(
        binding in binding_strategy(),
        email in prop::option::of(prop::sample::select(vec!["ada@acme.example"])),
        joiners in prop::collection::vec((username_strategy(), tenant_strategy()), 1..6),
    ) {
        let p = providers();
        let invite = bound_invite(email, binding.clone());
        let mut memberships = vec![membership(
            "owner",
            &Subject::User("owner@acme.example".into()),
            OrgRole::Owner,
            0,
        )];
        for (i, (user, tenant)) in joiners.iter().enumerate() {
            if user.is_empty() || memberships.iter().any(|m| m.spec.user.as_deref() == Some(user)) {
                continue;
            }
            let mut m = membership(&format!("j{i}"), &Subject::User(user.clone()), OrgRole::Member, 1 + i as i64);
            m.spec = redemption_spec(user, tenant.clone());
            memberships.push(m);
        }
        let refs: Vec<&Membership> = memberships.iter().collect();
        let codes = BTreeMap::from([("inv".to_string(), CODE.to_string())]);
        let invites = [invite];
        let eff = rules::compute(
            OrgObjects {
                organization: Some(&org(1, None, None, true)),
                memberships: &refs,
                invites: &invites,
                teams: &[],
                invite_codes: &codes,
                identity_providers: &p,
            },
            at(10),
        );
        for m in memberships.iter().skip(1) {
            let user = m.spec.user.clone().unwrap();
            let status = &eff.memberships[m.metadata.name.as_deref().unwrap()].status;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
            if status.phase == Some(MembershipPhase::Active)
                && let Some(b) = &binding
            {
                let provider = p.get(&b.name).expect("admitted through a configured provider");
                prop_assert!(provider.signed_in(&user).is_some(), "{user} Active through {}", b.name);
                prop_assert_eq!(&m.spec.invite.as_ref().unwrap().tenant, &b.tenant);
            }
            if ["InviteIdentityProviderMismatch", "InviteTenantMismatch", "IdentityProviderNotConfigured"]
                .contains(&ready.reason.as_str())
            {
                prop_assert_eq!(status.phase, Some(MembershipPhase::Denied));
                let name = &binding.as_ref().map_or("no identity provider".to_string(), |b| format!("identity provider {}", b.name));
                prop_assert!(ready.message.contains(name.as_str()), "{}", ready.message);
            }
        }
    }

    /// A self-join the webhook admits under a policy bound to a provider (and tenant) is by one of
    /// that provider's users whose address is in the domains and whose sign-in is in the tenant.
    #[test]
    fn a_bound_self_join_admits_only_its_providers_users(
        binding in binding_strategy(),
        user in username_strategy(),
        extra in extra_strategy(),
    ) {
        let p = providers();
        let mut organization = org(1, None, None, true);
        organization.spec.policy.self_join = Some(SelfJoin {
            email_domains: vec!["acme.example".into()],
            role: SelfJoinRole::Member,
            identity_provider: binding.clone(),
        });
        let owner = membership("owner", &Subject::User("owner@acme.example".into()), OrgRole::Owner, 0);
        let mut owner = owner;
        owner.status = Some(MembershipStatus {
            phase: Some(MembershipPhase::Active),
            effective_role: Some(OrgRole::Owner),
            ..Default::default()
        });
        let index = OrgIndex::new(Some(&organization), &[owner], &[]);
        let config = Config { identity_providers: p.clone(), ..Config::default() };
        let actor = Actor::new(user.clone(), vec!["system:authenticated".into()], &config).with_extra(extra.clone());
        let spec = MembershipSpec {
            user: Some(user.clone()),
            group: None,
            role: OrgRole::Member,
            display_name: None,
            email: None,
            invite: None,
        };
        let op = Operation::CreateMembership { spec: &spec, redemption: None };
        let ctx = Context { now: at(10), removals_last_hour: 0, namespace_deleting: false };
        let decision = rules::authorize(&index, &config, &actor, &op, &ctx);
        if !decision.allowed() {
            return Ok(());
        }
        if let Some(b) = &binding {
            let provider = p.get(&b.name);
            prop_assert!(provider.is_some(), "joined through unconfigured {}", b.name);
            let rest = provider.unwrap().signed_in(&user);
            prop_assert!(rest.is_some_and(|r| roster::rules::identity::in_domains(r, &["acme.example".into()])), "{user}");
            if let Some(t) = &b.tenant {
                prop_assert!(extra.get(TID).is_some_and(|vs| vs.contains(t)), "{user} not in {t}: {extra:?}");
            }
        } else {
            prop_assert!(roster::rules::identity::in_domains(&user, &["acme.example".into()]));
        }
    }
}
