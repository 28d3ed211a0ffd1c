//! The invariants of roster's effective state, watched while something else (a GitOps sync, a test)
//! changes the objects: shared by tests/gitops.rs (our own replay of a Git history) and tests/flux.rs
//! (the same with a real Flux).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::Api;
use kube::{Client, ResourceExt};
use roster::api::{Membership, MembershipPhase, Organization};

/// The invariants of the effective state over the Memberships of one namespace, as one consistent
/// state (the state after one watch event).
pub fn membership_violations(
    memberships: &BTreeMap<String, Membership>,
    limit: Option<i32>,
) -> Vec<String> {
    let mut out = Vec::new();
    let active: Vec<&Membership> = memberships
        .values()
        .filter(|m| m.status.as_ref().and_then(|s| s.phase) == Some(MembershipPhase::Active))
        .collect();
    let mut seen = BTreeMap::new();
    for m in &active {
        if let Some(other) = seen.insert(m.spec.subject(), m.name_any()) {
            out.push(format!(
                "{:?} is Active twice: Memberships {other} and {}",
                m.spec.subject(),
                m.name_any()
            ));
        }
    }
    if let Some(limit) = limit
        && active.len() > limit as usize
    {
        out.push(format!(
            "{} Active Memberships exceed maxMembers {limit}",
            active.len()
        ));
    }
    let owner = |m: &&Membership| {
        m.status.as_ref().and_then(|s| s.effective_role) == Some(roster::api::OrgRole::Owner)
    };
    if !active.is_empty() && !active.iter().any(owner) {
        out.push(format!(
            "{} Active Memberships and no Active owner among them: {:?}",
            active.len(),
            active
                .iter()
                .map(|m| (
                    m.name_any(),
                    m.status.as_ref().and_then(|s| s.effective_role)
                ))
                .collect::<Vec<_>>()
        ));
    }
    out
}

pub fn organization_violations(org: &Organization) -> Vec<String> {
    let s = org.status.clone().unwrap_or_default();
    if s.members > 0 && s.owners.is_empty() {
        vec![format!(
            "Organization {}: {} effective members and no owner",
            org.name_any(),
            s.members
        )]
    } else {
        vec![]
    }
}

enum Change {
    Membership(Box<kube::runtime::watcher::Event<Membership>>),
    Organization(Box<kube::runtime::watcher::Event<Organization>>),
}

/// Watches the namespace until stopped and checks the invariants after every single change, so that
/// no intermediate state escapes (a watch delivers every change of a kind in order). Returns every
/// violation seen and how many states were checked.
pub fn watch_invariants(
    client: Client,
    ns: String,
    max_members: Option<i32>,
    stop: Arc<AtomicBool>,
    commit: Arc<Mutex<&'static str>>,
) -> tokio::task::JoinHandle<(Vec<String>, usize)> {
    use futures::StreamExt;
    use kube::runtime::watcher::{self, Event};
    tokio::spawn(async move {
        let memberships = watcher::watcher(
            Api::<Membership>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
        )
        .map(|e| e.map(|e| Change::Membership(Box::new(e))))
        .boxed();
        let orgs = watcher::watcher(
            Api::<Organization>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
        )
        .map(|e| e.map(|e| Change::Organization(Box::new(e))))
        .boxed();
        let mut events = futures::stream::select(memberships, orgs);
        let mut state: BTreeMap<String, Membership> = BTreeMap::new();
        let mut init: BTreeMap<String, Membership> = BTreeMap::new();
        let mut seen = Vec::new();
        let mut checked = 0;
        let mut record = |violations: Vec<String>| {
            let at = *commit.lock().unwrap();
            seen.extend(
                violations
                    .into_iter()
                    .map(|v| format!("during {at:?}: {v}")),
            );
        };
        while !stop.load(Ordering::Relaxed) {
            let next = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
            let Ok(Some(Ok(event))) = next else { continue };
            match event {
                Change::Membership(e) => {
                    match *e {
                        Event::Init => init.clear(),
                        Event::InitApply(m) => {
                            init.insert(m.name_any(), m);
                            continue;
                        }
                        Event::InitDone => state = std::mem::take(&mut init),
                        Event::Apply(m) => {
                            state.insert(m.name_any(), m);
                        }
                        Event::Delete(m) => {
                            state.remove(&m.name_any());
                        }
                    }
                    checked += 1;
                    record(membership_violations(&state, max_members));
                }
                Change::Organization(e) => {
                    if let Event::Apply(o) | Event::InitApply(o) = *e {
                        checked += 1;
                        record(organization_violations(&o));
                    }
                }
            }
        }
        (seen, checked)
    })
}
