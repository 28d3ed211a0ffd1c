//! Self-managed webhook certificates: a CA and a serving certificate that roster makes, keeps in a
//! Secret shared by every replica (or in memory, outside a cluster), publishes in the
//! ValidatingWebhookConfiguration's `caBundle`, and renews before they expire.
//!
//! Every replica, leader or not, looks at the Secret every [`Policy::check_every`]: it publishes
//! the Secret's bundle, takes the step [`rotation::decide`] calls for, and serves what the Secret
//! holds once the `caBundle` read at the start of that look trusts its CA. Writes to the Secret
//! replace the version read (its resourceVersion), so of replicas that decide the same step at once
//! exactly one writes; the others serve what it wrote.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum_server::tls_rustls::RustlsConfig;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::certs::{self, CA_BUNDLE, CA_KEY, CERT, KEY, Material, Names};
use super::config::Endpoint;
use super::rotation::{self, Policy, Step};
use super::tls::{ClientAuth, ServeError, Tls};
use crate::metrics::{CertificateKind, Metrics};

/// Why the self-managed certificate could not be made, stored, published or served.
#[derive(Debug, thiserror::Error)]
pub enum SelfManagedError {
    #[error("read or write the shared webhook certificate Secret: {0}")]
    Secret(#[source] kube::Error),
    #[error("read or write the ValidatingWebhookConfiguration: {0}")]
    Configuration(#[source] kube::Error),
    #[error(transparent)]
    Issue(#[from] certs::IssueError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(
        "other replicas kept changing the shared webhook certificate Secret; gave up after {0} tries"
    )]
    Contended(u32),
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Where the certificates are kept.
pub enum Store {
    /// A Secret every replica reads and writes.
    Secret { api: Api<Secret>, name: String },
    /// This process alone (outside a cluster: nothing to share with).
    Memory(Mutex<Material>),
}

/// What the store held, and the Secret it was read from (whose resourceVersion a write replaces).
struct Stored {
    material: Material,
    secret: Option<Secret>,
}

impl Store {
    async fn read(&self) -> Result<Stored, kube::Error> {
        match self {
            Store::Memory(m) => Ok(Stored {
                material: m.lock().expect("store lock").clone(),
                secret: None,
            }),
            Store::Secret { api, name } => {
                let secret = api.get_opt(name).await?;
                Ok(Stored {
                    material: secret.as_ref().map(material).unwrap_or_default(),
                    secret,
                })
            }
        }
    }

    /// Writes `material` over what `read` returned; false when another replica wrote first.
    async fn write(&self, material: &Material, over: Stored) -> Result<bool, kube::Error> {
        let (api, name) = match self {
            Store::Memory(m) => {
                *m.lock().expect("store lock") = material.clone();
                return Ok(true);
            }
            Store::Secret { api, name } => (api, name),
        };
        let written = match over.secret {
            // The chart renders it empty; either way the resourceVersion read makes the replace
            // fail when another replica wrote since.
            Some(mut secret) => {
                secret.data = Some(data(material));
                api.replace(name, &PostParams::default(), &secret).await
            }
            None => {
                api.create(&PostParams::default(), &new_secret(name, material))
                    .await
            }
        };
        match written {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The Secret's data for `m`.
fn data(m: &Material) -> std::collections::BTreeMap<String, ByteString> {
    let fields = [
        (CA_BUNDLE, Some(&m.bundle)),
        (CA_KEY, m.ca_key.as_ref()),
        (CERT, m.cert.as_ref()),
        (KEY, m.key.as_ref()),
    ];
    fields
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), ByteString(v?.clone().into_bytes()))))
        .collect()
}

/// What a Secret holds, whatever is missing or not text left out.
fn material(s: &Secret) -> Material {
    let field = |k: &str| {
        let bytes = s.data.as_ref()?.get(k)?;
        String::from_utf8(bytes.0.clone()).ok()
    };
    Material {
        bundle: field(CA_BUNDLE).unwrap_or_default(),
        ca_key: field(CA_KEY),
        cert: field(CERT),
        key: field(KEY),
    }
}

fn new_secret(name: &str, material: &Material) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app.kubernetes.io/name".to_string(), "roster".to_string())].into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data(material)),
        ..Default::default()
    }
}

/// The ValidatingWebhookConfiguration whose `caBundle` follows the Secret's bundle.
pub struct Publisher {
    client: kube::Client,
    name: String,
    endpoint: Endpoint,
    namespaces: Vec<String>,
    timeout_seconds: i32,
}

impl Publisher {
    pub fn new(
        client: &kube::Client,
        name: &str,
        endpoint: &Endpoint,
        (namespaces, timeout_seconds): (&[String], i32),
    ) -> Publisher {
        Publisher {
            client: client.clone(),
            name: name.into(),
            endpoint: endpoint.clone(),
            namespaces: namespaces.to_vec(),
            timeout_seconds,
        }
    }

