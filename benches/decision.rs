//! Webhook-style decisions (authorize + invariant checks) for organizations of 100 and 100,000
//! members: the goal is a ratio near 1, because decisions use the index and never scan.
//! Also the controller's full recompute of one organization, which is allowed to scan.
//!
//! `cargo bench --bench decision` (or `make bench`).

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use roster::api::{
    Membership, MembershipPhase, MembershipSpec, MembershipStatus, OrgRole, Organization,
};
use roster::rules::{self, Actor, Config, Context, Operation, OrgIndex, OrgObjects};

fn org() -> Organization {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "acme", "namespace": "acme" },
        "spec": { "policy": { "maxOwners": 3 } }
    }))
    .unwrap()
}

/// An org of `n` effective members: two owners, some admins, the rest members and viewers.
fn members(n: usize) -> Vec<Membership> {
    (0..n)
        .map(|i| {
            let role = match i {
                0 | 1 => OrgRole::Owner,
                _ if i % 50 == 0 => OrgRole::Admin,
                _ if i % 3 == 0 => OrgRole::Viewer,
                _ => OrgRole::Member,
            };
            let mut m: Membership = serde_json::from_value(serde_json::json!({
                "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
                "metadata": { "name": format!("m{i}"), "namespace": "acme",
                              "creationTimestamp": Time(Timestamp::from_second(1_800_000_000 + i as i64).unwrap()) },
                "spec": { "user": format!("user{i}@acme.example"), "role": role }
            }))
            .unwrap();
            m.status = Some(MembershipStatus {
                phase: Some(MembershipPhase::Active),
                effective_role: Some(role),
                ..Default::default()
            });
            m
        })
        .collect()
}

fn decisions(c: &mut Criterion) {
    let config = Config::default();
    let ctx = Context {
        now: Timestamp::from_second(1_900_000_000).unwrap(),
        removals_last_hour: 0,
        namespace_deleting: false,
    };
    let mut group = c.benchmark_group("webhook_decision");
    for n in [100usize, 100_000] {
        let org = org();
        let ms = members(n);
        let index = OrgIndex::new(Some(&org), &ms, []);
        let admin = Actor::new("user50@acme.example", vec!["acme:staff".into()], &config);
        let owner = Actor::new("user0@acme.example", vec![], &config);
        let new_member = MembershipSpec {
            user: Some("newcomer@acme.example".into()),
            group: None,
            role: OrgRole::Member,
            display_name: None,
            email: None,
            invite: None,
        };
        let promoted = MembershipSpec {
            role: OrgRole::Owner,
            ..ms[n - 1].spec.clone()
        };
        group.bench_with_input(BenchmarkId::new("admin_adds_member", n), &n, |b, _| {
            b.iter(|| {
                let op = Operation::CreateMembership {
                    spec: black_box(&new_member),
                    redemption: None,
                };
                black_box(rules::authorize(&index, &config, &admin, &op, &ctx))
            })
        });
        group.bench_with_input(BenchmarkId::new("owner_removes_owner", n), &n, |b, _| {
            b.iter(|| {
                let op = Operation::DeleteMembership(black_box(&ms[1].spec));
                black_box(rules::authorize(&index, &config, &owner, &op, &ctx))
            })
        });
        group.bench_with_input(BenchmarkId::new("owner_promotes_member", n), &n, |b, _| {
            b.iter(|| {
                let op = Operation::UpdateMembership {
                    old: &ms[n - 1].spec,
                    new: black_box(&promoted),
                };
                black_box(rules::authorize(&index, &config, &owner, &op, &ctx))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("controller_recompute");
    group.sample_size(10);
    for n in [100usize, 10_000] {
        let org = org();
        let ms = members(n);
        let codes = BTreeMap::new();
        let ms: Vec<&Membership> = ms.iter().collect();
        let objs = OrgObjects {
            organization: Some(&org),
            memberships: &ms,
            invites: &[],
            teams: &[],
            invite_codes: &codes,
            identity_providers: &rules::IdentityProviders::default(),
        };
        group.bench_with_input(BenchmarkId::new("effective_state", n), &n, |b, _| {
            b.iter(|| black_box(rules::compute(objs, ctx.now)))
        });
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
