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
use kube::core::object::HasSpec;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::api::{
    Access, GROUP, Invite, Membership, MembershipSpec, OrgRole, Organization, Team, VERSION,
};
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

/// Why a body could not be decided at all: the webhook answers HTTP 400 with the message.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("not an AdmissionReview: {0}")]
    NotAReview(#[source] serde_json::Error),
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

impl ReviewError {
    /// The `reason` of `roster_admission_decisions_total` for a body that is no review.
    pub fn category(&self) -> &'static str {
        match self {
            ReviewError::NotAReview(_) | ReviewError::NoRequest => "MalformedReview",
        }
    }
}

/// Why a request is refused without a rule deciding it: it could not be read, or what deciding
/// it needs could not be had. Refused, never guessed; the client may try again.
#[derive(Debug, thiserror::Error)]
enum Undecided {
    #[error("the {0} in the request could not be read")]
    Unreadable(String),
    #[error("the object in the request could not be read")]
    UnreadableStatus,
    #[error(
        "the request came as {GROUP}/{0}, and roster reads {GROUP}/{VERSION} only: the webhook \
         configuration must list {VERSION} alone with matchPolicy Equivalent, so that the API server \
         converts every other version to it"
    )]
    OtherVersion(String),
    #[error("the webhook's caches are still syncing; try again in a moment")]
    CachesSyncing,
    #[error("could not confirm the owner count ({0}); try again")]
    FreshRead(#[source] kube::Error),
    #[error(
        "could not confirm your right to bind the ClusterRoles of spec.access ({0}); try again"
    )]
    BindRights(#[source] kube::Error),
}

impl Undecided {
    /// The `reason` of the answer and of `roster_admission_decisions_total`.
    fn category(&self) -> &'static str {
        match self {
            Undecided::Unreadable(_) | Undecided::UnreadableStatus => "InvalidRequest",
            Undecided::OtherVersion(_) => "OtherVersion",
            Undecided::CachesSyncing => "CachesSyncing",
            Undecided::FreshRead(_) => "FreshReadFailed",
            Undecided::BindRights(_) => "SubjectAccessReviewFailed",
        }
    }
}

/// A decision reached before the rules give theirs.
enum Early {
    /// Nothing for roster to decide: no namespace, another kind, a change of metadata only.
    Allow,
    /// Refused by a rule.
    Deny(rules::Denial),
    /// A status write by someone other than roster, and why.
    StatusOwned(String),
    Undecided(Undecided),
}

impl From<Undecided> for Early {
    fn from(u: Undecided) -> Early {
        Early::Undecided(u)
    }
}

impl Early {
    fn answer(self, req: &AdmissionRequest<DynamicObject>) -> Answer {
        match self {
            Early::Allow => allow(req, Vec::new()),
            Early::Deny(denial) => deny(req, denial),
            Early::StatusOwned(message) => forbidden(
                req,
                format!(
                    "roster: {message} [rule {}]",
                    rules::status::STATUS_OWNED_BY_ROSTER
                ),
                rules::status::STATUS_OWNED_BY_ROSTER,
            ),
            Early::Undecided(why) => Answer {
                response: AdmissionResponse::from(req).deny(format!("roster: {why}")),
                reason: why.category(),
            },
        }
    }
}