    /// The configuration's resourceVersion and `caBundle` (as text); `None` when it is absent.
    async fn read(&self) -> Result<Option<(Option<String>, String)>, kube::Error> {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        Ok(api.get_opt(&self.name).await?.map(|c| {
            let bundle = super::config::ca_bundle(&c).unwrap_or_default();
            (
                c.metadata.resource_version.clone(),
                String::from_utf8_lossy(bundle).into_owned(),
            )
        }))
    }

    /// Writes the whole configuration with `bundle`, over version `over` when it exists.
    async fn write(&self, bundle: &str, over: Option<&str>) -> Result<(), kube::Error> {
        let config = super::config::configuration(
            &self.name,
            &self.endpoint,
            Some(bundle.as_bytes()),
            &self.namespaces,
            self.timeout_seconds,
        );
        super::config::apply_over(&self.client, &config, over).await
    }
}

/// The certificates roster manages: where they are kept, published and served from.
pub struct SelfManaged {
    store: Store,
    publisher: Option<Publisher>,
    policy: Policy,
    names: Names,
    clients: ClientAuth,
    metrics: Arc<Metrics>,
}

impl SelfManaged {
    /// Certificates shared through the Secret `name` in `namespace`.
    pub fn shared(
        client: &kube::Client,
        namespace: &str,
        name: &str,
        names: Names,
        policy: Policy,
    ) -> SelfManaged {
        let store = Store::Secret {
            api: Api::namespaced(client.clone(), namespace),
            name: name.into(),
        };
        SelfManaged::new(store, names, policy)
    }

    /// Certificates kept in this process alone.
    pub fn in_memory(names: Names, policy: Policy) -> SelfManaged {
        SelfManaged::new(Store::Memory(Mutex::default()), names, policy)
    }

    fn new(store: Store, names: Names, policy: Policy) -> SelfManaged {
        SelfManaged {
            store,
            publisher: None,
            policy,
            names,
            clients: ClientAuth::anyone(),
            metrics: Arc::default(),
        }
    }

    /// Keeps `publisher`'s `caBundle` equal to the bundle (and writes its webhooks at start).
    pub fn publishing(mut self, publisher: Publisher) -> SelfManaged {
        self.publisher = Some(publisher);
        self
    }

    /// Who may call the webhook.
    pub fn clients(mut self, clients: ClientAuth) -> SelfManaged {
        self.clients = clients;
        self
    }

    /// Where the certificates' expiry is published.
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> SelfManaged {
        self.metrics = metrics;
        self
    }

    /// Makes (or takes from the Secret) a certificate to serve, writes the webhook configuration,
    /// and keeps both current in a task of their own.
    pub async fn start(self) -> Result<Tls, SelfManagedError> {
        super::tls::install_crypto_provider();
        let material = self.settle().await?;
        self.rewrite_configuration().await?;
        let serving = Serving::new(&material, &self.clients)?;
        self.measure(&material);
        let tls = Tls {
            config: serving.config.clone(),
            ca_bundle: Some(material.bundle.into_bytes()),
        };
        tokio::spawn(self.follow(serving));
        Ok(tls)
    }

    /// Rounds until the store holds something this replica can serve.
    async fn settle(&self) -> Result<Material, SelfManagedError> {
        const TRIES: u32 = 10;
        for _ in 0..TRIES {
            if let Some(look) = self.round().await?
                && look.material.serving().is_some()
            {
                return Ok(look.material);
            }
        }
        Err(SelfManagedError::Contended(TRIES))
    }

