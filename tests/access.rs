//! Access on the real control plane: effective org and team roles become RoleBindings, checked with
//! `kubectl auth can-i --as`, the way an org member would find out.

mod support;

use std::time::Duration;

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use roster::api::{Membership, MembershipPhase, Organization};
use support::eventually;

const WAIT: Duration = Duration::from_secs(30);

async fn eventually_can(user: &str, verb: &str, resource: &str, ns: &str, expected: bool) {
    eventually(
        &format!("{user} can-i {verb} {resource} -n {ns} == {expected}"),
        WAIT,
        || async { (support::can(user, verb, resource, ns) == expected).then_some(()) },
    )
    .await
}

fn org(workload: &[&str], extra: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  access:\n    namespaces: [{}]\n{extra}",
        workload.join(", ")
    )
}

async fn wait_active(client: &Client, ns: &str, name: &str) {
    let api: Api<Membership> = Api::namespaced(client.clone(), ns);
    eventually(&format!("{name} Active"), WAIT, || async {
        api.get(name)
            .await
            .ok()?
            .status
            .filter(|s| s.phase == Some(MembershipPhase::Active))
    })
    .await;
}

#[tokio::test]
async fn org_roles_become_rbac_in_the_org_and_its_workload_namespaces() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    support::install_cluster_roles(&client).await;
    let ns = support::namespace(&client, "access-org").await;
    let other = support::namespace(&client, "access-other").await;
    let work = support::namespace(&client, "access-work").await;
    let _operator = support::operator_with_webhook(&[&ns, &other]);
    support::wait_for_webhook(&client, &ns).await;

    support::apply(&client, &ns, &org(&[&work], "  dataRegion: EU\n")).await;
    support::apply(&client, &other, &org(&[], "")).await;
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("owner", "owner@example.com", "owner"),
            ("admin", "admin@example.com", "admin"),
            ("member", "member@example.com", "member"),
            ("viewer", "viewer@example.com", "viewer"),
        ],
    )
    .await;
    support::apply(
        &client,
        &other,
        &support::membership_yaml("owner", "someone@example.com", "owner"),
    )
    .await;
    wait_active(&client, &ns, "viewer").await;

    // The admin manages the org with plain kubectl; RBAC lets them, the webhook agrees.
    eventually_can(
        "admin@example.com",
        "create",
        "memberships.roster.dev",
        &ns,
        true,
    )
    .await;
    let as_admin = |args: &[&str]| {
        let mut a = vec!["--as", "admin@example.com", "-n", &ns];
        a.extend_from_slice(args);
        support::kubectl(&a)
    };
    let scratch = tempfile::tempdir().unwrap();
    let manifest = scratch.path().join("admin-objects.yaml");
    std::fs::write(
        &manifest,
        format!(
            "{}---\napiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: hello\nspec:\n  email: new@example.com\n  role: member\n",
            support::membership_yaml("newbie", "newbie@example.com", "member")
        ),
    )
    .unwrap();
    let (ok, out, err) = as_admin(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(
        ok,
        "the org admin creates an Invite and a Membership: {out}{err}"
    );
    // ... but not in another organization's namespace.
    assert!(!support::can(
        "admin@example.com",
        "create",
        "memberships.roster.dev",
        &other
    ));
    let (ok, _, err) = support::kubectl(&[
        "--as",
        "admin@example.com",
        "-n",
        &other,
        "apply",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("forbidden"),
        "RBAC refuses the admin elsewhere: {err}"
    );

    // Viewers and members read; they do not write.
    assert!(support::can(
        "viewer@example.com",
        "list",
        "memberships.roster.dev",
        &ns
    ));
    assert!(!support::can(
        "viewer@example.com",
        "create",
        "memberships.roster.dev",
        &ns
    ));
    assert!(!support::can(
        "member@example.com",
        "create",
        "invites.roster.dev",
        &ns
    ));
    assert!(!support::can(
        "stranger@example.com",
        "list",
        "memberships.roster.dev",
        &ns
    ));

    // The workload namespace: member gets edit, viewer only view.
    eventually_can(
        "member@example.com",
        "create",
        "deployments.apps",
        &work,
        true,
    )
    .await;
    assert!(support::can("viewer@example.com", "get", "pods", &work));
    assert!(!support::can(
        "viewer@example.com",
        "create",
        "deployments.apps",
        &work
    ));
    let ns_labels = support::kubectl(&[
        "get",
        "namespace",
        &work,
        "-o",
        "jsonpath={.metadata.labels}",
    ])
    .1;
    assert!(
        ns_labels.contains("\"roster.dev/data-region\":\"EU\""),
        "dataRegion propagates: {ns_labels}"
    );

    // Demotion from admin to member: the admin rights go within seconds.
    support::apply(
        &client,
        &ns,
        &support::membership_yaml("admin", "admin@example.com", "member"),
    )
    .await;
    eventually_can(
        "admin@example.com",
        "create",
        "memberships.roster.dev",
        &ns,
        false,
    )
    .await;
    assert!(support::can(
        "admin@example.com",
        "list",
        "memberships.roster.dev",
        &ns
    ));

    // Removal: every binding of that Membership is gone.
    Api::<Membership>::namespaced(client.clone(), &ns)
        .delete("member", &DeleteParams::default())
        .await
        .unwrap();
    eventually_can(
        "member@example.com",
        "create",
        "deployments.apps",
        &work,
        false,
    )
    .await;
    let bindings = |ns: String| {
        let client = client.clone();
        async move {
            Api::<RoleBinding>::namespaced(client, &ns)
                .list(
                    &ListParams::default()
                        .labels(&format!("{}=member", roster::rules::rbac::MEMBERSHIP_LABEL)),
                )
                .await
                .unwrap()
                .items
                .len()
        }
    };
    eventually("the member's bindings to be gone", WAIT, || async {
        (bindings(ns.clone()).await + bindings(work.clone()).await == 0).then_some(())
    })
    .await;

    let org_status = Api::<Organization>::namespaced(client.clone(), &ns)
        .get("org")
        .await
        .unwrap()
        .status
        .unwrap();
    let synced = org_status
        .conditions
        .iter()
        .find(|c| c.type_ == "AccessSynced")
        .unwrap();
    assert_eq!(synced.status, "True", "{synced:?}");
}

#[tokio::test]
async fn a_held_last_owner_keeps_access_and_teams_grant_their_own() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    support::install_cluster_roles(&client).await;
    let ns = support::namespace(&client, "access-held").await;
    let work = support::namespace(&client, "access-team-work").await;
    let _operator = support::Operator::start(&[&ns], &[]);

    support::apply(&client, &ns, &org(&[&work], "")).await;
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("alice", "alice@example.com", "owner"),
            ("bob", "bob@example.com", "viewer"),
        ],
    )
    .await;
    wait_active(&client, &ns, "bob").await;
    eventually_can(
        "alice@example.com",
        "delete",
        "memberships.roster.dev",
        &ns,
        true,
    )
    .await;

    // Demoting the last owner is held: access follows the effective role, so alice keeps hers.
    support::apply(
        &client,
        &ns,
        &support::membership_yaml("alice", "alice@example.com", "viewer"),
    )
    .await;
    let memberships: Api<Membership> = Api::namespaced(client.clone(), &ns);
    eventually("alice's demotion to be held", WAIT, || async {
        let s = memberships.get("alice").await.ok()?.status?;
        s.conditions
            .iter()
            .any(|c| c.type_ == "RoleChangeHeld")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        support::can("alice@example.com", "delete", "memberships.roster.dev", &ns),
        "held owner keeps owner access"
    );
    assert!(
        support::can("alice@example.com", "create", "deployments.apps", &work),
        "and admin in the workload namespace"
    );

    // A team grants its members what their team roles map to, in its namespaces.
    support::apply(
        &client,
        &ns,
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Team\nmetadata:\n  name: ops\nspec:\n  members:\n  - user: alice@example.com\n    role: owner\n  - user: bob@example.com\n    role: member\n  access:\n    namespaces: [{work}]\n"
        ),
    )
    .await;
    eventually_can("bob@example.com", "create", "deployments.apps", &work, true).await;
    // Deactivating the team takes it away again (bob's org role, viewer, still gives view).
    support::apply(
        &client,
        &ns,
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Team\nmetadata:\n  name: ops\nspec:\n  active: false\n  members:\n  - user: alice@example.com\n    role: owner\n  - user: bob@example.com\n    role: member\n  access:\n    namespaces: [{work}]\n"
        ),
    )
    .await;
    eventually_can(
        "bob@example.com",
        "create",
        "deployments.apps",
        &work,
        false,
    )
    .await;
    assert!(support::can("bob@example.com", "get", "pods", &work));
}

