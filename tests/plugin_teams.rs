//! `kubectl roster team` against the real API server with roster's operator and webhook, as
//! impersonated people with only the RBAC the chart ships: an org admin creates a team, its owner
//! and admins manage members within their team role, ownership changes hands in one write, the
//! team is deactivated. Every write is also sent as a server dry run, which answers the same and
//! changes nothing.

mod plugin_support;
mod support;

use kube::api::Api;
use plugin_support::*;
use roster::api::{Team, TeamPhase, TeamRole};
use support::eventually;

async fn team(client: &kube::Client, ns: &str) -> Option<Team> {
    Api::<Team>::namespaced(client.clone(), ns)
        .get_opt("platform")
        .await
        .unwrap()
}

/// The team's entries as (user, role).
async fn roles(client: &kube::Client, ns: &str) -> Vec<(String, TeamRole)> {
    team(client, ns)
        .await
        .expect("the team")
        .spec
        .members
        .into_iter()
        .map(|m| (m.user.unwrap_or_default(), m.role))
        .collect()
}

fn role_of(roles: &[(String, TeamRole)], user: &str) -> Option<TeamRole> {
    roles.iter().find(|(u, _)| u == user).map(|(_, r)| *r)
}

#[tokio::test]
async fn teams_from_creation_to_deactivation() {
    let people = [
        ("alice", ALICE, "owner"),
        ("carol", CAROL, "admin"),
        ("bob", BOB, "member"),
        ("dave", DAVE, "member"),
        ("erin", ERIN, "member"),
    ];
    let (client, ns, _operator) = setup("plugin-teams", Rbac::Shipped, POLICY, &people).await;
    let ns = ns.as_str();

    // An org admin creates a team owned by a member.
    let create = [
        "-n",
        ns,
        "team",
        "create",
        "platform",
        "--owner",
        BOB,
        "--display-name",
        "Platform",
    ];
    let out = ok(CAROL, &dry(&create));
    assert!(
        out.contains(&format!(
            "team/platform created in {ns} (server dry run): owner {BOB}"
        )),
        "{out}"
    );
    assert!(team(&client, ns).await.is_none());
    ok(CAROL, &create);
    assert_eq!(
        roles(&client, ns).await,
        [(BOB.to_string(), TeamRole::Owner)]
    );
    // The webhook keeps Kubernetes' own identities out of teams; members may not create teams
    // at all (RBAC).
    refused_twice(
        CAROL,
        &[
            "-n",
            ns,
            "team",
            "create",
            "ops",
            "--owner",
            "system:serviceaccount:kube-system:default",
        ],
        "a Kubernetes system identity",
    );
    let err = fails(BOB, &["-n", ns, "team", "create", "mine"]);
    assert!(err.contains("(Forbidden)"), "{err}");

    // The team owner adds people: as members by default, or with a role.
    let add = ["-n", ns, "team", "add", "platform", DAVE];
    let out = ok(BOB, &dry(&add));
    assert!(
        out.contains(&format!(
            "team/platform: {DAVE} added as member (server dry run)"
        )),
        "{out}"
    );
    assert_eq!(role_of(&roles(&client, ns).await, DAVE), None);
    ok(BOB, &add);
    ok(
        BOB,
        &["-n", ns, "team", "add", "platform", ERIN, "--role", "admin"],
    );
    let now = roles(&client, ns).await;
    assert_eq!(role_of(&now, DAVE), Some(TeamRole::Member));
    assert_eq!(role_of(&now, ERIN), Some(TeamRole::Admin));

    // A team admin assigns roles below admin only.
    let err = refused_twice(
        ERIN,
        &[
            "-n", ns, "team", "add", "platform", CAROL, "--role", "admin",
        ],
        "a team admin assigns and changes team roles below admin only",
    );
    assert!(err.contains("[rule TeamRoleTooLow]"), "{err}");
    let set = ["-n", ns, "team", "set-role", "platform", DAVE, "moderator"];
    ok(ERIN, &dry(&set));
    assert_eq!(
        role_of(&roles(&client, ns).await, DAVE),
        Some(TeamRole::Member)
    );
    let out = ok(ERIN, &set);
    assert!(out.contains("changed from member to moderator"), "{out}");
    assert_eq!(
        role_of(&roles(&client, ns).await, DAVE),
        Some(TeamRole::Moderator)
    );
    refused_twice(
        ERIN,
        &["-n", ns, "team", "set-role", "platform", DAVE, "admin"],
        "a team admin assigns and changes team roles below admin only",
    );
    // Owner is not a role to set: a team has exactly one, handed over by a transfer.
    let err = fails(
        ERIN,
        &["-n", ns, "team", "set-role", "platform", DAVE, "owner"],
    );
    assert!(err.contains("team transfer-ownership platform"), "{err}");

    // Only the team owner (or an org admin) hands over ownership.
    refused_twice(
        ERIN,
        &[
            "-n",
            ns,
            "team",
            "transfer-ownership",
            "platform",
            "--to",
            DAVE,
        ],
        "[rule TeamRoleTooLow]",
    );
    let transfer = [
        "-n",
        ns,
        "team",
        "transfer-ownership",
        "platform",
        "--to",
        ERIN,
    ];
    let before = team(&client, ns)
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap();
    ok(BOB, &dry(&transfer));
    assert_eq!(
        role_of(&roles(&client, ns).await, BOB),
        Some(TeamRole::Owner)
    );
    let out = ok(BOB, &transfer);
    assert!(
        out.contains(&format!(
            "ownership transferred to {ERIN}; {BOB} is now admin"
        )),
        "{out}"
    );
    let after = team(&client, ns).await.unwrap();
    assert_eq!(
        after.metadata.generation,
        Some(before + 1),
        "the new owner and the old owner's demotion are one write"
    );
    let now = roles(&client, ns).await;
    assert_eq!(role_of(&now, ERIN), Some(TeamRole::Owner));
    assert_eq!(role_of(&now, BOB), Some(TeamRole::Admin));

    // Everyone in the org lists teams; names as kubectl prints them.
    let listed = eventually("the team list to show the new owner", WAIT, || async {
        let out = plugin(DAVE, &["-n", ns, "team", "list"]);
        (out.ok && out.stdout.contains(ERIN)).then_some(out.stdout)
    })
    .await;
    let row: Vec<&str> = listed.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        ["platform", "Platform", ERIN, "3/3", "Active"],
        "{listed}"
    );
    assert_eq!(
        ok(DAVE, &["-n", ns, "team", "list", "-o", "name"]),
        "team.roster.dev/platform\n"
    );
    let shown = ok(
        DAVE,
        &["-n", ns, "--no-headers", "team", "show", "platform"],
    );
    assert!(
        shown
            .lines()
            .any(|l| l.split_whitespace().eq([ERIN, "owner"])),
        "{shown}"
    );

    // A moderator may not deactivate the team; its owner may.
    refused_twice(
        DAVE,
        &["-n", ns, "team", "deactivate", "platform"],
        "changing a Team needs org role admin or owner, or team role admin or owner in this team",
    );
    let deactivate = ["-n", ns, "team", "deactivate", "platform"];
    ok(ERIN, &dry(&deactivate));
    assert!(team(&client, ns).await.unwrap().spec.active);
    let out = ok(ERIN, &deactivate);
    assert!(out.contains("team/platform: deactivated"), "{out}");
    eventually("the team to be Deactivated", WAIT, || async {
        let t = team(&client, ns).await?;
        (t.status?.phase == Some(TeamPhase::Deactivated)).then_some(())
    })
    .await;

    // A team admin removes a member below admin.
    ok(BOB, &["-n", ns, "team", "remove", "platform", DAVE]);
    assert_eq!(role_of(&roles(&client, ns).await, DAVE), None);
}
