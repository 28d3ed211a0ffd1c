//! Deleting an Organization (README, "Deleting an organization"): the kinds people apply carry no
//! ownerReferences, so roster, not the garbage collector, takes an org's Memberships, Invites and
//! Teams with it. Every access derived from the org goes at once, nothing is left stuck, and an
//! Organization created later never hands the old org's people their access back, also when the
//! old one was deleted while roster was down. Everything runs through the real API server; people
//! act with only the RBAC roster grants.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use roster::api::{Invite, Membership, MembershipPhase, Organization, Team};
use support::{Operator, eventually};

const WAIT: Duration = Duration::from_secs(60);

fn org_yaml(work: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  displayName: Doomed Org\n  policy:\n    minOwners: 1\n  access:\n    namespaces: [{work}]\n"
    )
}

const INVITE: &str = "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: inv\nspec:\n  role: member\n";

const TEAM: &str = "apiVersion: roster.dev/v1alpha1\nkind: Team\nmetadata:\n  name: ops\nspec:\n  members:\n  - user: alice@example.com\n    role: owner\n  - user: bob@example.com\n    role: member\n";

async fn phase(client: &Client, ns: &str, name: &str) -> Option<MembershipPhase> {
    Api::<Membership>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()?
        .status?
        .phase
}

async fn wait_active(client: &Client, ns: &str, name: &str) {
    eventually(&format!("Membership {name} to be Active"), WAIT, || async {
        (phase(client, ns, name).await == Some(MembershipPhase::Active)).then_some(())
    })
    .await;
}

/// The roster objects, code Secrets and RoleBindings of the org in `ns` (bindings in `work` too).
async fn what_is_left(client: &Client, ns: &str, work: &str) -> Vec<String> {
    let all = ListParams::default();
    let codes = ListParams::default().labels(roster::controller::INVITE_CODE_LABEL);
    let of_org = ListParams::default().labels(&format!("roster.dev/organization={ns}"));
    let mut left = names::<Membership>(client, ns, &all).await;
    left.extend(names::<Invite>(client, ns, &all).await);
    left.extend(names::<Team>(client, ns, &all).await);
    left.extend(names::<Secret>(client, ns, &codes).await);
    left.extend(names::<RoleBinding>(client, ns, &of_org).await);
    left.extend(names::<RoleBinding>(client, work, &of_org).await);
    left
}

/// `KIND NAMESPACE/NAME` of each object of a kind that `lp` selects in `ns`.
async fn names<K>(client: &Client, ns: &str, lp: &ListParams) -> Vec<String>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let listed = Api::<K>::namespaced(client.clone(), ns)
        .list(lp)
        .await
        .unwrap();
    let kind = K::kind(&());
    listed
        .iter()
        .map(|o| format!("{kind} {ns}/{}", o.name_any()))
        .collect()
}

async fn org_uid(client: &Client, ns: &str) -> String {
    Api::<Organization>::namespaced(client.clone(), ns)
        .get("org")
        .await
        .unwrap()
        .uid()
        .unwrap()
}

#[tokio::test]
async fn deleting_an_organization_revokes_its_access_at_once_and_deletes_what_it_held() {
    let admin = support::admin_client().await;
    support::install_crds(&admin).await;
    let ns = support::namespace(&admin, "org-deletion").await;
    let work = support::namespace(&admin, "org-deletion-work").await;
    support::install_roster_rbac(&admin, &ns).await;
    let _operator = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&admin, &ns).await;
    support::apply(&admin, &ns, &org_yaml(&work)).await;
    support::apply_memberships(
        &admin,
        &ns,
        &[
            ("alice", "alice@example.com", "owner"),
            ("bob", "bob@example.com", "member"),
        ],
    )
    .await;
    support::apply(&admin, &ns, INVITE).await;
    support::apply(&admin, &ns, TEAM).await;
    support::invite_code(&admin, &ns, "inv").await;
    wait_active(&admin, &ns, "bob").await;
    eventually("bob's access in the workload namespace", WAIT, || async {
        support::can("bob@example.com", "create", "deployments", &work).then_some(())
    })
    .await;
    // No applied kind is owned by the Organization (Argo CD would never prune it).
    let uid = org_uid(&admin, &ns).await;
    for m in Api::<Membership>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        assert!(m.owner_references().is_empty(), "{:?}", m.metadata);
        assert_eq!(
            m.status.unwrap().organization_uid.as_deref(),
            Some(uid.as_str())
        );
    }

    // The owner deletes the Organization, with only the RBAC roster gave her.
    let alice = support::client_as("alice@example.com", &[]).await;
    Api::<Organization>::namespaced(alice, &ns)
        .delete("org", &DeleteParams::default())
        .await
        .expect("the owner may delete her Organization");
    let started = std::time::Instant::now();
    eventually("bob's and alice's access to be revoked", WAIT, || async {
        let gone = !support::can("bob@example.com", "create", "deployments", &work)
            && !support::can("bob@example.com", "list", "memberships", &ns)
            && !support::can("alice@example.com", "delete", "memberships", &ns)
            && !support::can("alice@example.com", "create", "deployments", &work);
        gone.then_some(())
    })
    .await;
    eprintln!("access revoked {:?} after the delete", started.elapsed());
    // Nothing is stranded and nothing is stuck: the owner's protection yields too.
    eventually("everything the org held to be gone", WAIT, || async {
        what_is_left(&admin, &ns, &work)
            .await
            .is_empty()
            .then_some(())
    })
    .await;

    // A new Organization in the same namespace starts from nobody: the old people have nothing.
    support::apply(&admin, &ns, &org_yaml(&work)).await;
    support::apply_memberships(&admin, &ns, &[("carol", "carol@example.com", "owner")]).await;
    wait_active(&admin, &ns, "carol").await;
    assert!(support::can(
        "carol@example.com",
        "create",
        "deployments",
        &work
    ));
    for user in ["alice@example.com", "bob@example.com"] {
        assert!(
            !support::can(user, "list", "memberships", &ns),
            "{user} got access back"
        );
        assert!(
            !support::can(user, "create", "deployments", &work),
            "{user} got access back"
        );
    }
}