/// RoleBindings of `ns` carrying `label=value`, by name.
async fn bindings_labelled(client: &Client, ns: &str, label: &str, value: &str) -> Vec<String> {
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("{label}={value}")))
        .await
        .unwrap()
        .items
        .iter()
        .map(|b| b.metadata.name.clone().unwrap())
        .collect()
}

/// Membership and Team names may be 253 characters long (label values only 63): they get their
/// bindings, and two long names sharing a 240-character prefix get a binding each.
#[tokio::test]
async fn names_at_the_api_limits_get_their_role_bindings() {
    use roster::names::label_value;
    use roster::rules::rbac::{MEMBERSHIP_LABEL, TEAM_LABEL};
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    support::install_cluster_roles(&client).await;
    let ns = support::namespace(&client, "access-long-names").await;
    let work = support::namespace(&client, "access-long-work").await;
    let _operator = support::Operator::start(&[&ns], &[]);

    let prefix = "p".repeat(240);
    let (longest, one, two) = (
        format!("m{}", "x".repeat(252)),
        format!("{prefix}-one"),
        format!("{prefix}-two"),
    );
    let team = format!("t{}", "y".repeat(252));
    support::apply(&client, &ns, &org(&[&work], "")).await;
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("owner", "owner@example.com", "owner"),
            (&longest, "longest@example.com", "member"),
            (&one, "one@example.com", "viewer"),
            (&two, "two@example.com", "viewer"),
        ],
    )
    .await;
    support::apply(
        &client,
        &ns,
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Team\nmetadata:\n  name: {team}\nspec:\n  members:\n  - user: owner@example.com\n    role: owner\n  - user: two@example.com\n    role: member\n  access:\n    namespaces: [{work}]\n"
        ),
    )
    .await;
    wait_active(&client, &ns, &longest).await;

    eventually_can(
        "longest@example.com",
        "create",
        "deployments.apps",
        &work,
        true,
    )
    .await;
    assert!(support::can(
        "longest@example.com",
        "list",
        "memberships.roster.dev",
        &ns
    ));
    // Through the team only: two's org role (viewer) gives view.
    eventually_can("two@example.com", "create", "deployments.apps", &work, true).await;
    eventually_can("one@example.com", "get", "pods", &work, true).await;
    assert!(!support::can(
        "one@example.com",
        "create",
        "deployments.apps",
        &work
    ));

    for namespace in [&ns, &work] {
        let (a, b) = (
            bindings_labelled(&client, namespace, MEMBERSHIP_LABEL, &label_value(&one)).await,
            bindings_labelled(&client, namespace, MEMBERSHIP_LABEL, &label_value(&two)).await,
        );
        assert_eq!((a.len(), b.len()), (1, 1), "{namespace}: {a:?} {b:?}");
        assert_ne!(a, b, "two long names, two bindings");
    }
    let team_bindings = bindings_labelled(&client, &work, TEAM_LABEL, &label_value(&team)).await;
    assert_eq!(team_bindings.len(), 2, "{team_bindings:?}");
}

