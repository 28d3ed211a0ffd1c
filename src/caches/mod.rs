//! The caches every replica keeps: one reflector store per watched kind, an [`OrgIndex`] per org
//! namespace kept current from the watch events (so webhook decisions never scan), and a stream of
//! "this org namespace changed" triggers for the controller.

mod bindings;
mod packed;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta};
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Client, Resource, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::api::{Invite, Membership, Organization, Team};
pub use crate::invite_secrets::INVITE_CODE_LABEL;
use crate::invite_secrets::{KnownCodes, code_secret_name, owned_by};
use crate::removals::RemovalLog;
use crate::rules::OrgIndex;

pub use bindings::{BindingKey, Bindings, Fingerprint};
pub use packed::Packed;

/// Which namespaces to watch: all, or a list.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub namespaces: Vec<String>,
}

impl Scope {
    pub fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match self.namespaces.as_slice() {
            [one] => Api::namespaced(client.clone(), one),
            _ => Api::all(client.clone()),
        }
    }

    pub fn contains(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }
}

/// One cache per kind.
#[derive(Clone)]
pub struct Stores {
    pub organizations: Store<Organization>,
    /// Every Membership of the cluster: packed, the largest of the caches.
    pub memberships: Packed<Membership>,
    pub invites: Store<Invite>,
    pub teams: Store<Team>,
    /// The labelled Secrets' metadata only: anyone who may create Secrets can label one, so their
    /// data is read on demand, and only for a Secret a live Invite owns.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// Namespaces' metadata, for the data-region label of org and workload namespaces.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Codes read so far by (namespace, Secret name); only for live Invites (see `forget_code`).
    codes: KnownCodes,
    /// Counts the reads of a code Secret's data (`roster_invite_code_reads`).
    pub code_reads: Counter,
    /// RoleBindings roster made, in every namespace (workload namespaces are outside the scope),
    /// as fingerprints.
    pub role_bindings: Bindings,
}

impl Stores {
    /// Resolves once every cache has listed what exists.
    ///
    /// Several tasks wait here (the readiness probe and the controller), but a [`Store`] wakes only
    /// the task that polled it last (kube-runtime's `DelayedInit` keeps a single waker), so the
    /// others would wait forever: each waiter polls again every 100 ms.
    pub async fn ready(&self) {
        while tokio::time::timeout(std::time::Duration::from_millis(100), self.all_ready())
            .await
            .is_err()
        {}
    }

    async fn all_ready(&self) {
        let _ = self.organizations.wait_until_ready().await;
        let _ = self.invites.wait_until_ready().await;
        let _ = self.teams.wait_until_ready().await;
        let _ = self.secrets.wait_until_ready().await;
        let _ = self.namespaces.wait_until_ready().await;
    }

    /// The code of `invite`, from its Secret. The data is read (one GET) only when the cached
    /// metadata says that Secret is owned by `invite` and `invite` is live, then remembered.
    pub async fn invite_code(
        &self,
        client: &Client,
        invite: &Invite,
    ) -> Result<Option<String>, kube::Error> {
        let (Some(ns), name) = (invite.namespace(), code_secret_name(invite)) else {
            return Ok(None);
        };
        let Some(meta) = self.secrets.get(&ObjectRef::new(&name).within(&ns)) else {
            return Ok(None);
        };
        if !self.live_owner(&meta.metadata, invite) {
            return Ok(None);
        }
        if let Some(code) = self.codes.get(&ns, &name, &meta.metadata) {
            return Ok(Some(code));
        }
        self.code_reads.inc();
        let secret = Api::<Secret>::namespaced(client.clone(), &ns)
            .get(&name)
            .await?;
        Ok(self.remember_code(&secret, invite))
    }