    /// Checks every [`Policy::check_every`], and serves what the store holds once the API server
    /// trusts its CA.
    async fn follow(self, mut serving: Serving) {
        let every = self.policy.check_every();
        loop {
            tokio::time::sleep(every).await;
            // Another replica wrote first: look at what it wrote at once.
            let round = match self.round().await {
                Ok(None) => self.round().await,
                other => other,
            };
            let look = match round {
                Ok(Some(look)) if self.trusted(&look) => look,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "could not check the webhook certificates");
                    continue;
                }
            };
            match serving.follow(&look.material, &self.clients) {
                Ok(()) => self.measure(&look.material),
                Err(e) => {
                    tracing::warn!(error = %e, "could not serve the shared webhook certificate")
                }
            }
        }
    }

    /// Whether the `caBundle` read at the start of `look` trusts the CA of the certificate stored: a
    /// certificate of a CA published in this very look (a Secret refilled from nothing) is served
    /// from the next look on, once the API server has loaded the bundle.
    fn trusted(&self, look: &Look) -> bool {
        let seen = certs::observe(&look.material, look.published.as_deref(), &self.names);
        let observed = seen.observed;
        let issuer = observed.leaf.and_then(|l| l.issuer);
        issuer.is_some_and(|i| observed.cas[i].published)
    }

    /// One look: publishes the stored bundle, takes the step due and returns what the store holds
    /// now; `None` when another replica wrote first.
    async fn round(&self) -> Result<Option<Look>, SelfManagedError> {
        let (published, stored) = self.publish().await?;
        let seen = certs::observe(&stored.material, published.as_deref(), &self.names);
        let now = SystemTime::now();
        let step = rotation::decide(&self.policy, now, &seen.observed);
        if step == Step::Keep {
            let material = stored.material;
            return Ok(Some(Look {
                material,
                published,
            }));
        }
        let next = certs::carry_out(
            &step,
            &seen,
            &stored.material,
            (&self.policy, &self.names),
            now,
        )?;
        let written = self.store.write(&next, stored).await;
        if !written.map_err(SelfManagedError::Secret)? {
            tracing::debug!(
                ?step,
                "another replica changed the webhook certificates first"
            );
            return Ok(None);
        }
        tracing::info!(step = describe(&step), "changed the webhook certificates");
        self.publish().await?;
        let material = next;
        Ok(Some(Look {
            material,
            published,
        }))
    }

    /// Publishes the stored bundle in the webhook configuration when it differs. The configuration
    /// is read before the Secret and written over the version read, so that a replica holding an
    /// older Secret never overwrites a newer bundle. Returns the bundle the configuration held
    /// before (a CA it did not hold is trusted from the next round on, not at once; `None` without a
    /// configuration to publish in), and what the store holds.
    async fn publish(&self) -> Result<(Option<String>, Stored), SelfManagedError> {
        let config = match &self.publisher {
            Some(p) => Some(p.read().await.map_err(SelfManagedError::Configuration)?),
            None => None,
        };
        let stored = self.store.read().await.map_err(SelfManagedError::Secret)?;
        let (Some(publisher), Some(config)) = (&self.publisher, config) else {
            return Ok((None, stored));
        };
        let (version, before) = config.unwrap_or_default();
        let bundle = &stored.material.bundle;
        if bundle.is_empty() || *bundle == before {
            return Ok((Some(before), stored));
        }
        match publisher.write(bundle, version.as_deref()).await {
            Ok(()) => tracing::info!(name = %publisher.name, "published the webhook CA bundle"),
            // Another replica published meanwhile; the next round looks again.
            Err(e) if conflict(&e) => {}
            Err(e) => return Err(SelfManagedError::Configuration(e)),
        }
        Ok((Some(before), stored))
    }

    /// Writes the whole configuration once at start (its webhooks may have changed with this
    /// version or its flags), over the version read, as [`Self::publish`] does.
    async fn rewrite_configuration(&self) -> Result<(), SelfManagedError> {
        let Some(publisher) = &self.publisher else {
            return Ok(());
        };
        const TRIES: u32 = 10;
        for _ in 0..TRIES {
            let config = publisher
                .read()
                .await
                .map_err(SelfManagedError::Configuration)?;
            let version = config.and_then(|(v, _)| v);
            let stored = self.store.read().await.map_err(SelfManagedError::Secret)?;
            match publisher
                .write(&stored.material.bundle, version.as_deref())
                .await
            {
                Ok(()) => {
                    tracing::info!(name = %publisher.name, "wrote the ValidatingWebhookConfiguration");
                    return Ok(());
                }
                Err(e) if conflict(&e) => continue,
                Err(e) => return Err(SelfManagedError::Configuration(e)),
            }
        }
        Err(SelfManagedError::Contended(TRIES))
    }

    /// Publishes when the served certificate and its CA expire.
    fn measure(&self, material: &Material) {
        let seen = certs::observe(material, None, &self.names).observed;
        let Some(leaf) = seen.leaf else { return };
        self.metrics
            .set_certificate_expiry(CertificateKind::Serving, leaf.validity.not_after);
        if let Some(ca) = leaf.issuer.and_then(|i| seen.cas.get(i)) {
            self.metrics
                .set_certificate_expiry(CertificateKind::Ca, ca.validity.not_after);
        }
    }
}

fn describe(step: &Step) -> &'static str {
    match step {
        Step::Keep => "none",
        Step::RenewLeaf => "renewed the serving certificate",
        Step::AddCa => "added a new CA to the bundle; it signs the next serving certificate",
        Step::StartOver { .. } => "made a new CA and serving certificate",
        Step::DropCas { .. } => "dropped CAs nothing served chains to from the bundle",
    }
}

/// What one look found in the store (after its own write, if any), and the `caBundle` the
/// configuration held when the look began (`None` without a configuration).
struct Look {
    material: Material,
    published: Option<String>,
}

/// What this replica serves.
struct Serving {
    config: RustlsConfig,
    cert: String,
}

impl Serving {
    fn new(material: &Material, clients: &ClientAuth) -> Result<Serving, ServeError> {
        let (cert, key) = material.serving().unwrap_or_default();
        Ok(Serving {
            config: super::tls::server_config(cert.as_bytes(), key.as_bytes(), clients)?,
            cert: cert.to_string(),
        })
    }

    /// Serves `material`'s certificate from the next connection on, when it changed.
    fn follow(&mut self, material: &Material, clients: &ClientAuth) -> Result<(), ServeError> {
        let Some((cert, key)) = material.serving() else {
            return Ok(());
        };
        if cert == self.cert {
            return Ok(());
        }
        let fresh = super::tls::server_config(cert.as_bytes(), key.as_bytes(), clients)?;
        self.config.reload_from_config(fresh.get_inner());
        self.cert = cert.to_string();
        tracing::info!("serving the renewed webhook certificate");
        Ok(())
    }
}
