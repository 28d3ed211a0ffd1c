//! The caches every replica keeps: one reflector store per watched kind, an [`OrgIndex`] per org
//! namespace kept current from the watch events (so webhook decisions never scan), and a stream of
//! "this org namespace changed" triggers for the controller.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::api::{Invite, Membership, Organization, Team};
use crate::removals::RemovalLog;
use crate::rules::OrgIndex;

/// Label on the Secrets that hold invite codes; only these Secrets are watched.
pub const INVITE_CODE_LABEL: &str = "roster.dev/invite-code";

/// The name of the Secret holding an invite's code.
pub fn code_secret_name(invite: &Invite) -> String {
    let mut name = format!("{}-invite-code", invite.name_any());
    name.truncate(253);
    name
}

/// The code in an invite code Secret, only if that Secret belongs to this very Invite (not to an
/// earlier Invite of the same name).
pub fn invite_code(secret: &Secret, invite: &Invite) -> Option<String> {
    let uid = invite.uid()?;
    secret
        .owner_references()
        .iter()
        .any(|r| r.uid == uid)
        .then_some(())?;
    String::from_utf8(secret.data.as_ref()?.get("code")?.0.clone()).ok()
}

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
    pub memberships: Store<Membership>,
    pub invites: Store<Invite>,
    pub teams: Store<Team>,
    pub secrets: Store<Secret>,
    /// RoleBindings roster made, in every namespace (workload namespaces are outside the scope).
    pub role_bindings: Store<RoleBinding>,
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
        let _ = self.memberships.wait_until_ready().await;
        let _ = self.invites.wait_until_ready().await;
        let _ = self.teams.wait_until_ready().await;
        let _ = self.secrets.wait_until_ready().await;
        let _ = self.role_bindings.wait_until_ready().await;
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
}

impl Caches {
    /// Starts watching; the returned caches fill in the background.
    pub fn start(client: &Client, scope: &Scope) -> Caches {
        let config = watcher::Config::default().any_semantic();
        let (triggers, _) = broadcast::channel(4096);
        let (organizations, org_events) =
            reflect(scope.api::<Organization>(client), config.clone());
        let (memberships, membership_events) =
            reflect(scope.api::<Membership>(client), config.clone());
        let (invites, invite_events) = reflect(scope.api::<Invite>(client), config.clone());
        let (teams, team_events) = reflect(scope.api::<Team>(client), config.clone());
        let (secrets, secret_events) = reflect(
            scope.api::<Secret>(client),
            config.clone().labels(INVITE_CODE_LABEL),
        );
        let (role_bindings, binding_events) = reflect(
            Api::<RoleBinding>::all(client.clone()),
            config.labels(crate::access::ORGANIZATION_LABEL),
        );
        let caches = Caches {
            stores: Stores {
                organizations,
                memberships,
                invites,
                teams,
                secrets,
                role_bindings,
            },
            removals: Arc::default(),
            indexes: Arc::default(),
            triggers,
        };
        caches.drive(org_events, scope, Caches::on_organization);
        caches.drive(membership_events, scope, Caches::on_membership);
        caches.drive(invite_events, scope, Caches::on_invite);
        caches.drive(team_events, scope, |_, _| {});
        caches.drive(secret_events, scope, |_, _| {});
        // A binding changed or deleted by someone else is repaired by its organization's reconcile.
        caches.drive_mapped(binding_events, scope, |b: &RoleBinding| {
            b.labels().get(crate::access::ORGANIZATION_LABEL).cloned()
        });
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
        let caches = Caches {
            stores: Stores {
                organizations: filled(organizations),
                memberships: filled(memberships),
                invites: filled(invites),
                teams: filled(Vec::<Team>::new()),
                secrets: filled(secrets),
                role_bindings: filled(Vec::<RoleBinding>::new()),
            },
            removals: Arc::default(),
            indexes: Arc::default(),
            triggers: broadcast::channel(1).0,
        };
        caches.rebuild();
        caches
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
        let bindings = s.role_bindings.state();
        (s.organizations.state().iter().filter_map(|o| o.namespace()))
            .chain(s.memberships.state().iter().filter_map(|o| o.namespace()))
            .chain(s.invites.state().iter().filter_map(|o| o.namespace()))
            .chain(s.teams.state().iter().filter_map(|o| o.namespace()))
            .chain(
                bindings
                    .iter()
                    .filter_map(|b| b.labels().get(crate::access::ORGANIZATION_LABEL).cloned()),
            )
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

    fn drive_mapped<K>(
        &self,
        events: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
        scope: &Scope,
        org_namespace: fn(&K) -> Option<String>,
    ) where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        self.drive_with(events, scope, |_, _| {}, org_namespace);
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
        let caches = self.clone();
        let scope = scope.clone();
        tokio::spawn(events.for_each(move |event| {
            match event {
                Ok(event) => {
                    update(&caches, &event);
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
                // The oldest Organization of a namespace is its organization.
                let mut orgs = self
                    .stores
                    .organizations
                    .state_filter(|x| x.namespace().as_deref() == Some(&ns));
                orgs.sort_by_key(|x| {
                    (
                        x.meta().creation_timestamp.as_ref().map(|t| t.0),
                        x.name_any(),
                    )
                });
                let org = orgs.first().map(|x| (**x).clone());
                self.edit(&ns, |index| index.organization = org);
            }
            Event::InitDone => self.rebuild(),
            Event::Init => {}
        }
    }

    fn on_membership(&self, event: &Event<Membership>) {
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
            Event::Delete(i) => self.edit(&i.namespace().unwrap_or_default(), |index| {
                index.remove_invite(&i.name_any())
            }),
            Event::InitDone => self.rebuild(),
            Event::Init => {}
        }
    }

    /// After a (re)list, objects deleted while the watch was down are gone from the stores but may
    /// linger in the indexes: rebuild them all from the stores.
    fn rebuild(&self) {
        let mut by_ns: HashMap<String, NamespaceObjects> = HashMap::new();
        for o in self.stores.organizations.state() {
            by_ns
                .entry(o.namespace().unwrap_or_default())
                .or_default()
                .0
                .push(o);
        }
        for m in self.stores.memberships.state() {
            by_ns
                .entry(m.namespace().unwrap_or_default())
                .or_default()
                .1
                .push(m);
        }
        for i in self.stores.invites.state() {
            by_ns
                .entry(i.namespace().unwrap_or_default())
                .or_default()
                .2
                .push(i);
        }
        let rebuilt = by_ns
            .into_iter()
            .map(|(ns, (mut orgs, ms, invs))| {
                orgs.sort_by_key(|x| {
                    (
                        x.meta().creation_timestamp.as_ref().map(|t| t.0),
                        x.name_any(),
                    )
                });
                let index = OrgIndex::new(
                    orgs.first().map(|o| o.as_ref()),
                    ms.iter().map(|m| m.as_ref()),
                    invs.iter().map(|i| i.as_ref()),
                );
                (ns, Arc::new(index))
            })
            .collect();
        *self.indexes.write().expect("index lock") = rebuilt;
    }
}

/// The objects of one namespace that an index is built from.
type NamespaceObjects = (
    Vec<Arc<Organization>>,
    Vec<Arc<Membership>>,
    Vec<Arc<Invite>>,
);

/// A watched kind: its store, and its watch events after the store has taken them.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let events = watch(api, config)
        .default_backoff()
        // Caches hold thousands of objects; managedFields would be most of their size.
        .modify(|o: &mut K| o.managed_fields_mut().clear())
        .reflect(writer);
    (reader, events)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
