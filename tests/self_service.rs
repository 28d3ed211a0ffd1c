//! The self-service story, as new users live it, with plain kubectl as impersonated users against
//! the real API server, roster's RBAC and its webhook: a platform engineer creates the org and its
//! first owner; the owner invites an admin; the admin joins with the code, invites two members, one
//! joins by invite and one by e-mail domain; the admin creates a team; the owner hands over.

mod support;

use std::time::Duration;

use kube::Client;
use kube::api::Api;
use roster::api::{Invite, Membership, MembershipPhase, OrgRole, Organization};
use support::eventually;

const WAIT: Duration = Duration::from_secs(30);

struct Story {
    client: Client,
    ns: String,
    /// Where each step's YAML is written for kubectl; removed with the story.
    dir: tempfile::TempDir,
    step: u32,
}

impl Story {
    /// `kubectl apply -f` of `yaml` as `user`; returns (ok, output).
    fn apply_as(&mut self, user: &str, yaml: &str) -> (bool, String) {
        self.kubectl_as(user, "apply", yaml)
    }

    /// `kubectl create -f`: how someone who cannot read the org yet joins it.
    fn create_as(&mut self, user: &str, yaml: &str) -> (bool, String) {
        self.kubectl_as(user, "create", yaml)
    }

    fn kubectl_as(&mut self, user: &str, verb: &str, yaml: &str) -> (bool, String) {
        self.step += 1;
        let file = self.dir.path().join(format!("step-{}.yaml", self.step));
        std::fs::write(&file, yaml).unwrap();
        let (ok, out, err) = support::kubectl(&[
            "--as",
            user,
            "-n",
            &self.ns,
            verb,
            "-f",
            file.to_str().unwrap(),
        ]);
        (ok, format!("{out}{err}"))
    }

    fn can(&self, user: &str, verb: &str, resource: &str) -> bool {
        support::kubectl(&[
            "auth", "can-i", verb, resource, "-n", &self.ns, "--as", user,
        ])
        .1
        .trim()
            == "yes"
    }

    async fn active(&self, name: &str, role: OrgRole) {
        let api: Api<Membership> = Api::namespaced(self.client.clone(), &self.ns);
        eventually(&format!("{name} Active as {role}"), WAIT, || async {
            let s = api.get(name).await.ok()?.status?;
            (s.phase == Some(MembershipPhase::Active) && s.effective_role == Some(role))
                .then_some(())
        })
        .await
    }

    async fn code(&self, invite: &str, reader: &str) -> String {
        let api: Api<Invite> = Api::namespaced(self.client.clone(), &self.ns);
        let secret = eventually("the invite's code Secret", WAIT, || async {
            api.get(invite).await.ok()?.status?.code_secret_name
        })
        .await;
        // The person who invited reads the code with their own rights.
        let (ok, out, err) = support::kubectl(&[
            "--as",
            reader,
            "-n",
            &self.ns,
            "get",
            "secret",
            &secret,
            "-o",
            "jsonpath={.data.code}",
        ]);
        assert!(ok, "{reader} reads the invite code: {err}");
        let bytes = base64_decode(out.trim());
        String::from_utf8(bytes).unwrap()
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// A user Membership; `invite` is the Invite's name and the proof the redemption carries.
fn membership(name: &str, user: &str, role: &str, invite: Option<(&str, &str)>) -> String {
    let invite = invite.map_or(String::new(), |(n, p)| {
        format!("  invite:\n    name: {n}\n    proof: {p}\n")
    });
    support::membership_yaml(name, user, role) + &invite
}

fn invite(name: &str, email: &str, role: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: {name}\nspec:\n  email: {email}\n  role: {role}\n"
    )
}

/// A fresh org namespace with roster's RBAC and roster running with its webhook, the platform
/// having applied `organization` there.
async fn start(test: &str, organization: &str) -> (Story, support::Operator) {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, test).await;
    support::install_roster_rbac(&client, &ns).await;
    let operator = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&client, &ns).await;
    support::apply(&client, &ns, organization).await;
    let story = Story {
        client,
        ns,
        dir: tempfile::tempdir().unwrap(),
        step: 0,
    };
    (story, operator)
}

