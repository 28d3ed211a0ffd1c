//! The Secrets that hold invite codes: their names, labels and type, reading a code out of one, and
//! the codes a replica remembers (see docs/design.md, "Invite codes").
//!
//! The operator creates one Secret per Invite (`controller::apply::create_code_secret`), owned by
//! that Invite; the caches watch these Secrets' metadata only and read a code on demand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::api::Invite;
pub use crate::names::{INVITE_CODE_LABEL, INVITE_LABEL, INVITE_SECRET_TYPE};

/// The name of the Secret holding an invite's code.
pub fn code_secret_name(invite: &Invite) -> String {
    crate::names::bounded_name(
        "",
        &format!("{}-invite-code", invite.name_any()),
        crate::names::NAME_MAX,
    )
}

/// Whether an object is owned by this very Invite (not by an earlier Invite of the same name).
pub fn owned_by(meta: &ObjectMeta, invite: &Invite) -> bool {
    invite
        .uid()
        .is_some_and(|uid| meta.owner_references.iter().flatten().any(|r| r.uid == uid))
}

/// The code in an invite code Secret, only if that Secret belongs to this very Invite.
pub fn invite_code(secret: &Secret, invite: &Invite) -> Option<String> {
    owned_by(&secret.metadata, invite).then_some(())?;
    code_of(secret)
}

/// The code an invite code Secret holds (its `code` key), whoever owns it.
pub fn code_of(secret: &Secret) -> Option<String> {
    String::from_utf8(secret.data.as_ref()?.get("code")?.0.clone()).ok()
}

/// A code read from its Secret, valid while the Secret keeps this uid and resourceVersion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownCode {
    uid: Option<String>,
    version: Option<String>,
    code: String,
}

impl KnownCode {
    pub fn of(meta: &ObjectMeta, code: String) -> KnownCode {
        KnownCode {
            uid: meta.uid.clone(),
            version: meta.resource_version.clone(),
            code,
        }
    }

    fn fits(&self, meta: &ObjectMeta) -> bool {
        self.uid == meta.uid && self.version == meta.resource_version
    }
}

/// Codes read so far by (namespace, Secret name), shared by the clones of a replica's caches.
#[derive(Clone, Debug, Default)]
pub struct KnownCodes(Arc<Mutex<HashMap<(String, String), KnownCode>>>);

impl std::ops::Deref for KnownCodes {
    type Target = Mutex<HashMap<(String, String), KnownCode>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl KnownCodes {
    /// The remembered code of Secret `namespace/name`, if that Secret is still the one it was read
    /// from (`meta` is its cached metadata).
    pub fn get(&self, namespace: &str, name: &str, meta: &ObjectMeta) -> Option<String> {
        let codes = self.lock().expect("codes lock");
        let known = codes.get(&(namespace.to_string(), name.to_string()))?;
        known.fits(meta).then(|| known.code.clone())
    }

    /// Remembers the code of a Secret just read or created, if it belongs to `invite`; returns it.
    pub fn remember(&self, secret: &Secret, invite: &Invite) -> Option<String> {
        let code = invite_code(secret, invite)?;
        let key = (secret.namespace()?, secret.name_any());
        self.lock()
            .expect("codes lock")
            .insert(key, KnownCode::of(&secret.metadata, code.clone()));
        Some(code)
    }

    /// Keeps the codes of the Secrets (by namespace and name) `keep` accepts.
    pub fn retain(&self, mut keep: impl FnMut(&(String, String)) -> bool) {
        self.lock().expect("codes lock").retain(|key, _| keep(key));
    }

    /// Forgets the code of an Invite that is gone.
    pub fn forget(&self, invite: &Invite) {
        let key = (
            invite.namespace().unwrap_or_default(),
            code_secret_name(invite),
        );
        self.lock().expect("codes lock").remove(&key);
    }
}
