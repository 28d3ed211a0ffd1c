//! The CRDs refuse bad objects on their own (docs/design.md §3: CEL in the CRDs holds even when the
//! webhook is down), and every refusal names the field it is about.
//!
//! Each case is checked twice:
//! - offline, with kube's client-side CEL validator (`kube::core::cel::Validator`, i.e. kube-cel) run
//!   against the openAPIV3Schema of the CRD that `roster::crds::all()` generates;
//! - on a real kube-apiserver (tests/support), which must answer 422 with the expected text.
//!
//! kube-cel evaluates only the `x-kubernetes-validations` (CEL) rules, after applying schema defaults:
//! it does not check the structural schema (`enum`, `minimum`/`maximum`, `minLength`/`maxLength`,
//! `minItems`/`maxItems`, `required`). Cases that only the structural schema rejects therefore carry
//! `offline: None`, and for them we assert that the offline validator *accepts* the object: that pins
//! down which layer rejects what, so a case cannot silently move from one layer to the other.
//!
//! No webhook runs in this test: everything here is the API server and the CRDs alone.

mod support;

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::core::cel::Validator;
use serde_json::{Value, json};

const GROUP: &str = "roster.dev";
const VERSION: &str = "v1alpha1";
const KINDS: [&str; 4] = ["Organization", "Membership", "Invite", "Team"];

/// The openAPIV3Schema of each kind, as generated from the Rust types.
fn schemas() -> BTreeMap<String, Value> {
    roster::crds::all()
        .into_iter()
        .map(|(_, crd)| {
            let kind = crd.spec.names.kind.clone();
            let version = crd
                .spec
                .versions
                .iter()
                .find(|v| v.name == VERSION)
                .unwrap_or_else(|| panic!("{kind} serves {VERSION}"));
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .unwrap_or_else(|| panic!("{kind} has an openAPIV3Schema"));
            (kind, serde_json::to_value(schema).expect("schema to JSON"))
        })
        .collect()
}

fn object(kind: &str, spec: Value) -> Value {
    json!({ "apiVersion": format!("{GROUP}/{VERSION}"), "kind": kind, "metadata": {}, "spec": spec })
}
fn org(spec: Value) -> Value {
    object("Organization", spec)
}
fn mem(spec: Value) -> Value {
    object("Membership", spec)
}
fn inv(spec: Value) -> Value {
    object("Invite", spec)
}
fn team(spec: Value) -> Value {
    object("Team", spec)
}
fn named(mut object: Value, name: &str) -> Value {
    object["metadata"]["name"] = json!(name);
    object
}

/// A team spec with a valid owner followed by `more` members.
fn team_with(more: Value) -> Value {
    let mut members = vec![json!({ "user": "owner@acme.example", "role": "owner" })];
    members.extend(more.as_array().expect("a list of members").iter().cloned());
    team(json!({ "members": members }))
}

/// One object that must be refused.
struct Bad {
    label: &'static str,
    object: Value,
    /// Must appear in the API server's message; always names the field. Parts separated by " … "
    /// appear in that order with anything between: how the API server shows an object's value
    /// differs by version (`Invalid value: "object": ` on 1.30, nothing on 1.37).
    server: &'static str,
    /// Must appear in one of kube-cel's errors (`field.path: message`); `None` when only the structural
    /// schema rejects the object, in which case kube-cel must accept it (see the module comment).
    offline: Option<&'static str>,
    /// Must appear in neither answer (a rule that fires with a message that does not apply).
    not: Option<&'static str>,
}

/// Refused by a CEL rule: the same message offline and on the server.
fn cel(label: &'static str, object: Value, message: &'static str) -> Bad {
    Bad {
        label,
        object,
        server: message,
        offline: Some(message),
        not: None,
    }
}

/// Refused by the structural schema only: kube-cel accepts it, the API server does not.
fn schema(label: &'static str, object: Value, server: &'static str) -> Bad {
    Bad {
        label,
        object,
        server,
        offline: None,
        not: None,
    }
}

