//! Property tests for the webhook's request handling: whatever body reaches `/validate`, the
//! [`Decider`] never panics, and answers either `Err` (HTTP 400: not an AdmissionReview) or an
//! AdmissionReview whose response echoes the request's uid.
//!
//! The bodies are random bytes, random JSON values, and valid AdmissionReviews (one per kind and
//! operation, as the API server sends them) with fields removed, given the wrong type, or made huge.
//! Feeding the handler is pure; only building the [`Decider`] needs the control plane, since its
//! caches take a client: they watch one namespace holding an organization (made effective by
//! `roster run`, which is stopped again before the first case), so that mutated requests reach deep
//! into the rules, fresh reads and invite codes included.
//!
//! Each property runs PROPTEST_CASES cases (`make test` sets 1000; 256 otherwise).

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use proptest::prelude::*;
use proptest::sample::Index;
use roster::api::{Invite, Membership, MembershipPhase, OrgRole};
use roster::caches::{Caches, Scope};
use roster::rules::Config;
use roster::webhook::Decider;
use serde_json::{Value, json};

const OWNER: &str = "owner@example.com";
const ADMIN: &str = "admin@example.com";
const MEMBER: &str = "member@example.com";
const BEA: &str = "bea@example.com";

/// One Decider for the whole binary, on a runtime of its own (the caches watch in the background).
struct Fuzz {
    rt: tokio::runtime::Runtime,
    decider: Decider,
    ns: String,
    code: String,
}

fn fuzz() -> &'static Fuzz {
    static FUZZ: OnceLock<Fuzz> = OnceLock::new();
    FUZZ.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let (decider, ns, code) = rt.block_on(setup());
        Fuzz {
            rt,
            decider,
            ns,
            code,
        }
    })
}

async fn setup() -> (Decider, String, String) {
    const WAIT: Duration = Duration::from_secs(30);
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "webhook-fuzz").await;
    let mut operator = support::Operator::start(&[&ns], &["--webhook-addr", ""]);
    let objects = [
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  policy:\n    minOwners: 1\n    maxOwners: 2\n    selfJoin:\n      emailDomains: [selfjoin.example]\n      role: viewer\n".to_string(),
        support::membership_yaml("owner", OWNER, "owner"),
        support::membership_yaml("admin", ADMIN, "admin"),
        support::membership_yaml("member", MEMBER, "member"),
        "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: inv\nspec:\n  email: bea@example.com\n  role: member\n".to_string(),
        "apiVersion: roster.dev/v1alpha1\nkind: Team\nmetadata:\n  name: team\nspec:\n  members:\n  - user: member@example.com\n    role: owner\n  - user: admin@example.com\n    role: admin\n".to_string(),
    ];
    for o in &objects {
        support::apply(&client, &ns, o).await;
    }
    let ms: Api<Membership> = Api::namespaced(client.clone(), &ns);
    for name in ["owner", "admin", "member"] {
        support::eventually(&format!("{name} to be Active"), WAIT, || async {
            let s = ms.get(name).await.unwrap().status?;
            (s.phase == Some(MembershipPhase::Active)).then_some(())
        })
        .await;
    }
    let invites: Api<Invite> = Api::namespaced(client.clone(), &ns);
    let secret = support::eventually("the invite's code Secret", WAIT, || async {
        invites.get("inv").await.unwrap().status?.code_secret_name
    })
    .await;
    let secret = Api::<Secret>::namespaced(client.clone(), &ns)
        .get(&secret)
        .await
        .unwrap();
    let code = String::from_utf8(secret.data.unwrap()["code"].0.clone()).unwrap();
    operator.kill();

    let caches = Caches::start(
        &client,
        &Scope {
            namespaces: vec![ns.clone()],
        },
    );
    caches.stores.ready().await;
    support::eventually("the caches to hold the organization", WAIT, || async {
        let index = caches.index(&ns);
        (index.organization.is_some()
            && index.role_of(OWNER, &[]) == Some(OrgRole::Owner)
            && index.role_of(MEMBER, &[]) == Some(OrgRole::Member)
            && caches.stores.secrets.state().len() == 1)
            .then_some(())
    })
    .await;
    (Decider::new(caches, Config::default(), client), ns, code)
}