    /// Whether `invite` is live (in the cache, not being deleted) and owns the object.
    fn live_owner(&self, meta: &ObjectMeta, invite: &Invite) -> bool {
        let cached = self.invites.get(&ObjectRef::from_obj(invite));
        owned_by(meta, invite)
            && cached
                .is_some_and(|i| i.uid() == invite.uid() && i.meta().deletion_timestamp.is_none())
    }

    /// Remembers the code of a Secret just read or created; returns it.
    pub fn remember_code(&self, secret: &Secret, invite: &Invite) -> Option<String> {
        self.codes.remember(secret, invite)
    }

    /// Forgets the codes of Invites deleted while the watch was down (a relist has no Delete).
    fn forget_codes_of_gone_invites(&self) {
        let live: std::collections::HashSet<(String, String)> = (self.invites.state().iter())
            .filter_map(|i| Some((i.namespace()?, code_secret_name(i))))
            .collect();
        self.codes.retain(|key| live.contains(key));
    }

    /// Forgets the code of an Invite that is gone, so that remembered codes stay bounded by the
    /// live Invites.
    fn forget_code(&self, invite: &Invite) {
        self.codes.forget(invite);
    }
}

/// Asks the controller to reconcile an org namespace (see [`Caches::waker`]).
#[derive(Clone)]
pub struct Waker(broadcast::Sender<ObjectRef<Namespace>>);

impl Waker {
    pub fn wake(&self, namespace: &str) {
        // Nobody listening means no controller runs here: nothing to wake.
        let _ = self.0.send(ObjectRef::new(namespace));
    }

    /// A waker that wakes nobody, for tests and tools without a controller.
    pub fn none() -> Waker {
        Waker(broadcast::channel(1).0)
    }
}