#[tokio::test]
async fn a_new_org_runs_itself_through_kubectl() {
    let (olivia, adam, mia, sam) = (
        "olivia@corp.example",
        "adam@corp.example",
        "mia@corp.example",
        "sam@example.org",
    );
    // 1. The platform engineer creates the org and its first owner.
    let (mut story, _operator) = start(
        "story",
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: corp\nspec:\n  policy:\n    maxOwners: 1\n    selfJoin:\n      emailDomains: [example.org]\n      role: member\n",
    )
    .await;
    let (client, ns) = (story.client.clone(), story.ns.clone());
    support::apply(&client, &ns, &membership("olivia", olivia, "owner", None)).await;
    story.active("olivia", OrgRole::Owner).await;
    eventually("olivia's owner rights", WAIT, || async {
        story
            .can(olivia, "create", "invites.roster.dev")
            .then_some(())
    })
    .await;
    assert!(
        !story.can(adam, "list", "memberships.roster.dev"),
        "strangers see nothing"
    );

    // 2. The owner invites an admin; 3. the admin joins with the code.
    let (ok, out) = story.apply_as(olivia, &invite("adam", adam, "admin"));
    assert!(ok, "{out}");
    let code = story.code("adam", olivia).await;
    let adams_proof = support::proof(&code, &ns, "adam", adam);
    let (ok, out) = story.create_as(
        adam,
        &membership("adam", adam, "member", Some(("adam", &adams_proof))),
    );
    assert!(
        !ok && out.contains("grants role admin"),
        "the invite's role, not another: {out}"
    );
    let (ok, out) = story.create_as(
        mia,
        &membership(
            "mia-early",
            mia,
            "admin",
            Some(("adam", &support::proof(&code, &ns, "adam", mia))),
        ),
    );
    assert!(
        !ok && out.contains("[rule InvalidInvite]"),
        "someone else's invite: {out}"
    );
    let (ok, out) = story.create_as(
        adam,
        &membership("adam", adam, "admin", Some(("adam", &adams_proof))),
    );
    assert!(ok, "adam joins with the code: {out}");
    story.active("adam", OrgRole::Admin).await;
    eventually("adam's admin rights", WAIT, || async {
        story
            .can(adam, "create", "invites.roster.dev")
            .then_some(())
    })
    .await;

    // 4. The admin invites two members: one by invite, one joins by e-mail domain.
    let (ok, out) = story.apply_as(adam, &invite("mia", mia, "admin"));
    assert!(
        !ok && out.contains("[rule AdminLimit]"),
        "admins invite members and viewers only: {out}"
    );
    let (ok, out) = story.apply_as(adam, &invite("mia", mia, "member"));
    assert!(ok, "{out}");
    let code = story.code("mia", adam).await;
    let mias_proof = support::proof(&code, &ns, "mia", mia);
    let (ok, out) = story.create_as(
        mia,
        &membership("mia", mia, "member", Some(("mia", &mias_proof))),
    );
    assert!(ok, "mia joins: {out}");
    let (ok, out) = story.create_as(sam, &membership("sam", sam, "admin", None));
    assert!(
        !ok && out.contains("[rule SelfJoinNotAllowed]"),
        "self-join gives the policy's role: {out}"
    );
    let (ok, out) = story.create_as(sam, &membership("sam", sam, "member", None));
    assert!(ok, "sam joins by domain: {out}");
    let (ok, out) = story.create_as(
        "eve@elsewhere.example",
        &membership("eve", "eve@elsewhere.example", "member", None),
    );
    assert!(
        !ok && out.contains("[rule SelfJoinNotAllowed]"),
        "no code, no domain: {out}"
    );
    story.active("mia", OrgRole::Member).await;
    story.active("sam", OrgRole::Member).await;
    eventually("members' read rights", WAIT, || async {
        story
            .can(sam, "list", "memberships.roster.dev")
            .then_some(())
    })
    .await;
    assert!(!story.can(sam, "create", "invites.roster.dev"));

    // 5. The admin creates a team; a member may not.
    let team = format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Team\nmetadata:\n  name: web\nspec:\n  members:\n  - user: {mia}\n    role: owner\n  - user: {sam}\n    role: member\n"
    );
    let (ok, out) = story.apply_as(sam, &team);
    assert!(!ok, "members do not create teams: {out}");
    let (ok, out) = story.apply_as(adam, &team);
    assert!(ok, "{out}");

    // 6. The owner hands the org to adam: promote first (a maxOwners warning), then step down.
    let (ok, out) = story.apply_as(olivia, &membership("olivia", olivia, "admin", None));
    assert!(
        !ok && out.contains("[rule LastOwner]"),
        "the last owner cannot step down first: {out}"
    );
    let (ok, out) = story.apply_as(
        olivia,
        &membership(
            "adam",
            adam,
            "owner",
            Some(("adam", &proof_of(&client, &ns, "adam").await)),
        ),
    );
    assert!(
        ok && out.contains("maxOwners"),
        "promotion admitted with a warning: {out}"
    );
    story.active("adam", OrgRole::Owner).await;
    let (ok, out) = story.apply_as(adam, &membership("olivia", olivia, "admin", None));
    assert!(ok, "the new owner demotes the old: {out}");
    story.active("olivia", OrgRole::Admin).await;
    let org = Api::<Organization>::namespaced(client.clone(), &ns)
        .get("corp")
        .await
        .unwrap();
    assert_eq!(org.status.unwrap().owners, vec![adam.to_string()]);
    eventually("olivia's owner-only rights to go", WAIT, || async {
        let status = Api::<Membership>::namespaced(client.clone(), &ns)
            .get("olivia")
            .await
            .ok()?
            .status?;
        (status.effective_role == Some(OrgRole::Admin)).then_some(())
    })
    .await;
    let (ok, out) = story.apply_as(
        olivia,
        &membership(
            "mia",
            mia,
            "admin",
            Some(("mia", &proof_of(&client, &ns, "mia").await)),
        ),
    );
    assert!(
        !ok && out.contains("[rule AdminLimit]"),
        "olivia is an admin now: {out}"
    );
}