fn bad_objects() -> Vec<Bad> {
    let long = |n: usize| "x".repeat(n);
    // 34 characters of a valid Go duration: only maxLength (32) is wrong with it.
    let long_ttl = format!("{}1s", "1h".repeat(16));
    let domains = |n: usize| -> Vec<String> { (0..n).map(|i| format!("ns-{i}")).collect() };
    let many_members: Vec<Value> = (0..128)
        .map(|i| json!({ "user": format!("u{i}@acme.example"), "role": "member" }))
        .collect();

    vec![
        // ---- Organization ----
        schema(
            "unknown dataRegion",
            org(json!({ "dataRegion": "Mars" })),
            "spec.dataRegion: Unsupported value: \"Mars\"",
        ),
        schema(
            "minOwners 0",
            org(json!({ "policy": { "minOwners": 0 } })),
            "spec.policy.minOwners in body should be greater than or equal to 1",
        ),
        schema(
            "minOwners above 100",
            org(json!({ "policy": { "minOwners": 101 } })),
            "spec.policy.minOwners in body should be less than or equal to 100",
        ),
        cel(
            "maxOwners below minOwners",
            org(json!({ "policy": { "minOwners": 3, "maxOwners": 2 } })),
            "spec.policy.maxOwners must be at least spec.policy.minOwners",
        ),
        cel(
            "maxOwners below the default minOwners",
            org(json!({ "policy": { "minOwners": 2, "maxOwners": 1 } })),
            "spec.policy.maxOwners must be at least spec.policy.minOwners",
        ),
        Bad {
            label: "maxMembers 0",
            object: org(json!({ "policy": { "maxMembers": 0 } })),
            server: "spec.policy.maxMembers in body should be greater than or equal to 1",
            // 0 seats are also fewer than the (defaulted) one owner.
            offline: Some("spec.policy.maxMembers must be at least spec.policy.minOwners"),
            not: None,
        },
        cel(
            "maxMembers below minOwners",
            org(json!({ "policy": { "minOwners": 3, "maxMembers": 2 } })),
            "spec.policy.maxMembers must be at least spec.policy.minOwners",
        ),
        schema(
            "negative maxRemovalsPerHour",
            org(json!({ "policy": { "maxRemovalsPerHour": -1 } })),
            "spec.policy.maxRemovalsPerHour in body should be greater than or equal to 0",
        ),
        cel(
            "zero defaultTTL",
            org(json!({ "policy": { "invites": { "defaultTTL": "0s" } } })),
            "spec.policy.invites.defaultTTL must be a positive duration",
        ),
        cel(
            "negative defaultTTL",
            org(json!({ "policy": { "invites": { "defaultTTL": "-1h" } } })),
            "spec.policy.invites.defaultTTL must be a positive duration",
        ),
        cel(
            "garbage defaultTTL",
            org(json!({ "policy": { "invites": { "defaultTTL": "a week" } } })),
            "spec.policy.invites.defaultTTL must be a positive duration",
        ),
        cel(
            "defaultTTL in days (not a Go duration)",
            org(json!({ "policy": { "invites": { "defaultTTL": "7d" } } })),
            "spec.policy.invites.defaultTTL must be a positive duration",
        ),
        cel(
            "unitless maxTTL",
            org(json!({ "policy": { "invites": { "maxTTL": "0" } } })),
            "spec.policy.invites.maxTTL must be a positive duration",
        ),
        cel(
            "negative maxTTL",
            org(json!({ "policy": { "invites": { "defaultTTL": "1h", "maxTTL": "-720h" } } })),
            "spec.policy.invites.maxTTL must be a positive duration",
        ),
        cel(
            "garbage maxTTL",
            org(json!({ "policy": { "invites": { "maxTTL": "forever" } } })),
            "spec.policy.invites.maxTTL must be a positive duration",
        ),
        cel(
            "defaultTTL above maxTTL",
            org(json!({ "policy": { "invites": { "defaultTTL": "800h", "maxTTL": "720h" } } })),
            "spec.policy.invites.defaultTTL must not exceed spec.policy.invites.maxTTL",
        ),
        cel(
            "defaultTTL (defaulted 168h) above a short maxTTL",
            org(json!({ "policy": { "invites": { "maxTTL": "24h" } } })),
            "spec.policy.invites.defaultTTL must not exceed spec.policy.invites.maxTTL",
        ),
        schema(
            "defaultTTL too long",
            org(json!({ "policy": { "invites": { "defaultTTL": long_ttl } } })),
            "spec.policy.invites.defaultTTL: Too long",
        ),
        schema(
            "selfJoin role admin",
            org(
                json!({ "policy": { "selfJoin": { "emailDomains": ["acme.example"], "role": "admin" } } }),
            ),
            "spec.policy.selfJoin.role: Unsupported value: \"admin\"",
        ),
        cel(
            "selfJoin domain with @",
            org(json!({ "policy": { "selfJoin": { "emailDomains": ["@acme.example"] } } })),
            "spec.policy.selfJoin.emailDomains must be lowercase domain names",
        ),
        cel(
            "selfJoin domain in upper case",
            org(
                json!({ "policy": { "selfJoin": { "emailDomains": ["acme.example", "Acme.Example"] } } }),
            ),
            "spec.policy.selfJoin.emailDomains must be lowercase domain names",
        ),
        cel(
            "selfJoin domain without a dot",
            org(json!({ "policy": { "selfJoin": { "emailDomains": ["localhost"] } } })),
            "spec.policy.selfJoin.emailDomains must be lowercase domain names",
        ),
        schema(
            "selfJoin without domains",
            org(json!({ "policy": { "selfJoin": { "emailDomains": [] } } })),
            "spec.policy.selfJoin.emailDomains in body should have at least 1 items",
        ),
        schema(
            "selfJoin with 51 domains",
            org(json!({ "policy": { "selfJoin": {
                "emailDomains": (0..51).map(|i| format!("d{i}.example")).collect::<Vec<_>>()
            } } })),
            "spec.policy.selfJoin.emailDomains: Too many: 51: must have at most 50 items",
        ),
        cel(
            "website with another scheme",
            org(json!({ "profile": { "website": "ftp://acme.example" } })),
            "spec.profile.website must be an http:// or https:// URL",
        ),
        cel(
            "website that is only a scheme",
            org(json!({ "profile": { "website": "https://" } })),
            "spec.profile.website must be an http:// or https:// URL",
        ),
        cel(
            "website with a space",
            org(json!({ "profile": { "website": "https://acme example.org" } })),
            "spec.profile.website must be an http:// or https:// URL",
        ),
        schema(
            "profile description too long",
            org(json!({ "profile": { "description": long(4097) } })),
            "spec.profile.description: Too long",
        ),
        schema(
            "displayName too long",
            org(json!({ "displayName": long(257) })),
            "spec.displayName: Too long",
        ),
        schema(
            "empty billingAdmin",
            org(json!({ "billingAdmin": "" })),
            "spec.billingAdmin in body should be at least 1 chars long",
        ),
        cel(
            "duplicate access namespace",
            org(json!({ "access": { "namespaces": ["web", "db", "web"] } })),
            "spec.access.namespaces must not list a namespace twice",
        ),
        schema(
            "101 access namespaces",
            org(json!({ "access": { "namespaces": domains(101) } })),
            "spec.access.namespaces: Too many: 101: must have at most 100 items",
        ),
        schema(
            "access namespace name too long",
            org(json!({ "access": { "namespaces": [long(64)] } })),
            "spec.access.namespaces[0]: Too long",
        ),
        schema(
            "empty clusterRole",
            org(json!({ "access": { "clusterRoles": { "member": "" } } })),
            "spec.access.clusterRoles.member in body should be at least 1 chars long",
        ),
        cel(
            "Organization name over 63 characters",
            named(org(json!({})), &"o".repeat(64)),
            "metadata.name: an Organization name must be at most 63 characters",
        ),
        // ---- Membership ----
        schema(
            "unknown membership role",
            mem(json!({ "user": "ada@acme.example", "role": "superuser" })),
            "spec.role: Unsupported value: \"superuser\"",
        ),
        schema(
            "membership without role",
            mem(json!({ "user": "ada@acme.example" })),
            "spec.role: Required value",
        ),
        cel(
            "membership with user and group",
            mem(json!({ "user": "ada@acme.example", "group": "eng", "role": "member" })),
            "set exactly one of spec.user or spec.group",
        ),
        cel(
            "membership with neither user nor group",
            mem(json!({ "role": "member" })),
            "set exactly one of spec.user or spec.group",
        ),
        cel(
            "invite on a group membership",
            mem(
                json!({ "group": "eng", "role": "member", "invite": { "name": "i", "proof": format!("hmac-sha256:{}", "0".repeat(64)) } }),
            ),
            "spec.invite: only a user Membership can redeem an invite",
        ),
        cel(
            "membership email without @",
            mem(json!({ "user": "ada", "role": "member", "email": "ada" })),
            "spec.email must be an e-mail address",
        ),
        cel(
            "membership email without a domain dot",
            mem(json!({ "user": "ada", "role": "member", "email": "ada@localhost" })),
            "spec.email must be an e-mail address",
        ),
        cel(
            "membership email with a space",
            mem(json!({ "user": "ada", "role": "member", "email": "ada lovelace@acme.example" })),
            "spec.email must be an e-mail address",
        ),
        schema(
            "empty membership user",
            mem(json!({ "user": "", "role": "member" })),
            "spec.user in body should be at least 1 chars long",
        ),
        schema(
            "membership group too long",
            mem(json!({ "group": long(254), "role": "member" })),
            "spec.group: Too long",
        ),
        cel(
            "membership invite without a proof",
            mem(json!({ "user": "ada", "role": "member", "invite": { "name": "i" } })),
            "spec.invite.proof is required",
        ),
        cel(
            "membership invite carrying the code itself",
            mem(
                json!({ "user": "ada", "role": "member", "invite": { "name": "i", "proof": "ABCD-EFGH-JKLM-NPQR" } }),
            ),
            "spec.invite.proof must be the proof",
        ),
        cel(
            "membership invite proof in upper case",
            mem(
                json!({ "user": "ada", "role": "member", "invite": { "name": "i", "proof": format!("hmac-sha256:{}", "A".repeat(64)) } }),
            ),
            "spec.invite.proof must be the proof",
        ),
        cel(
            "membership for system:anonymous",
            mem(json!({ "user": "system:anonymous", "role": "viewer" })),
            "spec.user: system:anonymous is every unauthenticated request",
        ),
        cel(
            "membership for group system:unauthenticated",
            mem(json!({ "group": "system:unauthenticated", "role": "viewer" })),
            "spec.group: system:unauthenticated is every unauthenticated request",
        ),
        // ---- Invite ----
        cel(
            "invite for owner",
            inv(json!({ "role": "owner" })),
            "spec.role: an invite cannot grant owner",
        ),
        cel(
            "open admin invite",
            inv(json!({ "role": "admin" })),
            "spec.email: an admin invite must name the person it is for",
        ),
        schema(
            "unknown invite role",
            inv(json!({ "role": "root" })),
            "spec.role: Unsupported value: \"root\"",
        ),
        schema(
            "maxUses 0",
            inv(json!({ "role": "member", "maxUses": 0 })),
            "spec.maxUses in body should be greater than or equal to 1",
        ),
        schema(
            "maxUses above 10000",
            inv(json!({ "role": "member", "maxUses": 10001 })),
            "spec.maxUses in body should be less than or equal to 10000",
        ),
        cel(
            "invite email that is not an address",
            inv(json!({ "role": "member", "email": "not an email" })),
            "spec.email must be an e-mail address",
        ),
        cel(
            "empty invite email (an open invite leaves it out)",
            inv(json!({ "role": "member", "email": "" })),
            "spec.email must be an e-mail address",
        ),
        schema(
            "invite email too long",
            inv(json!({ "role": "member", "email": format!("{}@acme.example", long(250)) })),
            "spec.email: Too long",
        ),
        cel(
            "negative invite ttl",
            inv(json!({ "role": "member", "ttl": "-1h" })),
            "spec.ttl must be a positive duration",
        ),
        cel(
            "zero invite ttl",
            inv(json!({ "role": "member", "ttl": "0s" })),
            "spec.ttl must be a positive duration",
        ),
        cel(
            "garbage invite ttl",
            inv(json!({ "role": "member", "ttl": "soon" })),
            "spec.ttl must be a positive duration",
        ),
        cel(
            "invite ttl in days",
            inv(json!({ "role": "member", "ttl": "3d" })),
            "spec.ttl must be a positive duration",
        ),
        schema(
            "invite ttl too long",
            inv(json!({ "role": "member", "ttl": long_ttl })),
            "spec.ttl: Too long",
        ),
        // ---- Team ----
        cel(
            "team with two owners",
            team_with(json!([{ "user": "bob@acme.example", "role": "owner" }])),
            "spec.members must have exactly one member with role owner",
        ),
        cel(
            "team with no owner",
            team(json!({ "members": [{ "user": "bob@acme.example", "role": "admin" }] })),
            "spec.members must have exactly one member with role owner",
        ),
        Bad {
            label: "team without members",
            object: team(json!({ "members": [] })),
            server: "spec.members in body should have at least 1 items",
            offline: Some("spec.members must have exactly one member with role owner"),
            not: None,
        },
        schema(
            "team without a members list",
            team(json!({ "displayName": "Platform" })),
            "spec.members: Required value",
        ),
        cel(
            "team with the same user twice",
            team_with(json!([
                { "user": "bob@acme.example", "role": "member" },
                { "user": "bob@acme.example", "role": "viewer" }
            ])),
            "spec.members must not list the same user or group twice",
        ),
        cel(
            "team owner listed again",
            team_with(json!([{ "user": "owner@acme.example", "role": "member" }])),
            "spec.members must not list the same user or group twice",
        ),
        cel(
            "team with the same group twice",
            team_with(json!([
                { "group": "eng", "role": "member" },
                { "group": "eng", "role": "admin" }
            ])),
            "spec.members must not list the same user or group twice",
        ),
        Bad {
            label: "team member with user and group",
            object: team_with(
                json!([{ "user": "bob@acme.example", "group": "eng", "role": "member" }]),
            ),
            // Both answers point at the offending entry by index.
            server: "spec.members[1]: Invalid value: … spec.members[]: set exactly one of user or group",
            offline: Some("spec.members[1]: spec.members[]: set exactly one of user or group"),
            not: None,
        },
        Bad {
            label: "team member with neither user nor group",
            object: team_with(json!([{ "role": "member" }])),
            server: "spec.members[1]: Invalid value: … spec.members[]: set exactly one of user or group",
            offline: Some("spec.members[1]: spec.members[]: set exactly one of user or group"),
            // Nobody is listed twice: the uniqueness rule must not claim so.
            not: Some("twice"),
        },
        schema(
            "unknown team role",
            team_with(json!([{ "user": "bob@acme.example", "role": "lead" }])),
            "spec.members[1].role: Unsupported value: \"lead\"",
        ),
        schema(
            "129 team members",
            team_with(json!(many_members)),
            "spec.members: Too many: 129: must have at most 128 items",
        ),
        cel(
            "team colour by name",
            team(json!({ "color": "blue", "members": [{ "user": "o", "role": "owner" }] })),
            "spec.color must be a hex colour",
        ),
        cel(
            "team colour with five digits",
            team(json!({ "color": "#12345", "members": [{ "user": "o", "role": "owner" }] })),
            "spec.color must be a hex colour",
        ),
        schema(
            "team description too long",
            team(
                json!({ "description": long(4097), "members": [{ "user": "o", "role": "owner" }] }),
            ),
            "spec.description: Too long",
        ),
        schema(
            "empty team access namespace",
            team(
                json!({ "access": { "namespaces": [""] }, "members": [{ "user": "o", "role": "owner" }] }),
            ),
            "spec.access.namespaces[0] in body should be at least 1 chars long",
        ),
    ]
}