// ---------------------------------------------------------------------------------------------
// Valid AdmissionReviews, as the API server sends them.

fn roster_object(ns: &str, kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": kind,
        "metadata": {
            "name": name, "namespace": ns, "uid": format!("00000000-0000-0000-0000-{:012}", name.len()),
            "generation": 1, "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"
        },
        "spec": spec
    })
}

fn plural(kind: &str) -> String {
    format!("{}s", kind.to_lowercase())
}

#[allow(clippy::too_many_arguments)]
fn review(
    ns: &str,
    uid: &str,
    (group, kind): (&str, &str),
    operation: &str,
    user: &str,
    groups: &[&str],
    object: Option<Value>,
    old: Option<Value>,
) -> Value {
    let version = if group.is_empty() { "v1" } else { "v1alpha1" };
    let name = object
        .as_ref()
        .or(old.as_ref())
        .map(|o| o["metadata"]["name"].clone())
        .unwrap_or(json!(""));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": { "group": group, "version": version, "kind": kind },
            "resource": { "group": group, "version": version, "resource": plural(kind) },
            "requestKind": { "group": group, "version": version, "kind": kind },
            "requestResource": { "group": group, "version": version, "resource": plural(kind) },
            "name": name,
            "namespace": ns,
            "operation": operation,
            "userInfo": { "username": user, "uid": "u-1", "groups": groups, "extra": { "scopes": ["a"] } },
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": { "apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" }
        }
    })
}