/// The proof a Membership was created with (its spec is immutable, so updates repeat it).
async fn proof_of(client: &Client, ns: &str, membership: &str) -> String {
    let m = Api::<Membership>::namespaced(client.clone(), ns)
        .get(membership)
        .await
        .unwrap();
    m.spec.invite.unwrap().proof.unwrap()
}

/// An outsider holding only the self-service binding reads nothing of an org (its profile, policy
/// and people are for members), and still joins with the invite they were handed.
#[tokio::test]
async fn outsiders_read_nothing_and_still_join_with_an_invite() {
    let (owner, eve) = ("owner@corp.example", "eve@elsewhere.example");
    let (mut story, _operator) = start(
        "outsider",
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: corp\nspec:\n  profile:\n    description: members only\n",
    )
    .await;
    let (client, ns) = (story.client.clone(), story.ns.clone());
    support::apply(&client, &ns, &membership("owner", owner, "owner", None)).await;
    story.active("owner", OrgRole::Owner).await;
    support::apply(&client, &ns, &invite("eve", eve, "member")).await;
    eventually("the owner's rights", WAIT, || async {
        story.can(owner, "get", "secrets").then_some(())
    })
    .await;
    let code = story.code("eve", owner).await;

    for resource in [
        "organizations.roster.dev",
        "memberships.roster.dev",
        "invites.roster.dev",
        "teams.roster.dev",
        "secrets",
    ] {
        for verb in ["get", "list", "watch"] {
            assert!(!story.can(eve, verb, resource), "eve may {verb} {resource}");
        }
    }
    let (ok, out, err) = support::kubectl(&["--as", eve, "-n", &ns, "get", "organization", "corp"]);
    assert!(!ok && err.contains("Forbidden"), "{out}{err}");

    let proof = support::proof(&code, &ns, "eve", eve);
    let (ok, out) = story.create_as(
        eve,
        &membership("eve", eve, "member", Some(("eve", &proof))),
    );
    assert!(ok, "eve joins with the invite: {out}");
    story.active("eve", OrgRole::Member).await;
}

/// Leaving is no removal: a self-joiner who joins and leaves again and again spends none of the
/// removal budget, and the owner still removes someone.
#[tokio::test]
async fn a_self_joiner_who_keeps_leaving_spends_no_removal_budget() {
    let (owner, sam) = ("owner@corp.example", "sam@example.org");
    let (mut story, _operator) = start(
        "leaver",
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: corp\nspec:\n  policy:\n    maxRemovalsPerHour: 2\n    selfJoin:\n      emailDomains: [example.org]\n      role: member\n",
    )
    .await;
    let (client, ns) = (story.client.clone(), story.ns.clone());
    support::apply(&client, &ns, &membership("owner", owner, "owner", None)).await;
    support::apply(
        &client,
        &ns,
        &membership("bob", "bob@corp.example", "member", None),
    )
    .await;
    story.active("owner", OrgRole::Owner).await;
    story.active("bob", OrgRole::Member).await;

    let memberships: Api<Membership> = Api::namespaced(client.clone(), &ns);
    for round in 0..3 {
        let (ok, out) = story.create_as(sam, &membership("sam", sam, "member", None));
        assert!(ok, "round {round}: sam joins by domain: {out}");
        story.active("sam", OrgRole::Member).await;
        eventually("sam's right to leave", WAIT, || async {
            story
                .can(sam, "delete", "memberships.roster.dev")
                .then_some(())
        })
        .await;
        let (ok, out, err) =
            support::kubectl(&["--as", sam, "-n", &ns, "delete", "membership", "sam"]);
        assert!(ok, "round {round}: sam leaves: {out}{err}");
        eventually("sam's Membership to go", WAIT, || async {
            memberships
                .get_opt("sam")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
    eventually("the owner's right to remove", WAIT, || async {
        story
            .can(owner, "delete", "memberships.roster.dev")
            .then_some(())
    })
    .await;
    let (ok, out, err) =
        support::kubectl(&["--as", owner, "-n", &ns, "delete", "membership", "bob"]);
    assert!(ok, "the owner removes bob within the budget: {out}{err}");
}