/// The one place a request's object is read into its kind's type.
fn typed<T: DeserializeOwned>(o: &Option<DynamicObject>) -> Option<T> {
    serde_json::to_value(o.as_ref()?)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// The objects of a request, as their kind's type, each read once.
enum Objects {
    Membership(Box<Change<Membership>>),
    Invite(Box<Change<Invite>>),
    Team(Box<Change<Team>>),
    Organization(Box<Change<Organization>>),
    /// Not a roster kind: nothing to decide.
    Other,
}

/// The object a request writes (`object`) and the one it replaces (`oldObject`).
struct Change<T> {
    new: Option<T>,
    old: Option<T>,
}

/// What a request does to an object's spec.
enum Step<'a, S> {
    Create(&'a S),
    Update { old: &'a S, new: &'a S },
    Delete(&'a S),
}

impl Objects {
    /// Reads the objects the operation needs; a request without them is invalid.
    fn read(req: &AdmissionRequest<DynamicObject>) -> Result<Objects, Undecided> {
        Ok(match req.kind.kind.as_str() {
            "Membership" => Objects::Membership(Box::new(Change::read(req)?)),
            "Invite" => Objects::Invite(Box::new(Change::read(req)?)),
            "Team" => Objects::Team(Box::new(Change::read(req)?)),
            "Organization" => Objects::Organization(Box::new(Change::read(req)?)),
            _ => Objects::Other,
        })
    }

    /// The operation the rules decide; `None` when there is none to decide.
    fn operation<'a>(&'a self, verb: &Verb, invited: &'a Invited) -> Option<Operation<'a>> {
        Some(match self {
            Objects::Membership(c) => match c.step(verb)? {
                Step::Create(spec) => Operation::CreateMembership {
                    spec,
                    redemption: spec.invite.as_ref().map(|_| Redemption {
                        invite: invited.invite.as_deref(),
                        code: invited.code.as_deref(),
                    }),
                },
                Step::Update { old, new } => Operation::UpdateMembership { old, new },
                Step::Delete(old) => Operation::DeleteMembership(old),
            },
            Objects::Invite(c) => match c.step(verb)? {
                Step::Create(spec) => Operation::CreateInvite(spec),
                Step::Update { old, new } => Operation::UpdateInvite { old, new },
                Step::Delete(old) => Operation::DeleteInvite(old),
            },
            Objects::Team(c) => match c.step(verb)? {
                Step::Create(spec) => Operation::CreateTeam(spec),
                Step::Update { old, new } => Operation::UpdateTeam { old, new },
                Step::Delete(old) => Operation::DeleteTeam(old),
            },
            Objects::Organization(c) => match c.step(verb)? {
                Step::Create(spec) => Operation::CreateOrganization(spec),
                Step::Update { old, new } => Operation::UpdateOrganization { old, new },
                Step::Delete(old) => Operation::DeleteOrganization(old),
            },
            Objects::Other => return None,
        })
    }
}

impl<T: DeserializeOwned> Change<T> {
    fn read(req: &AdmissionRequest<DynamicObject>) -> Result<Change<T>, Undecided> {
        let (new, old) = (typed(&req.object), typed(&req.old_object));
        let missing = match &req.operation {
            Verb::Create => new.is_none(),
            Verb::Update => new.is_none() || old.is_none(),
            Verb::Delete => old.is_none(),
            Verb::Connect => false,
        };
        if missing {
            return Err(Undecided::Unreadable(req.kind.kind.clone()));
        }
        Ok(Change { new, old })
    }
}

impl<T: HasSpec> Change<T>
where
    T::Spec: PartialEq,
{
    /// `None` for an update that leaves the spec as it is (metadata only: finalizers, labels).
    fn step(&self, verb: &Verb) -> Option<Step<'_, T::Spec>> {
        match (verb, &self.new, &self.old) {
            (Verb::Create, Some(new), _) => Some(Step::Create(new.spec())),
            (Verb::Update, Some(new), Some(old)) if new.spec() == old.spec() => None,
            (Verb::Update, Some(new), Some(old)) => Some(Step::Update {
                old: old.spec(),
                new: new.spec(),
            }),
            (Verb::Delete, _, Some(old)) => Some(Step::Delete(old.spec())),
            _ => None,
        }
    }
}

/// For a new Membership that redeems an invite: the Invite it names, as cached, and its code.
#[derive(Default)]
struct Invited {
    invite: Option<std::sync::Arc<Invite>>,
    code: Option<String>,
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
    ) -> Result<(AdmissionReview<DynamicObject>, &'static str), ReviewError> {
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_slice(body).map_err(ReviewError::NotAReview)?;
        let request: AdmissionRequest<DynamicObject> =
            review.try_into().map_err(|_| ReviewError::NoRequest)?;
        let user = request.user_info.username.as_deref().unwrap_or_default();
        let span = tracing::info_span!(
            "admission",
            uid = %request.uid,
            kind = %request.kind.kind,
            operation = ?request.operation,
            user,
            outcome = tracing::field::Empty,
            rule = tracing::field::Empty,
        );
        let answer = match self.decide(&request).instrument(span.clone()).await {
            Ok(decision) => answer(&request, decision),
            Err(early) => early.answer(&request),
        };
        let allowed = answer.response.allowed;
        span.record("outcome", if allowed { "allowed" } else { "denied" });
        span.record("rule", answer.reason);
        if !allowed {
            tracing::info!(
                uid = %request.uid,
                user,
                operation = ?request.operation,
                kind = %request.kind.kind,
                namespace = request.namespace.as_deref().unwrap_or_default(),
                name = %request.name,
                rule = answer.reason,
                "admission denied"
            );
        }
        Ok((answer.response.into_review(), answer.reason))
    }

    /// The decision, as its steps: where, whose status write, caches ready, reserved metadata,
    /// the objects, the operation, the org's index, the rules (with the removal budget), and the
    /// right to bind what `spec.access` names. Each step may end it early.
    async fn decide(&self, req: &AdmissionRequest<DynamicObject>) -> Result<Decision, Early> {
        let namespace = req.namespace.as_deref().ok_or(Early::Allow)?;
        let actor = Actor::new(
            req.user_info.username.clone().unwrap_or_default(),
            req.user_info.groups.clone().unwrap_or_default(),
            &self.config,
        )
        // What the authenticator says besides: the tenant an identity provider signed them in to.
        .with_extra(req.user_info.extra.clone().unwrap_or_default());
        // Every object below is read as this version's type: another version's fields would be
        // misread, so it is refused, never guessed at (docs/api-versions.md).
        if req.kind.group == GROUP && req.kind.version != VERSION {
            return Err(Undecided::OtherVersion(req.kind.version.clone()).into());
        }
        let kind = req.kind.kind.as_str();
        if req.operation == Verb::Create && is_roster_kind(kind) {
            rules::org_namespace(&self.config, namespace, kind).map_err(Early::Deny)?;
        }
        // Before the caches: roster's own status writes must never wait for them (the controller
        // writes status through this webhook), and who writes status needs nothing cached.
        if req.sub_resource.as_deref() == Some("status") {
            return self.status_write(req, &actor).map(|()| Decision::default());
        }
        if is_roster_kind(kind) {
            self.caches_synced().await?;
        }
        let now = Timestamp::now();
        reserved_metadata(req, &actor)?;
        let objects = Objects::read(req)?;
        let invited = self.invited(req, namespace, &objects).await;
        let op = objects
            .operation(&req.operation, &invited)
            .ok_or(Early::Allow)?;
        let index = self.index(namespace, &op).await?;
        let decision = self
            .authorize(req, namespace, &index, &actor, &op, now)
            .await;
        self.confirm_bind_rights(req, &op, decision).await
    }

    /// Until the caches have listed what exists, every index is empty: every org would look like
    /// a namespace without an Organization (where deletions are always allowed) and without
    /// members. Wait for them briefly, or refuse; never decide from nothing.
    async fn caches_synced(&self) -> Result<(), Undecided> {
        tokio::time::timeout(CACHE_SYNC_WAIT, self.caches.ready())
            .await
            .map_err(|_| Undecided::CachesSyncing)
    }

    /// The Invite a new Membership redeems, and its code; nothing for any other request.
    async fn invited(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        namespace: &str,
        objects: &Objects,
    ) -> Invited {
        let reference = match (&req.operation, objects) {
            (Verb::Create, Objects::Membership(c)) => {
                c.new.as_ref().and_then(|m| m.spec.invite.as_ref())
            }
            _ => None,
        };
        let invite = reference.and_then(|r| {
            (self.caches.stores.invites).get(&ObjectRef::new(&r.name).within(namespace))
        });
        let code = match invite.as_deref() {
            Some(i) => self.caches.invite_code(&self.client, i).await,
            None => None,
        };
        Invited { invite, code }
    }

    /// The org's index, from the caches; removing or demoting an owner is rare and dangerous,
    /// and a second Organization in a namespace must not slip in while the cache lags: those are
    /// decided from a fresh read.
    async fn index(
        &self,
        namespace: &str,
        op: &Operation<'_>,
    ) -> Result<std::sync::Arc<OrgIndex>, Undecided> {
        let index = self.caches.index(namespace);
        let fresh_read = match *op {
            Operation::UpdateMembership { old: target, .. }
            | Operation::DeleteMembership(target) => touches_an_owner(&index, target),
            Operation::CreateOrganization(_) => true,
            _ => false,
        };
        if !fresh_read {
            return Ok(index);
        }
        let fresh = self.fresh_index(namespace).await;
        fresh.map(std::sync::Arc::new).map_err(Undecided::FreshRead)
    }

    /// What the rules decide. A refused deletion may be part of deleting the whole namespace,
    /// which roster must never block: only then is it worth a read, and the rules asked again.
    async fn authorize(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        namespace: &str,
        index: &OrgIndex,
        actor: &Actor,
        op: &Operation<'_>,
        now: Timestamp,
    ) -> Decision {
        let decision = self.counted(req, namespace, index, actor, op, now);
        if decision.denial.is_some()
            && req.operation == Verb::Delete
            && self.namespace_deleting(namespace).await
        {
            let ctx = Context {
                now,
                removals_last_hour: 0,
                namespace_deleting: true,
            };
            return rules::authorize(index, &self.config, actor, op, &ctx);
        }
        decision
    }

    /// What the rules decide, with the removal budget: a removal spends it once (deleting a
    /// Membership that is already Terminating, held by the owner protection, again is not another
    /// removal), leaving is no removal at all, and orgs without a budget keep no count.
    fn counted(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        namespace: &str,
        index: &OrgIndex,
        actor: &Actor,
        op: &Operation<'_>,
        now: Timestamp,
    ) -> Decision {
        let removed = (req.old_object.as_ref())
            .map(|o| &o.metadata)
            .filter(|m| m.deletion_timestamp.is_none());
        let leaving =
            matches!(op, Operation::DeleteMembership(m) if rules::removals::leaving(actor, m));
        if leaving && !req.dry_run {
            let uid = removed.and_then(|m| m.uid.as_deref()).unwrap_or(&req.name);
            self.caches.removals.release(namespace, uid);
        }
        let removing = matches!(op, Operation::DeleteMembership(_))
            && removed.is_some()
            && !leaving
            && rules::removals::budget(index.organization.as_ref()).is_some();
        let authorize = |removals_last_hour| {
            let ctx = Context {
                now,
                removals_last_hour,
                namespace_deleting: false,
            };
            rules::admit(index, &self.config, actor, op, &ctx)
        };
        match removed {
            // Decided and counted in one step, so that concurrent removals cannot all take the
            // last slot. Dry runs must cause nothing, not even a tick of the budget.
            Some(meta) if removing && !req.dry_run => {
                let uid = meta.uid.as_deref().unwrap_or(&req.name);
                self.caches.removals.decide(namespace, uid, now, |count| {
                    let decision = authorize(count);
                    (decision.denial.is_none(), decision)
                })
            }
            _ if removing => authorize(self.caches.removals.last_hour(namespace, now)),
            _ => authorize(0),
        }
    }

    /// An allowed change of `spec.access` also needs the requester's right to bind what it names.
    async fn confirm_bind_rights(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        op: &Operation<'_>,
        mut decision: Decision,
    ) -> Result<Decision, Early> {
        if decision.denial.is_none()
            && let Some((old, new)) = access_change(op)
        {
            decision.denial = self
                .bind_rights(req, old, new)
                .await
                .map_err(Undecided::BindRights)?;
        }
        Ok(decision)
    }

    /// A write to `status`: roster's alone, and only of an object roster can read.
    fn status_write(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        actor: &Actor,
    ) -> Result<(), Early> {
        rules::status::status_write(actor, self.roster_user.as_deref())
            .map_err(|message| Early::StatusOwned(message.to_string()))?;
        let readable = match req.kind.kind.as_str() {
            "Membership" => typed::<Membership>(&req.object).is_some(),
            "Invite" => typed::<Invite>(&req.object).is_some(),
            "Team" => typed::<Team>(&req.object).is_some(),
            "Organization" => typed::<Organization>(&req.object).is_some(),
            _ => true,
        };
        match readable {
            true => Ok(()),
            false => Err(Undecided::UnreadableStatus.into()),
        }
    }

    /// Asks the API server whether the requester may `bind` each ClusterRole where `spec.access`
    /// would have roster bind it, then lets the rules decide: `Some` denial, or `Err` when it
    /// could not ask.
    async fn bind_rights(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        old: Option<&Access>,
        new: &Access,
    ) -> Result<Option<rules::Denial>, kube::Error> {
        let mut may_bind = BTreeSet::new();
        for (ns, role) in rules::binds_to_confirm(old, new) {
            if self.may_bind(&req.user_info, &ns, &role).await? {
                may_bind.insert((ns, role));
            }
        }
        Ok(rules::bind_rights(old, new, &may_bind).err())
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
        let org = rules::organization_of(&orgs.items);
        let invites = self
            .caches
            .stores
            .invites
            .state_filter(|i| i.namespace().as_deref() == Some(namespace));
        Ok(OrgIndex::new(
            org,
            &members.items,
            invites.iter().map(|i| i.as_ref()),
        ))
    }
}