/// One valid review per kind and operation, each with its own uid.
fn bases(ns: &str, code: &str) -> Vec<Value> {
    let o = |kind: &str, name: &str, spec: Value| roster_object(ns, kind, name, spec);
    let r = "roster.dev";
    let auth = ["system:authenticated"];
    let platform = ["system:masters", "system:authenticated"];
    let membership = |user: &str, role: &str| json!({ "user": user, "role": role });
    let team = |owner: &str, admin: &str| json!({ "members": [{ "user": owner, "role": "owner" }, { "user": admin, "role": "admin" }], "active": true });
    let org = |display: &str| {
        json!({ "displayName": display, "dataRegion": "Global", "policy": {
            "minOwners": 1, "maxOwners": 2,
            "invites": { "defaultTTL": "168h", "maxTTL": "720h", "allowOpenInvites": true },
            "selfJoin": { "emailDomains": ["selfjoin.example"], "role": "viewer" }
        }, "access": { "clusterRoles": { "owner": "admin", "admin": "admin", "member": "edit", "viewer": "view" } },
        "deletionProtection": false })
    };
    vec![
        review(
            ns,
            "uid-mem-create",
            (r, "Membership"),
            "CREATE",
            ADMIN,
            &auth,
            Some(o(
                "Membership",
                "new",
                membership("new@example.com", "member"),
            )),
            None,
        ),
        review(
            ns,
            "uid-mem-redeem",
            (r, "Membership"),
            "CREATE",
            BEA,
            &auth,
            Some(o(
                "Membership",
                "bea",
                json!({ "user": BEA, "role": "member", "invite": { "name": "inv", "proof": support::proof(code, ns, "inv", BEA) } }),
            )),
            None,
        ),
        review(
            ns,
            "uid-mem-demote-owner",
            (r, "Membership"),
            "UPDATE",
            OWNER,
            &auth,
            Some(o("Membership", "owner", membership(OWNER, "admin"))),
            Some(o("Membership", "owner", membership(OWNER, "owner"))),
        ),
        review(
            ns,
            "uid-mem-promote",
            (r, "Membership"),
            "UPDATE",
            ADMIN,
            &auth,
            Some(o("Membership", "member", membership(MEMBER, "admin"))),
            Some(o("Membership", "member", membership(MEMBER, "member"))),
        ),
        review(
            ns,
            "uid-mem-leave",
            (r, "Membership"),
            "DELETE",
            MEMBER,
            &auth,
            None,
            Some(o("Membership", "member", membership(MEMBER, "member"))),
        ),
        review(
            ns,
            "uid-mem-remove-owner",
            (r, "Membership"),
            "DELETE",
            "kubernetes-admin",
            &platform,
            None,
            Some(o("Membership", "owner", membership(OWNER, "owner"))),
        ),
        review(
            ns,
            "uid-inv-create",
            (r, "Invite"),
            "CREATE",
            ADMIN,
            &auth,
            Some(o(
                "Invite",
                "new-inv",
                json!({ "email": "x@example.com", "role": "member", "maxUses": 1, "ttl": "72h", "revoked": false }),
            )),
            None,
        ),
        review(
            ns,
            "uid-inv-revoke",
            (r, "Invite"),
            "UPDATE",
            OWNER,
            &auth,
            Some(o(
                "Invite",
                "inv",
                json!({ "email": BEA, "role": "member", "maxUses": 1, "revoked": true }),
            )),
            Some(o(
                "Invite",
                "inv",
                json!({ "email": BEA, "role": "member", "maxUses": 1, "revoked": false }),
            )),
        ),
        review(
            ns,
            "uid-inv-delete",
            (r, "Invite"),
            "DELETE",
            MEMBER,
            &auth,
            None,
            Some(o(
                "Invite",
                "inv",
                json!({ "email": BEA, "role": "member", "maxUses": 1, "revoked": false }),
            )),
        ),
        review(
            ns,
            "uid-team-create",
            (r, "Team"),
            "CREATE",
            ADMIN,
            &auth,
            Some(o("Team", "t", team(ADMIN, MEMBER))),
            None,
        ),
        review(
            ns,
            "uid-team-transfer",
            (r, "Team"),
            "UPDATE",
            MEMBER,
            &auth,
            Some(o("Team", "team", team(ADMIN, MEMBER))),
            Some(o("Team", "team", team(MEMBER, ADMIN))),
        ),
        review(
            ns,
            "uid-team-delete",
            (r, "Team"),
            "DELETE",
            ADMIN,
            &auth,
            None,
            Some(o("Team", "team", team(MEMBER, ADMIN))),
        ),
        review(
            ns,
            "uid-org-create",
            (r, "Organization"),
            "CREATE",
            "kubernetes-admin",
            &platform,
            Some(o("Organization", "org2", org("Second"))),
            None,
        ),
        review(
            ns,
            "uid-org-update",
            (r, "Organization"),
            "UPDATE",
            ADMIN,
            &auth,
            Some(o("Organization", "org", org("Renamed"))),
            Some(o("Organization", "org", org("Test Org"))),
        ),
        review(
            ns,
            "uid-org-delete",
            (r, "Organization"),
            "DELETE",
            OWNER,
            &auth,
            None,
            Some(o("Organization", "org", org("Test Org"))),
        ),
        review(
            ns,
            "uid-configmap",
            ("", "ConfigMap"),
            "CREATE",
            MEMBER,
            &auth,
            Some(
                json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cm", "namespace": ns }, "data": { "a": "b" } }),
            ),
            None,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// The property every answer must have.

/// Feeds `body` to the Decider and checks the answer: `Err` with a reason, or a review with a response
/// for the request's uid. Returns whether the request was allowed (`None` for `Err`).
fn check(body: &[u8]) -> Result<Option<bool>, TestCaseError> {
    let f = fuzz();
    let answer = f.rt.block_on(f.decider.review(body));
    let (review, reason) = match answer {
        Err(message) => {
            prop_assert!(!message.to_string().is_empty(), "an Err says why");
            return Ok(None);
        }
        Ok(answer) => answer,
    };
    let sent: Value = serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("accepted a body that is not JSON ({e})")))?;
    let response = review.response.as_ref();
    prop_assert!(response.is_some(), "an answer carries a response");
    let response = response.unwrap();
    prop_assert!(
        review.request.is_none(),
        "the answer does not send the request back"
    );
    prop_assert_eq!(
        Some(response.uid.as_str()),
        sent["request"]["uid"].as_str(),
        "the response echoes the request's uid"
    );
    if response.allowed {
        prop_assert_eq!(reason, "allowed");
    } else {
        prop_assert_ne!(reason, "allowed");
        prop_assert!(
            response.result.message.starts_with("roster: "),
            "a denial says why: {:?}",
            response.result.message
        );
    }
    // What axum sends back must serialize.
    let out = serde_json::to_vec(&review);
    prop_assert!(out.is_ok(), "the answer serializes: {:?}", out.err());
    Ok(Some(response.allowed))
}

// ---------------------------------------------------------------------------------------------
// Strategies.

/// Strings the rules care about, strings that break naive code, and (with `huge`) very long ones.
fn interesting_string() -> impl Strategy<Value = String> {
    strings(true)
}

fn strings(huge: bool) -> impl Strategy<Value = String> {
    let fixed: Vec<String> = [
        "",
        "owner",
        "admin",
        "member",
        "viewer",
        "moderator",
        "Owner",
        "Membership",
        "Invite",
        "Team",
        "Organization",
        "ConfigMap",
        "CREATE",
        "UPDATE",
        "DELETE",
        "CONNECT",
        "roster.dev",
        "v1alpha1",
        "admission.k8s.io/v1",
        "AdmissionReview",
        "system:masters",
        OWNER,
        ADMIN,
        MEMBER,
        BEA,
        "sam@selfjoin.example",
        "inv",
        "org",
        "team",
        "0s",
        "-1h",
        "1h-5h",
        "+1h",
        "99999999999999999999h",
        "1e308h",
        "NaNh",
        "infh",
        "9223372036854775807s",
        "1.5h30m",
        "2562047h47m16.854775807s",
        "1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h",
        "\u{0}",
        "\u{feff}",
        "ABCD-EFGH-JKLM-NPQR",
        "é",
        "🦀",
        "../../etc/passwd",
        "a/b",
        "kube-system",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    prop_oneof![
        3 => prop::sample::select(fixed),
        2 => "\\PC{0,40}",
        1 => "[0-9]{1,30}(\\.[0-9]{1,5})?(ns|us|µs|ms|s|m|h)",
        (huge as u32) => ("[a-zé🦀]", 10_000usize..300_000).prop_map(|(c, n)| c.repeat(n)),
    ]
}

fn leaf(huge: bool) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        strings(huge).prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "apiVersion",
            "kind",
            "request",
            "response",
            "uid",
            "group",
            "version",
            "resource",
            "operation",
            "name",
            "namespace",
            "userInfo",
            "username",
            "groups",
            "object",
            "oldObject",
            "dryRun",
            "metadata",
            "spec",
            "status",
            "role",
            "user",
            "invite",
            "code",
            "members",
            "policy",
            "access",
            "ttl",
            "email",
            "maxUses",
            "revoked",
        ])
        .prop_map(String::from),
        "\\PC{0,12}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf(false).prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One change to a valid review.