/// The caches of this replica.
#[derive(Clone)]
pub struct Caches {
    pub stores: Stores,
    /// Membership removals by someone else of the last hour: admitted by this replica's webhook,
    /// confirmed by its watch.
    pub removals: Arc<RemovalLog>,
    indexes: Arc<RwLock<HashMap<String, Arc<OrgIndex>>>>,
    triggers: broadcast::Sender<ObjectRef<Namespace>>,
    scope: Scope,
    /// `spec.access.namespaces` of each Organization (by `namespace/name`) as last seen, so that a
    /// change can wake the organizations whose claims depended on what it listed before.
    access_seen: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// How many watches feed the caches, and how many of them have indexed their first list
    /// (see [`Caches::ready`]).
    watches: Arc<std::sync::atomic::AtomicUsize>,
    indexed: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Caches {
    /// Starts watching; the returned caches fill in the background.
    pub fn start(client: &Client, scope: &Scope) -> Caches {
        // Lists in pages of 500 from etcd. A list "from any version" is served from the API
        // server's cache in one response however large (the page size is ignored there before
        // Kubernetes 1.33): 100,000 Memberships with their managedFields would be hundreds of
        // megabytes in one piece, at every start.
        let config = watcher::Config::default().page_size(500);
        let (triggers, _) = broadcast::channel(4096);
        let (organizations, org_events) = reflect(
            scope.api::<Organization>(client),
            config.clone(),
            Labels::Drop,
        );
        let membership_events = stripped(
            scope.api::<Membership>(client),
            config.clone(),
            Labels::Drop,
        );
        let (invites, invite_events) =
            reflect(scope.api::<Invite>(client), config.clone(), Labels::Drop);
        let (teams, team_events) = reflect(scope.api::<Team>(client), config.clone(), Labels::Drop);
        // Metadata only: anyone who may create Secrets can label one.
        let (secrets, secret_events) = reflect(
            scope.api::<PartialObjectMeta<Secret>>(client),
            config.clone().labels(INVITE_CODE_LABEL),
            Labels::Keep,
        );
        let (namespaces, namespace_events) = reflect(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            config.clone(),
            Labels::Keep,
        );
        let binding_events = stripped(
            Api::<RoleBinding>::all(client.clone()),
            config.labels(crate::rules::rbac::ORGANIZATION_LABEL),
            Labels::Keep,
        );
        let caches = Caches {
            stores: Stores {
                organizations,
                memberships: Packed::default(),
                invites,
                teams,
                secrets,
                namespaces,
                codes: KnownCodes::default(),
                code_reads: Counter::default(),
                role_bindings: Bindings::default(),
            },
            removals: Arc::default(),
            indexes: Arc::default(),
            triggers,
            scope: scope.clone(),
            access_seen: Arc::default(),
            watches: Arc::default(),
            indexed: Arc::new(tokio::sync::watch::Sender::new(0)),
        };
        caches.drive(org_events, scope, Caches::on_organization);
        caches.drive(membership_events, scope, Caches::on_membership);
        caches.drive(invite_events, scope, Caches::on_invite);
        caches.drive(team_events, scope, |_, _| {});
        caches.drive(secret_events, scope, |_, _| {});
        // A workload namespace's label changed or removed by someone is repaired by its org.
        caches.drive_with(namespace_events, scope, Caches::on_namespace, |_| None);
        // A binding changed or deleted by someone else is repaired by its organization's reconcile.
        caches.drive_with(
            binding_events,
            scope,
            |caches, event| caches.stores.role_bindings.apply(event),
            |b: &RoleBinding| {
                b.labels()
                    .get(crate::rules::rbac::ORGANIZATION_LABEL)
                    .cloned()
            },
        );
        caches
    }

    /// Caches filled once from the given objects, without watching: for benchmarks and tests of
    /// the webhook that need no API server.
    pub fn from_objects(
        organizations: Vec<Organization>,
        memberships: Vec<Membership>,
        invites: Vec<Invite>,
        secrets: Vec<Secret>,
    ) -> Caches {
        fn filled<K: Resource<DynamicType = ()> + Clone + 'static>(objects: Vec<K>) -> Store<K> {
            let mut writer = reflector::store::Writer::<K>::default();
            writer.apply_watcher_event(&Event::Init);
            for o in objects {
                writer.apply_watcher_event(&Event::InitApply(o));
            }
            writer.apply_watcher_event(&Event::InitDone);
            writer.as_reader()
        }
        // No API server to read codes from: the codes the given Invites own are known up front.
        let codes = KnownCodes::default();
        for secret in &secrets {
            if let Some(invite) = invites.iter().find(|i| owned_by(&secret.metadata, i)) {
                codes.remember(secret, invite);
            }
        }
        let secrets = secrets
            .into_iter()
            .map(|s| s.metadata.into_response_partial::<Secret>())
            .collect();
        let caches = Caches {
            stores: Stores {
                organizations: filled(organizations),
                memberships: memberships.into_iter().collect(),
                invites: filled(invites),
                teams: filled(Vec::<Team>::new()),
                secrets: filled(secrets),
                namespaces: filled(Vec::new()),
                codes,
                code_reads: Counter::default(),
                role_bindings: Bindings::default(),
            },
            removals: Arc::default(),
            indexes: Arc::default(),
            triggers: broadcast::channel(1).0,
            scope: Scope::default(),
            access_seen: Arc::default(),
            watches: Arc::default(),
            indexed: Arc::new(tokio::sync::watch::Sender::new(0)),
        };
        caches.rebuild();
        caches
    }

