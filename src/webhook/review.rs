//! One admission decision: parse the AdmissionReview, find the actor and the org's index, ask
//! [`crate::rules::authorize`], and answer.

use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeSet;

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, ListParams, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, Operation as Verb,
};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::{Access, Invite, Membership, MembershipSpec, OrgRole, Organization, Team};
use crate::caches::Caches;
use crate::rules::{self, Actor, Config, Context, Decision, Operation, OrgIndex, Redemption};

/// How long a decision waits for caches that have not yet listed what exists (the API server gives
/// the webhook 5 seconds).
const CACHE_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// What a decision needs besides the request.
pub struct Decider {
    pub caches: Caches,
    pub config: Config,
    pub client: Client,
    /// roster's own username, the one identity that writes status.
    pub roster_user: Option<String>,
}

/// The outcome, for the response and the metrics.
pub struct Answer {
    pub response: AdmissionResponse,
    /// `allowed`, or the rule that denied.
    pub reason: &'static str,
}

fn typed<T: DeserializeOwned>(o: &Option<DynamicObject>) -> Option<T> {
    serde_json::to_value(o.as_ref()?)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

impl Decider {
    pub fn new(caches: Caches, config: Config, client: Client) -> Decider {
        Decider {
            caches,
            config,
            client,
            roster_user: None,
        }
    }

    /// Names roster's own identity, whose status writes are admitted.
    pub fn with_roster_user(mut self, user: Option<String>) -> Decider {
        self.roster_user = user;
        self
    }

    /// Decides one AdmissionReview body. A body that is not an AdmissionReview is `Err` (HTTP 400).
    pub async fn review(
        &self,
        body: &[u8],
    ) -> Result<(AdmissionReview<DynamicObject>, &'static str), String> {
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
        let request: AdmissionRequest<DynamicObject> = review
            .try_into()
            .map_err(|_| "the AdmissionReview has no request".to_string())?;
        let answer = self.decide(&request).await;
        Ok((answer.response.into_review(), answer.reason))
    }

    async fn decide(&self, req: &AdmissionRequest<DynamicObject>) -> Answer {
        let allow = |warnings: Vec<String>| {
            let mut response = AdmissionResponse::from(req);
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            Answer {
                response,
                reason: "allowed",
            }
        };
        let invalid = |what: &str| Answer {
            response: AdmissionResponse::from(req).deny(format!("roster: {what}")),
            reason: "InvalidRequest",
        };
        let Some(namespace) = req.namespace.clone() else {
            return allow(vec![]);
        };
        let actor = Actor::new(
            req.user_info.username.clone().unwrap_or_default(),
            req.user_info.groups.clone().unwrap_or_default(),
            &self.config,
        );
        let kind = req.kind.kind.as_str();
        if req.operation == Verb::Create
            && is_roster_kind(kind)
            && let Err(denial) = rules::org_namespace(&self.config, &namespace, kind)
        {
            return deny(req, denial);
        }
        // Before the caches: roster's own status writes must never wait for them (the controller
        // writes status through this webhook), and who writes status needs nothing cached.
        if req.sub_resource.as_deref() == Some("status") {
            return self.status_write(req, &actor);
        }
        // Until the caches have listed what exists, every index is empty: every org would look like
        // a namespace without an Organization (where deletions are always allowed) and without
        // members. Wait for them briefly, or refuse; never decide from nothing.
        if is_roster_kind(kind)
            && tokio::time::timeout(CACHE_SYNC_WAIT, self.caches.stores.ready())
                .await
                .is_err()
        {
            return Answer {
                response: AdmissionResponse::from(req)
                    .deny("roster: the webhook's caches are still syncing; try again in a moment"),
                reason: "CachesSyncing",
            };
        }
        let now = Timestamp::now();
        let mut index = self.caches.index(&namespace);

        if let (Verb::Create | Verb::Update, Some(new)) = (&req.operation, &req.object)
            && is_roster_kind(kind)
            && let Err(denial) = rules::reserved_metadata(
                &actor,
                req.old_object.as_ref().map(|o| &o.metadata),
                &new.metadata,
            )
        {
            return deny(req, denial);
        }

        macro_rules! objects {
            ($t:ty) => {{
                let new: Option<$t> = typed(&req.object);
                let old: Option<$t> = typed(&req.old_object);
                let missing = match &req.operation {
                    Verb::Create => new.is_none(),
                    Verb::Update => new.is_none() || old.is_none(),
                    Verb::Delete => old.is_none(),
                    Verb::Connect => false,
                };
                if missing {
                    return invalid(&format!("the {kind} in the request could not be read"));
                }
                (new, old)
            }};
        }

        // Kept alive for the borrow in `Operation`.
        let (memberships, invites, teams, orgs);
        let invite_for_redemption;
        let code;
        let op = match kind {
            "Membership" => {
                memberships = objects!(Membership);
                match (&req.operation, &memberships) {
                    (&Verb::Create, (Some(m), _)) => {
                        invite_for_redemption = m.spec.invite.as_ref().and_then(|r| {
                            self.caches
                                .stores
                                .invites
                                .get(&ObjectRef::new(&r.name).within(&namespace))
                        });
                        code = match invite_for_redemption.as_deref() {
                            Some(i) => self.caches.invite_code(&self.client, i).await,
                            None => None,
                        };
                        Operation::CreateMembership {
                            spec: &m.spec,
                            redemption: m.spec.invite.as_ref().map(|_| Redemption {
                                invite: invite_for_redemption.as_deref(),
                                code: code.as_deref(),
                            }),
                        }
                    }
                    (&Verb::Update, (Some(new), Some(old))) => {
                        if new.spec == old.spec {
                            return allow(vec![]); // metadata only (finalizers, labels)
                        }
                        Operation::UpdateMembership {
                            old: &old.spec,
                            new: &new.spec,
                        }
                    }
                    (&Verb::Delete, (_, Some(old))) => Operation::DeleteMembership(&old.spec),
                    _ => return allow(vec![]),
                }
            }
            "Invite" => {
                invites = objects!(Invite);
                match (&req.operation, &invites) {
                    (&Verb::Create, (Some(i), _)) => Operation::CreateInvite(&i.spec),
                    (&Verb::Update, (Some(new), Some(old))) if new.spec == old.spec => {
                        return allow(vec![]);
                    }
                    (&Verb::Update, (Some(new), Some(old))) => Operation::UpdateInvite {
                        old: &old.spec,
                        new: &new.spec,
                    },
                    (&Verb::Delete, (_, Some(old))) => Operation::DeleteInvite(&old.spec),
                    _ => return allow(vec![]),
                }
            }
            "Team" => {
                teams = objects!(Team);
                match (&req.operation, &teams) {
                    (&Verb::Create, (Some(t), _)) => Operation::CreateTeam(&t.spec),
                    (&Verb::Update, (Some(new), Some(old))) if new.spec == old.spec => {
                        return allow(vec![]);
                    }
                    (&Verb::Update, (Some(new), Some(old))) => Operation::UpdateTeam {
                        old: &old.spec,
                        new: &new.spec,
                    },
                    (&Verb::Delete, (_, Some(old))) => Operation::DeleteTeam(&old.spec),
                    _ => return allow(vec![]),
                }
            }
            "Organization" => {
                orgs = objects!(Organization);
                match (&req.operation, &orgs) {
                    (&Verb::Create, (Some(o), _)) => Operation::CreateOrganization(&o.spec),
                    (&Verb::Update, (Some(new), Some(old))) if new.spec == old.spec => {
                        return allow(vec![]);
                    }
                    (&Verb::Update, (Some(new), Some(old))) => Operation::UpdateOrganization {
                        old: &old.spec,
                        new: &new.spec,
                    },
                    (&Verb::Delete, (_, Some(old))) => Operation::DeleteOrganization(&old.spec),
                    _ => return allow(vec![]),
                }
            }
            _ => return allow(vec![]),
        };

        // Removing or demoting an owner is rare and dangerous, and a second Organization in a
        // namespace must not slip in while the cache lags: decide both from a fresh read.
        let fresh_read = match op {
            Operation::UpdateMembership { old: target, .. }
            | Operation::DeleteMembership(target) => touches_an_owner(&index, target),
            Operation::CreateOrganization(_) => true,
            _ => false,
        };
        if fresh_read {
            match self.fresh_index(&namespace).await {
                Ok(fresh) => index = std::sync::Arc::new(fresh),
                Err(e) => {
                    return Answer {
                        response: AdmissionResponse::from(req).deny(format!(
                            "roster: could not confirm the owner count ({e}); try again"
                        )),
                        reason: "FreshReadFailed",
                    };
                }
            }
        }

        // A removal spends the budget once: deleting a Membership that is already Terminating (held
        // by the owner protection) again is not another removal. Leaving is no removal at all, and
        // orgs without a budget keep no count.
        let removed = req
            .old_object
            .as_ref()
            .map(|o| &o.metadata)
            .filter(|m| m.deletion_timestamp.is_none());
        let leaving =
            matches!(op, Operation::DeleteMembership(m) if rules::removals::leaving(&actor, m));
        if leaving && !req.dry_run {
            let uid = removed.and_then(|m| m.uid.as_deref()).unwrap_or(&req.name);
            self.caches.removals.release(&namespace, uid);
        }
        let removing = matches!(op, Operation::DeleteMembership(_))
            && removed.is_some()
            && !leaving
            && rules::removals::budget(index.organization.as_ref()).is_some();
        let ctx = Context {
            now,
            removals_last_hour: 0,
            namespace_deleting: false,
        };
        let authorize = |removals_last_hour| {
            let ctx = Context {
                removals_last_hour,
                ..ctx
            };
            rules::admit(&index, &self.config, &actor, &op, &ctx)
        };
        let mut decision: Decision = match removed {
            // Decided and counted in one step, so that concurrent removals cannot all take the
            // last slot. Dry runs must cause nothing, not even a tick of the budget.
            Some(meta) if removing && !req.dry_run => {
                let uid = meta.uid.as_deref().unwrap_or(&req.name);
                self.caches.removals.decide(&namespace, uid, now, |count| {
                    let decision = authorize(count);
                    (decision.denial.is_none(), decision)
                })
            }
            _ if removing => authorize(self.caches.removals.last_hour(&namespace, now)),
            _ => authorize(0),
        };
        // A refused deletion may be part of deleting the whole namespace, which roster must never
        // block: only then is it worth a read.
        if decision.denial.is_some()
            && req.operation == Verb::Delete
            && self.namespace_deleting(&namespace).await
        {
            let ctx = Context {
                namespace_deleting: true,
                ..ctx
            };
            decision = rules::authorize(&index, &self.config, &actor, &op, &ctx);
        }
        if decision.denial.is_none()
            && let Some((old, new)) = access_change(&op)
        {
            match self.bind_rights(req, old, new).await {
                Ok(()) => {}
                Err(Ok(denial)) => decision.denial = Some(denial),
                Err(Err(e)) => {
                    return Answer {
                        response: AdmissionResponse::from(req).deny(format!(
                            "roster: could not confirm your right to bind the ClusterRoles of spec.access ({e}); try again"
                        )),
                        reason: "SubjectAccessReviewFailed",
                    };
                }
            }
        }
        match decision.denial {
            Some(denial) => {
                let mut answer = deny(req, denial);
                if !decision.warnings.is_empty() {
                    answer.response.warnings = Some(decision.warnings);
                }
                answer
            }
            None => allow(decision.warnings),
        }
    }

    /// A write to `status`: roster's alone, and only of an object roster can read.
    fn status_write(&self, req: &AdmissionRequest<DynamicObject>, actor: &Actor) -> Answer {
        if let Err(message) = rules::status::status_write(actor, self.roster_user.as_deref()) {
            let mut response = AdmissionResponse::from(req).deny(format!(
                "roster: {message} [rule {}]",
                rules::status::STATUS_OWNED_BY_ROSTER
            ));
            response.result.code = 403;
            response.result.reason = "Forbidden".into();
            return Answer {
                response,
                reason: rules::status::STATUS_OWNED_BY_ROSTER,
            };
        }
        let readable = match req.kind.kind.as_str() {
            "Membership" => typed::<Membership>(&req.object).is_some(),
            "Invite" => typed::<Invite>(&req.object).is_some(),
            "Team" => typed::<Team>(&req.object).is_some(),
            "Organization" => typed::<Organization>(&req.object).is_some(),
            _ => true,
        };
        let response = AdmissionResponse::from(req);
        match readable {
            true => Answer {
                response,
                reason: "allowed",
            },
            false => Answer {
                response: response.deny("roster: the object in the request could not be read"),
                reason: "InvalidRequest",
            },
        }
    }

    /// Asks the API server whether the requester may `bind` each ClusterRole where `spec.access`
    /// would have roster bind it, then lets the rules decide. `Err(Err)` when it could not ask.
    async fn bind_rights(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        old: Option<&Access>,
        new: &Access,
    ) -> Result<(), Result<rules::Denial, kube::Error>> {
        let mut may_bind = BTreeSet::new();
        for (ns, role) in rules::binds_to_confirm(old, new) {
            if self
                .may_bind(&req.user_info, &ns, &role)
                .await
                .map_err(Err)?
            {
                may_bind.insert((ns, role));
            }
        }
        rules::bind_rights(old, new, &may_bind).map_err(Ok)
    }

    async fn may_bind(&self, user: &UserInfo, namespace: &str, role: &str) -> kube::Result<bool> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some("bind".into()),
                    group: Some("rbac.authorization.k8s.io".into()),
                    resource: Some("clusterroles".into()),
                    name: Some(role.into()),
                    namespace: Some(namespace.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(answer
            .status
            .is_some_and(|s| s.allowed && s.denied != Some(true)))
    }

    async fn namespace_deleting(&self, namespace: &str) -> bool {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        matches!(api.get_opt(namespace).await, Ok(Some(ns)) if ns.metadata.deletion_timestamp.is_some())
    }

    async fn fresh_index(&self, namespace: &str) -> Result<OrgIndex, kube::Error> {
        let orgs = Api::<Organization>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await?;
        let members = Api::<Membership>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await?;
        let mut orgs = orgs.items;
        orgs.sort_by_key(|o| {
            (
                o.metadata.creation_timestamp.as_ref().map(|t| t.0),
                o.name_any(),
            )
        });
        let invites = self
            .caches
            .stores
            .invites
            .state_filter(|i| i.namespace().as_deref() == Some(namespace));
        Ok(OrgIndex::new(
            orgs.first(),
            &members.items,
            invites.iter().map(|i| i.as_ref()),
        ))
    }
}

/// A refusal of who may do what, answered as the API server's own RBAC would: 403, naming the rule.
fn deny(req: &AdmissionRequest<DynamicObject>, denial: rules::Denial) -> Answer {
    let mut response = AdmissionResponse::from(req).deny(format!(
        "roster: {} [rule {}]",
        denial.message,
        denial.reason.as_str()
    ));
    response.result.code = 403;
    response.result.reason = "Forbidden".into();
    Answer {
        response,
        reason: denial.reason.as_str(),
    }
}

fn is_roster_kind(kind: &str) -> bool {
    matches!(kind, "Membership" | "Invite" | "Team" | "Organization")
}

/// The `spec.access` an Organization create or update sets, with the one it replaces; `None`
/// when access stays as it was (the SubjectAccessReviews are asked only then).
fn access_change<'a>(op: &Operation<'a>) -> Option<(Option<&'a Access>, &'a Access)> {
    match *op {
        Operation::CreateOrganization(spec) => Some((None, &spec.access)),
        Operation::UpdateOrganization { old, new } if old.access != new.access => {
            Some((Some(&old.access), &new.access))
        }
        _ => None,
    }
}