#[tokio::test]
async fn an_organization_deleted_while_roster_is_down_never_hands_its_people_to_the_next() {
    let admin = support::admin_client().await;
    support::install_crds(&admin).await;
    support::install_cluster_roles(&admin).await;
    let ns = support::namespace(&admin, "org-replaced").await;
    let work = support::namespace(&admin, "org-replaced-work").await;
    let mut operator = Operator::start(&[&ns], &[]);
    support::apply(&admin, &ns, &org_yaml(&work)).await;
    support::apply_memberships(
        &admin,
        &ns,
        &[
            ("alice", "alice@example.com", "owner"),
            ("bob", "bob@example.com", "member"),
        ],
    )
    .await;
    support::apply(&admin, &ns, TEAM).await;
    wait_active(&admin, &ns, "bob").await;
    let old_uid = org_uid(&admin, &ns).await;
    eventually("bob's access", WAIT, || async {
        support::can("bob@example.com", "create", "deployments", &work).then_some(())
    })
    .await;

    // roster is down while the Organization is deleted and another one takes its place, with a
    // Membership created in between (which belongs to no Organization yet, and so to the new one).
    operator.kill();
    Api::<Organization>::namespaced(admin.clone(), &ns)
        .delete("org", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the old Organization to be gone", WAIT, || async {
        let orgs = Api::<Organization>::namespaced(admin.clone(), &ns);
        orgs.get_opt("org").await.unwrap().is_none().then_some(())
    })
    .await;
    support::apply_memberships(&admin, &ns, &[("carol", "carol@example.com", "owner")]).await;
    support::apply(&admin, &ns, &org_yaml(&work)).await;
    assert_ne!(org_uid(&admin, &ns).await, old_uid);

    let _operator = Operator::start(&[&ns], &[]);
    wait_active(&admin, &ns, "carol").await;
    eventually(
        "the old org's objects and bindings to be gone",
        WAIT,
        || async {
            let left = what_is_left(&admin, &ns, &work).await;
            let old: Vec<&String> = left
                .iter()
                .filter(|o| ["alice", "bob", "/ops"].iter().any(|n| o.contains(n)))
                .collect();
            old.is_empty().then_some(())
        },
    )
    .await;
    for user in ["alice@example.com", "bob@example.com"] {
        assert!(
            !support::can(user, "list", "memberships", &ns),
            "{user} got access back"
        );
        assert!(
            !support::can(user, "create", "deployments", &work),
            "{user} got access back"
        );
    }
    assert!(support::can(
        "carol@example.com",
        "create",
        "deployments",
        &work
    ));
}

#[tokio::test]
async fn roster_removes_the_owner_references_it_wrote_before_and_keeps_others() {
    let admin = support::admin_client().await;
    support::install_crds(&admin).await;
    let ns = support::namespace(&admin, "org-upgrade").await;
    let _operator = Operator::start(&[&ns], &[]);
    support::apply(
        &admin,
        &ns,
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  policy:\n    minOwners: 1\n",
    )
    .await;
    let uid = org_uid(&admin, &ns).await;
    let keep = Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({ "metadata": { "name": "keep" } })).unwrap(),
        )
        .await
        .unwrap();
    // Memberships as an earlier roster left them: owned by their Organization.
    let owned = |name: &str, user: &str, role: &str, extra: Option<&ConfigMap>| {
        let mut owners = vec![serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Organization", "name": "org", "uid": uid,
        })];
        if let Some(cm) = extra {
            owners.push(serde_json::to_value(cm.controller_owner_ref(&()).unwrap()).unwrap());
        }
        serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
            "metadata": { "name": name, "ownerReferences": owners },
            "spec": { "user": user, "role": role }
        })
    };
    let memberships: Api<Membership> = Api::namespaced(admin.clone(), &ns);
    for m in [
        owned("alice", "alice@example.com", "owner", None),
        owned("bob", "bob@example.com", "member", Some(&keep)),
    ] {
        memberships
            .create(&PostParams::default(), &serde_json::from_value(m).unwrap())
            .await
            .unwrap();
    }
    for (name, kept) in [("alice", 0), ("bob", 1)] {
        let m = eventually(
            &format!("{name}'s ownerReference to the Organization to go"),
            WAIT,
            || async {
                let m = memberships.get(name).await.unwrap();
                let to_org = m
                    .owner_references()
                    .iter()
                    .any(|r| r.kind == "Organization");
                (!to_org && m.status.as_ref()?.phase == Some(MembershipPhase::Active)).then_some(m)
            },
        )
        .await;
        assert_eq!(m.owner_references().len(), kept, "{:?}", m.metadata);
        assert!(m.owner_references().iter().all(|r| r.kind == "ConfigMap"));
        assert_eq!(m.status.unwrap().organization_uid, Some(uid.clone()));
    }
}