#[derive(Clone, Debug)]
enum Mutation {
    Remove,
    Replace(Value),
    /// Wraps the value in an array or object, a classic wrong type.
    Wrap(bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::Remove),
        4 => leaf(true).prop_map(Mutation::Replace),
        1 => json_value().prop_map(Mutation::Replace),
        1 => any::<bool>().prop_map(Mutation::Wrap),
    ]
}

/// Every path in a JSON value (object keys and array indexes).
fn paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(json!(k));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(json!(i));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn apply_mutation(root: &mut Value, path: &[Value], m: &Mutation) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut parent = &mut *root;
    for seg in parent_path {
        let next = match (parent, seg) {
            (Value::Object(o), Value::String(k)) => o.get_mut(k),
            (Value::Array(a), Value::Number(i)) => a.get_mut(i.as_u64().unwrap() as usize),
            _ => None,
        };
        match next {
            Some(n) => parent = n,
            None => return, // an earlier mutation removed the way
        }
    }
    match (parent, last) {
        (Value::Object(o), Value::String(k)) => match m {
            Mutation::Remove => {
                o.remove(k);
            }
            Mutation::Replace(v) => {
                o.insert(k.clone(), v.clone());
            }
            Mutation::Wrap(array) => {
                if let Some(old) = o.remove(k) {
                    o.insert(
                        k.clone(),
                        if *array {
                            json!([old])
                        } else {
                            json!({ "v": old })
                        },
                    );
                }
            }
        },
        (Value::Array(a), Value::Number(i)) => {
            let i = i.as_u64().unwrap() as usize;
            if i < a.len() {
                match m {
                    Mutation::Remove => {
                        a.remove(i);
                    }
                    Mutation::Replace(v) => a[i] = v.clone(),
                    Mutation::Wrap(array) => {
                        let old = a[i].take();
                        a[i] = if *array {
                            json!([old])
                        } else {
                            json!({ "v": old })
                        };
                    }
                }
            }
        }
        _ => {}
    }
}