/// Objects at the edges of what is allowed; each must pass both checks.
fn good_objects() -> Vec<(&'static str, Value)> {
    vec![
        ("empty organization (all defaults)", org(json!({}))),
        (
            "organization with every field",
            named(
                org(json!({
                    "displayName": "Acme Research",
                    "profile": { "website": "https://acme.example/about?x=1", "location": "Berlin",
                                 "sector": "Education", "university": "TU", "description": "We research." },
                    "dataRegion": "EU",
                    "policy": {
                        "minOwners": 2, "maxOwners": 2, "maxMembers": 2, "maxRemovalsPerHour": 0,
                        "invites": { "defaultTTL": "1h30m", "maxTTL": "1h30m", "allowOpenInvites": false },
                        "selfJoin": { "emailDomains": ["acme.example", "mail.acme-2.example"], "role": "viewer" }
                    },
                    "billingAdmin": "ada@acme.example",
                    "access": { "namespaces": ["web", "db"], "clusterRoles": { "member": "view" } },
                    "deletionProtection": true
                })),
                &"o".repeat(63),
            ),
        ),
        (
            "organization with an http website",
            org(json!({ "profile": { "website": "http://localhost:8080" } })),
        ),
        (
            "user membership that redeems an invite",
            mem(
                json!({ "user": "ada@acme.example", "role": "admin", "email": "ada@acme.example",
                        "invite": { "name": "welcome", "proof": "hmac-sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" } }),
            ),
        ),
        (
            "group membership",
            mem(json!({ "group": "oidc:eng", "role": "viewer" })),
        ),
        (
            "open multi-use invite",
            inv(json!({ "role": "viewer", "maxUses": 10000, "ttl": "1.5h" })),
        ),
        (
            "personal invite",
            inv(
                json!({ "role": "admin", "email": "bob@acme.example", "ttl": "72h", "revoked": true }),
            ),
        ),
        (
            "team with user and group members",
            team_with(json!([
                { "user": "bob@acme.example", "role": "admin" },
                { "group": "eng", "role": "member" },
                { "group": "bob@acme.example", "role": "viewer" }
            ])),
        ),
        (
            "team with 128 members and a colour",
            team(json!({
                "color": "#1f6fEB",
                "active": false,
                "members": (0..128)
                    .map(|i| json!({ "user": format!("u{i}"), "role": if i == 0 { "owner" } else { "member" } }))
                    .collect::<Vec<_>>()
            })),
        ),
    ]
}