fn org_condition(org: &Organization, type_: &str) -> Option<(String, String)> {
    let c = org
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

/// Claims on a workload namespace depend on every Organization: when the older org lets `work` go,
/// the younger one that listed it gets it, and when `work` becomes an org namespace, whoever held
/// it loses it, each within seconds and without touching the org that gains or loses.
#[tokio::test]
async fn a_change_to_one_organization_reconciles_the_orgs_whose_claims_it_changes() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    support::install_cluster_roles(&client).await;
    let a = support::namespace(&client, "access-claims-a").await;
    let b = support::namespace(&client, "access-claims-b").await;
    let work = support::namespace(&client, "access-claims-work").await;
    let _operator = support::Operator::start(&[&a, &b, &work], &[]);
    let seconds = Duration::from_secs(10);
    let can_edit = |user: &'static str, expected: bool| {
        let work = work.clone();
        async move {
            eventually(
                &format!("{user} edit in work == {expected}"),
                seconds,
                || async {
                    (support::can(user, "create", "deployments.apps", &work) == expected)
                        .then_some(())
                },
            )
            .await
        }
    };

    support::apply(&client, &a, &org(&[&work], "")).await;
    support::apply_memberships(
        &client,
        &a,
        &[
            ("owner", "owner-a@example.com", "owner"),
            ("dev", "dev-a@example.com", "member"),
        ],
    )
    .await;
    eventually_can(
        "dev-a@example.com",
        "create",
        "deployments.apps",
        &work,
        true,
    )
    .await;
    // Created later, B is refused `work`: A has it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    support::apply(&client, &b, &org(&[&work], "")).await;
    support::apply_memberships(
        &client,
        &b,
        &[
            ("owner", "owner-b@example.com", "owner"),
            ("dev", "dev-b@example.com", "member"),
        ],
    )
    .await;
    wait_active(&client, &b, "dev").await;
    let orgs_b: Api<Organization> = Api::namespaced(client.clone(), &b);
    eventually("B refused work", WAIT, || async {
        let c = org_condition(&orgs_b.get("org").await.ok()?, "AccessSynced")?;
        (c == ("False".into(), "NamespaceRefused".into())).then_some(())
    })
    .await;
    assert!(!support::can(
        "dev-b@example.com",
        "create",
        "deployments.apps",
        &work
    ));

    // A lets `work` go: B gets it, though nothing of B changed.
    support::apply(&client, &a, &org(&[], "")).await;
    can_edit("dev-a@example.com", false).await;
    can_edit("dev-b@example.com", true).await;

    // `work` becomes an organization's own namespace: B, which held it, loses it.
    support::apply(&client, &work, &org(&[], "")).await;
    can_edit("dev-b@example.com", false).await;
    let gone = Api::<RoleBinding>::namespaced(client.clone(), &work)
        .list(
            &ListParams::default()
                .labels(&format!("{}={b}", roster::rules::rbac::ORGANIZATION_LABEL)),
        )
        .await
        .unwrap();
    assert!(gone.items.is_empty(), "{:?}", gone.items);
}