/// Admits the request, with the rules' warnings.
fn allow(req: &AdmissionRequest<DynamicObject>, warnings: Vec<String>) -> Answer {
    let mut response = AdmissionResponse::from(req);
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    Answer {
        response,
        reason: "allowed",
    }
}

/// The rules' decision as the answer; a denial keeps the rules' warnings too.
fn answer(req: &AdmissionRequest<DynamicObject>, decision: Decision) -> Answer {
    match decision.denial {
        Some(denial) => {
            let mut answer = deny(req, denial);
            if !decision.warnings.is_empty() {
                answer.response.warnings = Some(decision.warnings);
            }
            answer
        }
        None => allow(req, decision.warnings),
    }
}

/// A refusal of who may do what, answered as the API server's own RBAC would: 403, naming the rule.
fn deny(req: &AdmissionRequest<DynamicObject>, denial: rules::Denial) -> Answer {
    let message = format!(
        "roster: {} [rule {}]",
        denial.message,
        denial.reason.as_str()
    );
    forbidden(req, message, denial.reason.as_str())
}

/// A 403 Forbidden answer with `message`.
fn forbidden(
    req: &AdmissionRequest<DynamicObject>,
    message: String,
    reason: &'static str,
) -> Answer {
    let mut response = AdmissionResponse::from(req).deny(message);
    response.result.code = 403;
    response.result.reason = "Forbidden".into();
    Answer { response, reason }
}