fn kind_of(object: &Value) -> &str {
    object["kind"].as_str().expect("object has a kind")
}

/// kube-cel's verdict: the errors as `field.path: message`.
fn offline(
    schemas: &BTreeMap<String, Value>,
    object: &Value,
    old: Option<&Value>,
) -> Result<(), Vec<String>> {
    let schema = &schemas[kind_of(object)];
    Validator::new()
        .validate(schema, object, old)
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
}

/// The API server's refusal as (HTTP code, message), or `None` when it accepted the request.
fn refusal<T>(result: Result<T, kube::Error>) -> Option<(u16, String)> {
    match result {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some((status.code, status.message.clone())),
        Err(other) => Some((0, format!("not an API error: {other}"))),
    }
}

/// Checks one refused object (or update) against both validators; returns what went wrong.
/// Whether `message` holds the parts of `expected` (separated by " … ") in order.
fn says(message: &str, expected: &str) -> bool {
    let mut rest = message;
    expected.split(" … ").all(|part| match rest.find(part) {
        Some(at) => {
            rest = &rest[at + part.len()..];
            true
        }
        None => false,
    })
}

fn judge(
    label: &str,
    offline_result: Result<(), Vec<String>>,
    server: Option<(u16, String)>,
    expect_server: &str,
    expect_offline: Option<&str>,
    not: Option<&str>,
) -> Vec<String> {
    let mut problems = Vec::new();
    match (expect_offline, &offline_result) {
        (Some(want), Err(errors)) if errors.iter().any(|e| e.contains(want)) => {}
        (Some(want), _) => problems.push(format!(
            "{label}: offline: want an error containing {want:?}, got {offline_result:?}"
        )),
        (None, Ok(())) => {}
        (None, Err(errors)) => problems.push(format!(
            "{label}: offline: a schema-only case, but kube-cel refused it: {errors:?}"
        )),
    }
    match &server {
        Some((422, message)) if says(message, expect_server) => {}
        other => problems.push(format!(
            "{label}: server: want 422 containing {expect_server:?}, got {other:?}"
        )),
    }
    if let Some(not) = not {
        if let Err(errors) = &offline_result
            && errors.iter().any(|e| e.contains(not))
        {
            problems.push(format!(
                "{label}: offline: must not say {not:?}: {errors:?}"
            ));
        }
        if let Some((_, message)) = &server
            && message.contains(not)
        {
            problems.push(format!("{label}: server: must not say {not:?}: {message}"));
        }
    }
    problems
}