/// Whether a change to this Membership might take an owner away (by the cache's account).
fn touches_an_owner(index: &OrgIndex, target: &MembershipSpec) -> bool {
    target.role == OrgRole::Owner
        || target.subject().and_then(|s| index.effective_role(&s)) == Some(OrgRole::Owner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    async fn write_status(decider: &Decider, user: &str, status: Value) -> (bool, String) {
        let mut object = membership("a", "member", false);
        object["status"] = status;
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "r", "operation": "UPDATE", "subResource": "status",
                "kind": { "group": "roster.dev", "version": "v1alpha1", "kind": "Membership" },
                "resource": { "group": "roster.dev", "version": "v1alpha1", "resource": "memberships" },
                "name": "a", "namespace": "ns",
                "userInfo": { "username": user, "groups": ["system:masters"] },
                "object": object, "oldObject": membership("a", "member", false),
            }
        });
        let (answer, reason) = decider
            .review(&serde_json::to_vec(&review).unwrap())
            .await
            .unwrap();
        (answer.response.unwrap().allowed, reason.to_string())
    }

    #[tokio::test]
    async fn only_roster_writes_status() {
        let roster = decider(&[]).with_roster_user(Some("roster".into()));
        let owner = json!({ "phase": "Active", "effectiveRole": "owner" });
        assert_eq!(
            write_status(&roster, "roster", owner.clone()).await,
            (true, "allowed".into())
        );
        assert_eq!(
            write_status(&roster, "admin", owner).await,
            (false, "StatusOwnedByRoster".into()),
            "system:masters too"
        );
        let nobody = decider(&[]);
        assert!(!write_status(&nobody, "roster", json!({})).await.0);
    }

    fn org(budget: i32) -> Organization {
        serde_json::from_value(json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
            "metadata": { "name": "org", "namespace": "ns", "uid": "org-uid" },
            "spec": { "policy": { "minOwners": 1, "maxRemovalsPerHour": budget } }
        }))
        .unwrap()
    }

    fn membership(name: &str, role: &str, terminating: bool) -> Value {
        let mut m = json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
            "metadata": { "name": name, "namespace": "ns", "uid": format!("{name}-uid") },
            "spec": { "user": format!("{name}@example.com"), "role": role },
            "status": { "phase": "Active", "effectiveRole": role }
        });
        if terminating {
            m["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            m["metadata"]["finalizers"] = json!(["roster.dev/owner-protection"]);
        }
        m
    }

    fn decider(members: &[Value]) -> Decider {
        let members = members
            .iter()
            .map(|m| serde_json::from_value(m.clone()).unwrap())
            .collect();
        let caches = Caches::from_objects(vec![org(1)], members, vec![], vec![]);
        // Deciding member removals reads nothing from the API server.
        let client =
            Client::try_from(kube::Config::new("https://127.0.0.1:1".parse().unwrap())).unwrap();
        Decider::new(caches, Config::default(), client)
    }

    async fn delete(decider: &Decider, old: &Value, dry_run: bool) -> bool {
        delete_as(decider, old, dry_run, "owner@example.com").await
    }

    async fn delete_as(decider: &Decider, old: &Value, dry_run: bool, user: &str) -> bool {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "r", "operation": "DELETE", "dryRun": dry_run,
                "kind": { "group": "roster.dev", "version": "v1alpha1", "kind": "Membership" },
                "resource": { "group": "roster.dev", "version": "v1alpha1", "resource": "memberships" },
                "name": old["metadata"]["name"], "namespace": "ns",
                "userInfo": { "username": user, "groups": ["system:authenticated"] },
                "oldObject": old,
            }
        });
        let (answer, _) = decider
            .review(&serde_json::to_vec(&review).unwrap())
            .await
            .unwrap();
        answer.response.unwrap().allowed
    }

    #[tokio::test]
    async fn a_removal_spends_the_budget_once_and_dry_runs_never() {
        let owner = membership("owner", "owner", false);
        let held = membership("held", "member", true);
        let (a, b) = (
            membership("a", "member", false),
            membership("b", "member", false),
        );
        let decider = decider(&[owner, held.clone(), a.clone(), b.clone()]);
        // Deleting a Membership that is already Terminating again is no new removal.
        for _ in 0..3 {
            assert!(delete(&decider, &held, false).await);
        }
        assert!(delete(&decider, &a, true).await, "a dry run");
        assert!(
            delete(&decider, &a, false).await,
            "the one removal the budget allows"
        );
        assert!(
            delete(&decider, &a, false).await,
            "the same removal, asked again"
        );
        assert!(
            !delete(&decider, &b, true).await,
            "over the budget, dry run or not"
        );
        assert!(!delete(&decider, &b, false).await);
    }

    #[tokio::test]
    async fn leaving_is_never_refused_by_the_budget_and_never_counts() {
        let owner = membership("owner", "owner", false);
        let (a, b, c) = (
            membership("a", "member", false),
            membership("b", "member", false),
            membership("c", "member", false),
        );
        let decider = decider(&[owner, a.clone(), b.clone(), c.clone()]);
        assert!(delete_as(&decider, &a, false, "a@example.com").await);
        assert!(delete(&decider, &b, false).await, "the budget is untouched");
        assert!(!delete(&decider, &c, false).await, "now it is spent");
        assert!(delete_as(&decider, &c, false, "c@example.com").await);
    }
}