    /// The code of `invite`, for the webhook's redemption checks (see [`Stores::invite_code`]); a
    /// code that cannot be read is no code.
    pub async fn invite_code(&self, client: &Client, invite: &Invite) -> Option<String> {
        self.stores
            .invite_code(client, invite)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "could not read an invite code"))
            .ok()
            .flatten()
    }

    /// Resolves once every cache has listed what exists and the indexes hold it. The stores are
    /// ready as soon as a list is in them, a moment before the indexes are rebuilt from it; a
    /// decision in that moment would see no organization, where a namespace without one allows
    /// every deletion.
    pub async fn ready(&self) {
        self.stores.ready().await;
        let watches = self.watches.load(std::sync::atomic::Ordering::Relaxed);
        let mut indexed = self.indexed.subscribe();
        let _ = indexed.wait_for(|n| *n >= watches).await;
    }

    /// The index of one org namespace (empty when nothing is there).
    pub fn index(&self, namespace: &str) -> Arc<OrgIndex> {
        self.indexes
            .read()
            .expect("index lock")
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }

    /// A handle that asks the controller to reconcile an org namespace, for work that finishes
    /// outside a reconcile (an e-mail attempt).
    pub fn waker(&self) -> Waker {
        Waker(self.triggers.clone())
    }

    /// Org namespaces that changed, for the controller. A consumer that falls so far behind that
    /// changes were dropped gets every namespace the caches know instead, since it cannot know
    /// which ones it missed.
    pub fn triggers(&self) -> impl futures::Stream<Item = ObjectRef<Namespace>> + Send + use<> {
        let caches = self.clone();
        let rx = self.triggers.subscribe();
        futures::stream::unfold(
            (rx, Vec::new()),
            move |(mut rx, mut missed): (_, Vec<ObjectRef<Namespace>>)| {
                let caches = caches.clone();
                async move {
                    loop {
                        if let Some(ns) = missed.pop() {
                            return Some((ns, (rx, missed)));
                        }
                        match rx.recv().await {
                            Ok(ns) => return Some((ns, (rx, missed))),
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                tracing::warn!(
                                    missed = n,
                                    "the controller fell behind the caches; reconciling every org namespace"
                                );
                                missed = caches
                                    .namespaces()
                                    .into_iter()
                                    .map(|ns| ObjectRef::new(&ns))
                                    .collect();
                            }
                            Err(broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                }
            },
        )
    }

    /// Every namespace that holds a roster object, and every org namespace that roster's
    /// RoleBindings name (an org whose objects are all gone may still have bindings to remove).
    fn namespaces(&self) -> std::collections::BTreeSet<String> {
        let s = &self.stores;
        (s.organizations.state().iter().filter_map(|o| o.namespace()))
            .chain(s.memberships.namespaces())
            .chain(s.invites.state().iter().filter_map(|o| o.namespace()))
            .chain(s.teams.state().iter().filter_map(|o| o.namespace()))
            .chain(s.role_bindings.organizations())
            .collect()
    }

    fn drive<K>(
        &self,
        events: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
        scope: &Scope,
        update: fn(&Caches, &Event<K>),
    ) where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        self.drive_with(events, scope, update, |o: &K| o.namespace());
    }

    fn drive_with<K>(
        &self,
        events: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
        scope: &Scope,
        update: fn(&Caches, &Event<K>),
        org_namespace: fn(&K) -> Option<String>,
    ) where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        self.watches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let caches = self.clone();
        let scope = scope.clone();
        let mut listed = false;
        tokio::spawn(events.for_each(move |event| {
            match event {
                Ok(event) => {
                    update(&caches, &event);
                    if matches!(event, Event::InitDone) && !std::mem::replace(&mut listed, true) {
                        caches.indexed.send_modify(|n| *n += 1);
                    }
                    let touched = match &event {
                        Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => {
                            org_namespace(o)
                        }
                        Event::Init | Event::InitDone => None,
                    };
                    if let Some(ns) = touched.filter(|ns| scope.contains(ns)) {
                        let _ = caches.triggers.send(ObjectRef::new(&ns));
                    }
                }
                // The watcher retries with backoff by itself; say why it is behind.
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed, retrying")
                }
            }
            std::future::ready(())
        }));
    }

    /// Changes one namespace's index, copy-on-write so readers never wait for long.
    fn edit(&self, namespace: &str, f: impl FnOnce(&mut OrgIndex)) {
        let mut indexes = self.indexes.write().expect("index lock");
        let index = indexes.entry(namespace.to_string()).or_default();
        f(Arc::make_mut(index));
    }

    fn on_organization(&self, event: &Event<Organization>) {
        match event {
            Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => {
                let ns = o.namespace().unwrap_or_default();
                let orgs = self
                    .stores
                    .organizations
                    .state_filter(|x| x.namespace().as_deref() == Some(&ns));
                let org = crate::rules::organization_of(orgs.iter().map(|x| x.as_ref())).cloned();
                self.edit(&ns, |index| index.organization = org);
                let deleted = matches!(event, Event::Delete(_));
                let before = self.remember_access(o, deleted);
                // Status writes leave claims as they were; the first list reconciles every org.
                let changed = deleted
                    || o.meta().deletion_timestamp.is_some()
                    || before.as_ref() != Some(&o.spec.access.namespaces);
                if changed && !matches!(event, Event::InitApply(_)) {
                    let before = before.unwrap_or_default();
                    self.wake_claimants(&ns, before.iter().chain(&o.spec.access.namespaces));
                }
            }
            Event::InitDone => self.rebuild(),
            Event::Init => {}
        }
    }

    /// Records what `org` lists in `spec.access.namespaces` now (nothing once deleted) and returns
    /// what it listed before (`None` when it is new).
    fn remember_access(&self, org: &Organization, deleted: bool) -> Option<Vec<String>> {
        let key = format!("{}/{}", org.namespace().unwrap_or_default(), org.name_any());
        let mut seen = self.access_seen.lock().expect("access lock");
        if deleted {
            seen.remove(&key)
        } else {
            seen.insert(key, org.spec.access.namespaces.clone())
        }
    }

    /// Claims on a workload namespace depend on every Organization (the oldest wins, and an org
    /// namespace is nobody's workload namespace): a change to the Organization in `org_namespace`
    /// reconciles every organization that lists that namespace or any of `listed`.
    fn wake_claimants<'a>(&self, org_namespace: &'a str, listed: impl Iterator<Item = &'a String>) {
        let affected: BTreeSet<&str> = listed.map(String::as_str).chain([org_namespace]).collect();
        self.wake_listing(&affected, org_namespace);
    }

    /// Reconciles every organization in scope (but `except`) that lists one of `namespaces` in
    /// `spec.access.namespaces`.
    fn wake_listing(&self, namespaces: &BTreeSet<&str>, except: &str) {
        let listing: BTreeSet<String> = self
            .stores
            .organizations
            .state()
            .iter()
            .filter(|o| (o.spec.access.namespaces.iter()).any(|n| namespaces.contains(n.as_str())))
            .filter_map(|o| o.namespace())
            .filter(|ns| ns != except && self.scope.contains(ns))
            .collect();
        for ns in listing {
            let _ = self.triggers.send(ObjectRef::new(&ns));
        }
    }

    fn on_namespace(&self, event: &Event<PartialObjectMeta<Namespace>>) {
        if let Event::Apply(n) | Event::Delete(n) = event {
            let name = n.name_any();
            self.wake_listing(&BTreeSet::from([name.as_str()]), "");
        }
    }

    fn on_membership(&self, event: &Event<Membership>) {
        self.stores.memberships.apply(event);
        if let Event::Apply(m) | Event::InitApply(m) | Event::Delete(m) = event
            && (m.meta().deletion_timestamp.is_some() || matches!(event, Event::Delete(_)))
            && let (Some(ns), Some(uid)) = (m.namespace(), m.uid())
        {
            let now = Timestamp::now();
            let at = m.meta().deletion_timestamp.as_ref().map_or(now, |t| t.0);
            self.removals.confirm(&ns, &uid, at, now);
        }
        match event {
            Event::Apply(m) | Event::InitApply(m) => self
                .edit(&m.namespace().unwrap_or_default(), |index| {
                    index.upsert_membership(m)
                }),
            Event::Delete(m) => self.edit(&m.namespace().unwrap_or_default(), |index| {
                index.remove_membership(&m.name_any())
            }),
            Event::InitDone => self.rebuild(),
            Event::Init => {}
        }
    }

    fn on_invite(&self, event: &Event<Invite>) {
        match event {
            Event::Apply(i) | Event::InitApply(i) => self
                .edit(&i.namespace().unwrap_or_default(), |index| {
                    index.upsert_invite(i)
                }),
            Event::Delete(i) => {
                self.stores.forget_code(i);
                self.edit(&i.namespace().unwrap_or_default(), |index| {
                    index.remove_invite(&i.name_any())
                })
            }
            Event::InitDone => {
                self.stores.forget_codes_of_gone_invites();
                self.rebuild()
            }
            Event::Init => {}
        }
    }

    /// After a (re)list, objects deleted while the watch was down are gone from the stores but may
    /// linger in the indexes: rebuild them all from the stores, one namespace at a time (decoded,
    /// every Membership of the cluster at once would be most of the memory roster may use).
    fn rebuild(&self) {
        let s = &self.stores;
        let (organizations, invites) = (s.organizations.state(), s.invites.state());
        let mut by_ns: HashMap<String, NamespaceObjects> = HashMap::new();
        for o in &organizations {
            by_ns
                .entry(o.namespace().unwrap_or_default())
                .or_default()
                .0
                .push(o);
        }
        for i in &invites {
            by_ns
                .entry(i.namespace().unwrap_or_default())
                .or_default()
                .1
                .push(i);
        }
        for ns in s.memberships.namespaces() {
            by_ns.entry(ns).or_default();
        }
        let rebuilt = by_ns
            .into_iter()
            .map(|(ns, (orgs, invs))| {
                let memberships = s.memberships.in_namespace(&ns);
                let index = OrgIndex::new(
                    crate::rules::organization_of(orgs.iter().map(|o| o.as_ref())),
                    memberships.iter().map(|m| m.as_ref()),
                    invs.iter().map(|i| i.as_ref()),
                );
                (ns, Arc::new(index))
            })
            .collect();
        *self.indexes.write().expect("index lock") = rebuilt;
    }
}