/// A valid review with 1 to 3 mutations, most of them inside the objects.
fn mutated_review() -> impl Strategy<Value = Value> {
    let f = fuzz();
    let bases = bases(&f.ns, &f.code);
    (
        prop::sample::select(bases),
        prop::collection::vec(
            (any::<Index>(), prop::bool::weighted(0.75), mutation()),
            1..4,
        ),
    )
        .prop_map(|(mut review, mutations)| {
            for (index, in_objects, m) in mutations {
                let mut all = Vec::new();
                paths(&review, &mut Vec::new(), &mut all);
                let inside: Vec<Vec<Value>> = all
                    .iter()
                    .filter(|p| {
                        p.len() > 2 && (p[1] == json!("object") || p[1] == json!("oldObject"))
                    })
                    .cloned()
                    .collect();
                let pool = if in_objects && !inside.is_empty() {
                    &inside
                } else {
                    &all
                };
                if !pool.is_empty() {
                    let path = pool[index.index(pool.len())].clone();
                    apply_mutation(&mut review, &path, &m);
                }
            }
            review
        })
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON")
}

// ---------------------------------------------------------------------------------------------
// The properties.

#[test]
fn every_valid_base_review_is_answered_for_its_uid() {
    let f = fuzz();
    let mut decisions = Vec::new();
    for review in bases(&f.ns, &f.code) {
        let uid = review["request"]["uid"].as_str().unwrap().to_string();
        let allowed = check(&body(&review))
            .unwrap_or_else(|e| panic!("{uid}: {e}"))
            .unwrap_or_else(|| panic!("{uid}: a valid review is not Err"));
        decisions.push((uid, allowed));
    }
    // The bases reach the rules with a populated organization: these decisions need it.
    let expected = [
        ("uid-mem-create", true),
        ("uid-mem-redeem", true),
        ("uid-mem-demote-owner", false), // LastOwner, from a fresh read
        ("uid-mem-promote", false),      // AdminLimit
        ("uid-mem-leave", true),
        ("uid-mem-remove-owner", false), // LastOwner binds platform principals
        ("uid-inv-create", true),
        ("uid-inv-revoke", true),
        ("uid-inv-delete", false), // RoleTooLow
        ("uid-team-create", true),
        ("uid-team-transfer", true),
        ("uid-team-delete", true),
        ("uid-org-create", false), // OrganizationExists
        ("uid-org-update", true),
        ("uid-org-delete", true),
        ("uid-configmap", true),
    ];
    let expected: Vec<(String, bool)> = expected.iter().map(|(u, a)| (u.to_string(), *a)).collect();
    assert_eq!(decisions, expected);
}