fn api(client: &kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, VERSION, kind));
    Api::namespaced_with(client.clone(), ns, &resource)
}

#[tokio::test]
async fn bad_objects_are_refused_offline_and_by_the_api_server_naming_the_field() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "cel-create").await;
    let schemas = schemas();
    assert_eq!(
        schemas.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut kinds = KINDS.to_vec();
            kinds.sort();
            kinds
        },
        "one schema per kind"
    );

    let cases = bad_objects();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut kinds_covered = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        kinds_covered.insert(kind_of(&case.object).to_string());
        // Every expectation names a field path (or the object's name) that the message is about.
        assert!(
            case.server.contains("spec.") || case.server.contains("metadata.name"),
            "{}: the expected server text names no field: {:?}",
            case.label,
            case.server
        );
        let mut object = case.object;
        if object["metadata"].get("name").is_none() {
            object["metadata"]["name"] = json!(format!("bad-{i}"));
        }
        let offline_result = offline(&schemas, &object, None);
        let server = refusal(support::create_raw(&client, &ns, object).await);
        problems.extend(judge(
            case.label,
            offline_result,
            server,
            case.server,
            case.offline,
            case.not,
        ));
    }
    assert_eq!(kinds_covered.len(), KINDS.len(), "{kinds_covered:?}");
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test]
async fn valid_objects_pass_offline_and_on_the_api_server() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "cel-valid").await;
    let schemas = schemas();

    let mut problems = Vec::new();
    for (i, (label, mut object)) in good_objects().into_iter().enumerate() {
        if object["metadata"].get("name").is_none() {
            object["metadata"]["name"] = json!(format!("good-{i}"));
        }
        if let Err(errors) = offline(&schemas, &object, None) {
            problems.push(format!("{label}: offline refused it: {errors:?}"));
        }
        match support::create_raw(&client, &ns, object.clone()).await {
            Err(e) => problems.push(format!("{label}: server refused it: {e}")),
            Ok(created) => {
                // What the server stored (with its defaults) is valid too, also as an update of itself.
                let stored = serde_json::to_value(&created).expect("object to JSON");
                if let Err(errors) = offline(&schemas, &stored, Some(&stored)) {
                    problems.push(format!(
                        "{label}: offline refused the stored object: {errors:?}"
                    ));
                }
                if stored["spec"] == Value::Null {
                    problems.push(format!("{label}: the server stored no spec"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// An update from `old` to `new` (both specs).
struct Transition {
    label: &'static str,
    kind: &'static str,
    old: Value,
    new: Value,
    /// `None`: the update is allowed.
    refused_with: Option<&'static str>,
}

fn transitions() -> Vec<Transition> {
    let t = |label, kind, old, new, refused_with| Transition {
        label,
        kind,
        old,
        new,
        refused_with,
    };
    let invite_ref = json!({ "name": "welcome", "proof": "hmac-sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" });
    vec![
        t(
            "membership user changed",
            "Membership",
            json!({ "user": "ada@acme.example", "role": "member" }),
            json!({ "user": "eve@acme.example", "role": "member" }),
            Some("spec.user is immutable"),
        ),
        t(
            "membership user replaced by a group",
            "Membership",
            json!({ "user": "ada@acme.example", "role": "member" }),
            json!({ "group": "eng", "role": "member" }),
            Some("spec.user is immutable"),
        ),
        t(
            "membership group changed",
            "Membership",
            json!({ "group": "eng", "role": "member" }),
            json!({ "group": "system:masters", "role": "member" }),
            Some("spec.group is immutable"),
        ),
        t(
            "membership group replaced by a user",
            "Membership",
            json!({ "group": "eng", "role": "viewer" }),
            json!({ "user": "ada@acme.example", "role": "viewer" }),
            Some("spec.group is immutable"),
        ),
        t(
            "membership invite added",
            "Membership",
            json!({ "user": "ada@acme.example", "role": "member" }),
            json!({ "user": "ada@acme.example", "role": "member", "invite": invite_ref }),
            Some("spec.invite is immutable"),
        ),
        t(
            "membership invite removed",
            "Membership",
            json!({ "user": "ada@acme.example", "role": "member", "invite": invite_ref }),
            json!({ "user": "ada@acme.example", "role": "member" }),
            Some("spec.invite is immutable"),
        ),
        t(
            "membership invite code changed",
            "Membership",
            json!({ "user": "ada@acme.example", "role": "member", "invite": invite_ref }),
            json!({ "user": "ada@acme.example", "role": "member",
                    "invite": { "name": "welcome", "proof": "hmac-sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" } }),
            Some("spec.invite is immutable"),
        ),
        t(
            "invite un-revoked",
            "Invite",
            json!({ "role": "member", "revoked": true }),
            json!({ "role": "member", "revoked": false }),
            Some("spec.revoked cannot be set back to false"),
        ),
        t(
            "invite un-revoked by dropping the field (it defaults to false)",
            "Invite",
            json!({ "role": "member", "revoked": true }),
            json!({ "role": "member" }),
            Some("spec.revoked cannot be set back to false"),
        ),
        // Allowed updates: the transition rules must not get in the way.
        t(
            "membership role and profile changed",
            "Membership",
            json!({ "user": "ada@acme.example", "role": "member", "invite": invite_ref }),
            json!({ "user": "ada@acme.example", "role": "owner", "invite": invite_ref,
                    "displayName": "Ada", "email": "ada@acme.example" }),
            None,
        ),
        t(
            "group membership role changed",
            "Membership",
            json!({ "group": "eng", "role": "member" }),
            json!({ "group": "eng", "role": "viewer" }),
            None,
        ),
        t(
            "invite revoked",
            "Invite",
            json!({ "role": "member" }),
            json!({ "role": "member", "revoked": true }),
            None,
        ),
        t(
            "revoked invite edited",
            "Invite",
            json!({ "role": "member", "revoked": true }),
            json!({ "role": "viewer", "revoked": true, "maxUses": 5 }),
            None,
        ),
    ]
}

#[tokio::test]
async fn immutable_fields_and_revocation_are_enforced_on_update() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "cel-update").await;
    let schemas = schemas();

    let mut problems = Vec::new();
    let mut refused = 0;
    for (i, case) in transitions().into_iter().enumerate() {
        let mut old = object(case.kind, case.old);
        old["metadata"]["name"] = json!(format!("update-{i}"));
        let created = match support::create_raw(&client, &ns, old).await {
            Ok(created) => created,
            Err(e) => {
                problems.push(format!(
                    "{}: creating the old object failed: {e}",
                    case.label
                ));
                continue;
            }
        };
        let old = serde_json::to_value(&created).expect("object to JSON");
        let mut new = old.clone();
        new["spec"] = case.new;

        // The new object is valid on its own: only the transition (oldSelf) rules can refuse it.
        if let Err(errors) = offline(&schemas, &new, None) {
            problems.push(format!(
                "{}: offline refused the new object as a create: {errors:?}",
                case.label
            ));
        }
        let offline_result = offline(&schemas, &new, Some(&old));
        // `new` carries the resourceVersion the server returned, so this is a plain replace.
        let name = format!("update-{i}");
        let update: DynamicObject = serde_json::from_value(new).expect("DynamicObject");
        let server = refusal(
            api(&client, &ns, case.kind)
                .replace(&name, &PostParams::default(), &update)
                .await,
        );
        match case.refused_with {
            Some(message) => {
                refused += 1;
                problems.extend(judge(
                    case.label,
                    offline_result,
                    server,
                    message,
                    Some(message),
                    None,
                ));
            }
            None => {
                if let Err(errors) = offline_result {
                    problems.push(format!(
                        "{}: offline refused an allowed update: {errors:?}",
                        case.label
                    ));
                }
                if let Some(refusal) = server {
                    problems.push(format!(
                        "{}: server refused an allowed update: {refusal:?}",
                        case.label
                    ));
                }
            }
        }
    }
    assert!(refused >= 4, "only {refused} refused transitions");
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// `kubectl explain PATH`, once its output mentions `ready`. The API server publishes a new CRD's
/// OpenAPI a moment after the CRD is Established; until then `kubectl explain` answers with an empty
/// description or "couldn't find resource", so this polls (for at most 30 s) instead of sleeping.
async fn explain(path: &str, ready: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (ok, stdout, stderr) = support::kubectl(&["explain", path]);
        if ok && stdout.contains(ready) {
            return stdout;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl explain {path} did not mention {ready:?} within 30s:\n{stdout}\n{stderr}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn kubectl_explain_shows_the_documented_policy_fields() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;

    let stdout = explain("organization.spec.policy", "minOwners").await;
    // kubectl wraps descriptions; compare with the whitespace collapsed.
    let text = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for wanted in [
        "GROUP: roster.dev",
        "KIND: Organization",
        "VERSION: v1alpha1",
        "FIELD: policy <Object>",
        "Rules for owners, seats, invites, self-service joining and removals.",
        "minOwners <integer>",
        "The fewest effective owners the organization may have while it has members.",
        "maxOwners <integer>",
        "A target, not a wall",
        "maxMembers <integer>",
        "Seat limit: the most effective Memberships.",
        "invites <Object>",
        "selfJoin <Object>",
        "maxRemovalsPerHour <integer>",
    ] {
        assert!(
            text.contains(wanted),
            "{wanted:?} not in kubectl explain:\n{stdout}"
        );
    }

    let stdout = explain("invites.spec.revoked", "revoked").await;
    let text = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("When true the code no longer works. Cannot be undone."),
        "{stdout}"
    );
}