fn data_region(ns: &str) -> String {
    support::kubectl(&[
        "get",
        "namespace",
        ns,
        "-o",
        "jsonpath={.metadata.labels.roster\\.dev/data-region}",
    ])
    .1
}

async fn eventually_region(ns: &str, region: &str) {
    eventually(
        &format!("{ns} labelled {region}"),
        Duration::from_secs(10),
        || async { (data_region(ns) == region).then_some(()) },
    )
    .await
}

/// The data-region label follows the Organization's `spec.dataRegion` back and forth, and comes
/// back within seconds when someone removes it, on the org namespace and its workload namespace.
#[tokio::test]
async fn the_data_region_label_follows_the_organization_and_comes_back() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "access-region").await;
    let work = support::namespace(&client, "access-region-work").await;
    let _operator = support::Operator::start(&[&ns], &[]);

    for region in ["Global", "EU", "Global"] {
        support::apply(
            &client,
            &ns,
            &org(&[&work], &format!("  dataRegion: {region}\n")),
        )
        .await;
        eventually_region(&ns, region).await;
        eventually_region(&work, region).await;
    }
    for namespace in [&work, &ns] {
        let (ok, _, err) =
            support::kubectl(&["label", "namespace", namespace, "roster.dev/data-region-"]);
        assert!(ok, "{err}");
        eventually_region(namespace, "Global").await;
    }
}

/// What roster compares the data-region label with is the label the namespace has now, not what
/// it wrote before: a label someone overwrites or removes comes back every time, not once.
#[tokio::test]
async fn a_data_region_label_someone_changes_comes_back_every_time() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "access-region-drift").await;
    let _operator = support::Operator::start(&[&ns], &[]);

    support::apply(&client, &ns, &org(&[], "  dataRegion: EU\n")).await;
    eventually_region(&ns, "EU").await;
    for _ in 0..2 {
        let overwrite = "roster.dev/data-region=Global";
        let (ok, _, err) = support::kubectl(&["label", "--overwrite", "namespace", &ns, overwrite]);
        assert!(ok, "{err}");
        eventually_region(&ns, "EU").await;
        let (ok, _, err) =
            support::kubectl(&["label", "namespace", &ns, "roster.dev/data-region-"]);
        assert!(ok, "{err}");
        eventually_region(&ns, "EU").await;
    }
}