/// The objects of one namespace that an index is built from, besides its Memberships.
type NamespaceObjects<'a> = (Vec<&'a Arc<Organization>>, Vec<&'a Arc<Invite>>);

/// What a kind needs to be watched and cached.
trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// A watched kind: its store (without what roster never reads), and its watch events after the
/// store has taken them.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    labels: Labels,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Watched,
{
    let (reader, writer) = reflector::store();
    (reader, stripped(api, config, labels).reflect(writer))
}

/// The watch events of a kind, without what roster never reads. Caches hold up to 100,000 objects
/// of a kind; managedFields would be most of their size, and annotations can be as big again
/// (`kubectl apply` and Argo CD keep the whole object in one). roster decides nothing from either.
fn stripped<K>(
    api: Api<K>,
    config: watcher::Config,
    labels: Labels,
) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Watched,
{
    watch(api, config)
        .default_backoff()
        .modify(move |o: &mut K| {
            o.managed_fields_mut().clear();
            o.annotations_mut().clear();
            if labels == Labels::Drop {
                o.labels_mut().clear();
            }
        })
}

/// Whether a cache keeps an object's labels. The kinds people apply drop them: GitOps tools add
/// their own to every object, and roster reads none (a label on an org object grants nothing).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Labels {
    Keep,
    Drop,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invite_secrets::KnownCode;

    fn membership(ns: &str) -> Membership {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
            "metadata": { "name": "m", "namespace": ns },
            "spec": { "user": "u@example.com", "role": "member" }
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_controller_that_falls_behind_gets_every_org_namespace() {
        let caches = Caches::from_objects(
            vec![],
            vec![membership("a"), membership("b")],
            vec![],
            vec![],
        );
        let triggers = caches.triggers();
        // More changes than the channel holds (one, for these caches): some are lost.
        for ns in ["a", "a", "b"] {
            caches.triggers.send(ObjectRef::new(ns)).unwrap();
        }
        let first = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            triggers
                .take(2)
                .map(|r| r.name)
                .collect::<std::collections::BTreeSet<_>>(),
        )
        .await
        .expect("a trigger for every org namespace, not a wait for the next change");
        assert_eq!(first, ["a".to_string(), "b".to_string()].into());
    }

    fn invite(name: &str, uid: &str) -> Invite {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Invite",
            "metadata": { "name": name, "namespace": "acme", "uid": uid },
            "spec": { "role": "member" }
        }))
        .unwrap()
    }

    fn code_secret(invite_name: &str, owner_uid: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": format!("{invite_name}-invite-code"), "namespace": "acme",
                "uid": format!("secret-of-{owner_uid}"), "resourceVersion": "1",
                "labels": { INVITE_CODE_LABEL: "true" },
                "ownerReferences": [{ "apiVersion": "roster.dev/v1alpha1", "kind": "Invite",
                                      "name": invite_name, "uid": owner_uid }]
            },
            "data": { "code": "QUJDRC1FRkdILUpLTE0tTlBRUg==" }
        }))
        .unwrap()
    }

    /// A labelled Secret's data is read only when the cached metadata says a live Invite owns it:
    /// a Secret of an Invite's name owned by anything else (or by no Invite at all) is never read.
    #[tokio::test]
    async fn only_a_code_secret_a_live_invite_owns_is_ever_read() {
        // Nothing listens there: a read would fail, and is counted before it is tried.
        let client =
            Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let (known, unowned, stray) = (
            invite("known", "uid-known"),
            invite("unowned", "uid-unowned"),
            invite("stray", "uid-stray"),
        );
        let caches = Caches::from_objects(
            vec![],
            vec![],
            vec![known.clone(), unowned.clone()],
            vec![
                code_secret("known", "uid-known"),
                code_secret("unowned", "uid-someone-else"),
                code_secret("stray", "uid-stray"),
            ],
        );
        let stores = &caches.stores;
        assert_eq!(
            stores
                .invite_code(&client, &known)
                .await
                .unwrap()
                .as_deref(),
            Some("ABCD-EFGH-JKLM-NPQR")
        );
        assert_eq!(stores.invite_code(&client, &unowned).await.unwrap(), None);
        // Owned, but by an Invite the caches do not hold (deleted, or never there).
        assert_eq!(stores.invite_code(&client, &stray).await.unwrap(), None);
        assert_eq!(caches.stores.code_reads.get(), 0);

        // A remembered code is used only while the Secret is the same one.
        let mut replaced = code_secret("known", "uid-known");
        replaced.metadata.uid = Some("another-secret".into());
        let fresh = Caches::from_objects(vec![], vec![], vec![known.clone()], vec![replaced]);
        fresh.stores.codes.lock().unwrap().insert(
            ("acme".into(), "known-invite-code".into()),
            KnownCode::of(&code_secret("known", "uid-known").metadata, "OLD".into()),
        );
        assert!(fresh.stores.invite_code(&client, &known).await.is_err());
        assert_eq!(fresh.stores.code_reads.get(), 1);

        // Remembered codes are bounded by the live Invites, a relist included.
        let gone = Caches::from_objects(vec![], vec![], vec![], vec![]);
        gone.stores.codes.lock().unwrap().insert(
            ("acme".into(), "known-invite-code".into()),
            KnownCode::of(&code_secret("known", "uid-known").metadata, "OLD".into()),
        );
        gone.stores.forget_codes_of_gone_invites();
        assert!(gone.stores.codes.lock().unwrap().is_empty());
        fresh.stores.forget_code(&known);
        assert!(fresh.stores.codes.lock().unwrap().is_empty());
    }
}