/// Who may set the labels and annotations roster reserves (checked before the objects are read).
fn reserved_metadata(req: &AdmissionRequest<DynamicObject>, actor: &Actor) -> Result<(), Early> {
    if let (Verb::Create | Verb::Update, Some(new)) = (&req.operation, &req.object)
        && is_roster_kind(&req.kind.kind)
    {
        let old = req.old_object.as_ref().map(|o| &o.metadata);
        rules::reserved_metadata(actor, old, &new.metadata).map_err(Early::Deny)?;
    }
    Ok(())
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

    /// An AdmissionReview of Membership `name` in namespace `ns` through `version`, by `user` in
    /// `groups`; `fields` adds to the request (operation, objects, subresource, dry run).
    fn membership_review(
        version: &str,
        name: &Value,
        user: &str,
        groups: &[&str],
        fields: Value,
    ) -> Value {
        let mut request = json!({
            "uid": "r",
            "kind": { "group": "roster.dev", "version": version, "kind": "Membership" },
            "resource": { "group": "roster.dev", "version": version, "resource": "memberships" },
            "name": name, "namespace": "ns",
            "userInfo": { "username": user, "groups": groups },
        });
        request
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request })
    }

    async fn decide(decider: &Decider, review: &Value) -> (AdmissionResponse, String) {
        let (answer, reason) = decider
            .review(&serde_json::to_vec(review).unwrap())
            .await
            .unwrap();
        (answer.response.unwrap(), reason.to_string())
    }

    async fn write_status(decider: &Decider, user: &str, status: Value) -> (bool, String) {
        let mut object = membership("a", "member", false);
        object["status"] = status;
        let review = membership_review(
            "v1alpha1",
            &json!("a"),
            user,
            &["system:masters"],
            json!({
                "operation": "UPDATE", "subResource": "status",
                "object": object, "oldObject": membership("a", "member", false),
            }),
        );
        let (response, reason) = decide(decider, &review).await;
        (response.allowed, reason)
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

    /// A request in another version than the one roster reads is refused, not misread: that is
    /// what a webhook configuration listing `*` would send once a second version is served.
    #[tokio::test]
    async fn a_request_in_another_version_is_refused() {
        let decider = decider(&[]);
        for subresource in [None, Some("status")] {
            let review = membership_review(
                "v1beta1",
                &json!("a"),
                "roster",
                &["system:masters"],
                json!({
                    "operation": "CREATE", "subResource": subresource,
                    "object": membership("a", "owner", false),
                }),
            );
            let (response, reason) = decide(&decider, &review).await;
            assert!(!response.allowed);
            assert_eq!(reason, "OtherVersion");
            assert!(
                response.result.message.contains("roster.dev/v1beta1"),
                "{}",
                response.result.message
            );
        }
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
        let review = membership_review(
            "v1alpha1",
            &old["metadata"]["name"],
            user,
            &["system:authenticated"],
            json!({ "operation": "DELETE", "dryRun": dry_run, "oldObject": old }),
        );
        decide(decider, &review).await.0.allowed
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