#[test]
fn a_review_without_a_request_or_not_a_review_is_err() {
    for body in [
        &b""[..],
        b"null",
        b"{}",
        b"[]",
        b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
        b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":null}",
        b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{}}",
    ] {
        let f = fuzz();
        assert!(
            f.rt.block_on(f.decider.review(body)).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_decider_whose_caches_are_still_syncing_does_not_decide_from_nothing() {
    let f = fuzz();
    f.rt.block_on(async {
        let client = support::admin_client().await;
        let caches = Caches::start(
            &client,
            &Scope {
                namespaces: vec![f.ns.clone()],
            },
        );
        let decider = Decider::new(caches, Config::default(), client);
        // Asked at once, before the caches have listed anything: a non-member removing a member
        // must be refused as a non-member, not admitted as if the namespace held no organization.
        let old = roster_object(
            &f.ns,
            "Membership",
            "member",
            json!({ "user": MEMBER, "role": "member" }),
        );
        let request = review(
            &f.ns,
            "uid-early",
            ("roster.dev", "Membership"),
            "DELETE",
            "nobody@example.com",
            &["system:authenticated"],
            None,
            Some(old),
        );
        let (answer, reason) = decider
            .review(&body(&request))
            .await
            .expect("a valid review");
        let response = answer.response.expect("a response");
        assert!(!response.allowed, "admitted: {reason}");
        assert_eq!(reason, "NotAMember", "{}", response.result.message);
    });
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes)?;
    }

    #[test]
    fn random_json_never_panics(value in json_value()) {
        check(&body(&value))?;
    }

    #[test]
    fn random_json_requests_never_panic(request in json_value(), api_version in prop::option::of(interesting_string())) {
        let mut review = json!({ "kind": "AdmissionReview", "request": request });
        if let Some(v) = api_version {
            review["apiVersion"] = json!(v);
        }
        check(&body(&review))?;
    }

    #[test]
    fn mutated_reviews_never_panic_and_echo_the_uid(review in mutated_review()) {
        check(&body(&review))?;
    }

    #[test]
    fn invite_ttls_never_panic(ttl in prop_oneof![
        "[-+]?[0-9]{1,25}(\\.[0-9]{0,5})?(ns|us|µs|ms|s|m|h)([-+]?[0-9]{1,25}(\\.[0-9]{1,5})?(ns|us|ms|s|m|h)){0,3}",
        interesting_string(),
    ]) {
        let f = fuzz();
        let mut review = bases(&f.ns, &f.code).remove(6);
        prop_assert_eq!(review["request"]["uid"].as_str(), Some("uid-inv-create"));
        review["request"]["object"]["spec"]["ttl"] = json!(ttl);
        prop_assert_eq!(check(&body(&review))?, Some(true), "an admin's member invite is allowed whatever its ttl");
    }

    #[test]
    fn a_valid_review_for_a_kind_roster_does_not_own_is_allowed(
        kind in "[A-Z][a-zA-Z]{0,20}".prop_filter("not a roster kind", |k| {
            !["Membership", "Invite", "Team", "Organization"].contains(&k.as_str())
        }),
        group in prop_oneof![Just(String::new()), Just("apps".to_string()), "[a-z]{1,10}\\.example"],
        operation in prop::sample::select(vec!["CREATE", "UPDATE", "DELETE", "CONNECT"]),
        user in interesting_string(),
        data in json_value(),
    ) {
        let f = fuzz();
        let object = json!({ "apiVersion": "v1", "kind": kind, "metadata": { "name": "x", "namespace": f.ns }, "data": data });
        let (object, old) = match operation {
            "CREATE" | "CONNECT" => (Some(object), None),
            "UPDATE" => (Some(object.clone()), Some(object)),
            _ => (None, Some(object)),
        };
        let review = review(&f.ns, "uid-other", (&group, &kind), operation, &user, &["system:authenticated"], object, old);
        prop_assert_eq!(check(&body(&review))?, Some(true));
    }
}
