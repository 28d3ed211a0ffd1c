//! Identity providers: how the platform's authenticators name users, and what it means that a user
//! "signed in with" one of them.
//!
//! Kubernetes keeps no record of which identity provider authenticated a request. What the API
//! server (and so roster's webhook) sees is the username and the `extra` map of `userInfo`, both
//! made by the authenticator: structured authentication's `claimMappings.username.prefix` puts a
//! prefix on every username an OIDC issuer produces (`google:ada@acme.example`), and
//! `claimMappings.extra` can carry a claim such as an Entra ID tenant
//! (`extra["entra.example/tid"]`). So the platform names its providers at install
//! (`roster run --identity-provider name=google,usernamePrefix=google:`), and:
//!
//! - a user signed in with provider P when the username starts with P's prefix and has something
//!   after it. The configuration guarantees at most one provider per username: prefixes are
//!   non-empty (an empty one would credit P with every username any authenticator makes: client
//!   certificates, tokens, other issuers) and none is the start of another.
//! - a user is in tenant T of P when `extra[P.tenantKey]` holds T. Only the webhook sees `extra`,
//!   and only for the user who makes the request; see [`crate::rules::redemption`] for how the
//!   controller, which never sees it, agrees.
//!
//! Prefixes and tenants are compared exactly: Kubernetes usernames are case-sensitive, and
//! `Google:ada@acme.example` is not a username the `google:` provider makes.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::api::IdentityProviderRef;

/// `userInfo.extra` of a request: keys (lower case, as the API server hands them on) to values.
pub type Extra = BTreeMap<String, Vec<String>>;

/// One identity provider the platform configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityProvider {
    /// The name Invites and selfJoin policies use (`spec.identityProvider.name`).
    pub name: String,
    /// What the authenticator puts before every username of this provider (`google:`).
    pub username_prefix: String,
    /// The `userInfo.extra` key that carries the user's tenant, if this provider has tenants.
    pub tenant_key: Option<String>,
}

/// The keys of the `--identity-provider` flag, as written.
const KEYS: &str = "name, usernamePrefix, tenantKey";

impl FromStr for IdentityProvider {
    type Err = String;

    /// `name=google,usernamePrefix=google:` or
    /// `name=entra,usernamePrefix=entra:,tenantKey=entra.example/tid`. A value cannot hold `,`
    /// (the separator) or `;` (which separates providers in `ROSTER_IDENTITY_PROVIDERS`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (mut name, mut prefix, mut tenant_key) = (None, None, None);
        for field in text.split(',') {
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!(
                    "{field:?} is not key=value; write name=NAME,usernamePrefix=PREFIX[,tenantKey=KEY]"
                ));
            };
            let slot = match key {
                "name" => &mut name,
                "usernamePrefix" => &mut prefix,
                "tenantKey" => &mut tenant_key,
                other => return Err(format!("unknown key {other:?}; the keys are {KEYS}")),
            };
            if slot.replace(value.to_string()).is_some() {
                return Err(format!("{key} is given twice"));
            }
        }
        let provider = IdentityProvider {
            name: name.ok_or("name is missing: write name=NAME,usernamePrefix=PREFIX")?,
            username_prefix: prefix.ok_or(
                "usernamePrefix is missing: the prefix the authenticator puts on this provider's usernames (claimMappings.username.prefix), such as google:",
            )?,
            tenant_key,
        };
        provider.validate()?;
        Ok(provider)
    }
}

impl fmt::Display for IdentityProvider {
    /// The flag form, which [`IdentityProvider::from_str`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "name={},usernamePrefix={}",
            self.name, self.username_prefix
        )?;
        if let Some(key) = &self.tenant_key {
            write!(f, ",tenantKey={key}")?;
        }
        Ok(())
    }
}

/// Whether `name` is what `spec.identityProvider.name` accepts (the CRD's rule).
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

impl IdentityProvider {
    /// One provider on its own: a name Invites can use, a prefix that names this provider's users
    /// only, and a tenant key that can match.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        if !is_dns_label(name) {
            return Err(format!(
                "name {name:?} must be a lowercase name such as google or entra (letters, digits and -, at most 63), as Invites write it in spec.identityProvider.name"
            ));
        }
        let prefix = &self.username_prefix;
        if prefix.is_empty() {
            return Err(format!(
                "identity provider {name}: usernamePrefix must not be empty: without a prefix every username (client certificates, tokens, other issuers) would count as signed in with {name}; set claimMappings.username.prefix for it, such as {name}:"
            ));
        }
        if prefix.starts_with("system:") {
            return Err(format!(
                "identity provider {name}: usernamePrefix {prefix:?} starts with system:, which Kubernetes reserves for its own identities"
            ));
        }
        if prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ';')
        {
            return Err(format!(
                "identity provider {name}: usernamePrefix {prefix:?} holds whitespace, a control character, ',' or ';'"
            ));
        }
        if self.tenant_key.as_deref() == Some("") {
            return Err(format!(
                "identity provider {name}: tenantKey is empty; leave it out for a provider without tenants"
            ));
        }
        if let Some(key) = &self.tenant_key
            && (key
                .chars()
                .any(|c| c.is_ascii_uppercase() || c.is_whitespace() || c.is_control()))
        {
            return Err(format!(
                "identity provider {name}: tenantKey {key:?} must be lower case without whitespace: Kubernetes requires extra keys in lower case (claimMappings.extra[].key), and the API server lowers impersonated ones"
            ));
        }
        Ok(())
    }

    /// The rest of `username` after this provider's prefix, when this provider made it: the
    /// prefix, then at least one character.
    pub fn signed_in<'u>(&self, username: &'u str) -> Option<&'u str> {
        username
            .strip_prefix(self.username_prefix.as_str())
            .filter(|rest| !rest.is_empty())
    }

    /// The username this provider gives the person whose address (or other claim) is `rest`.
    pub fn username(&self, rest: &str) -> String {
        format!("{}{rest}", self.username_prefix)
    }

    /// Whether the request's `extra` puts its user in `tenant` (never, without a tenant key).
    pub fn in_tenant(&self, tenant: &str, extra: &Extra) -> bool {
        self.tenant_key
            .as_ref()
            .and_then(|key| extra.get(key))
            .is_some_and(|values| values.iter().any(|v| v == tenant))
    }

    /// The tenants `extra` names for this provider, for messages.
    pub fn tenants<'e>(&self, extra: &'e Extra) -> &'e [String] {
        self.tenant_key
            .as_ref()
            .and_then(|key| extra.get(key))
            .map_or(&[], Vec::as_slice)
    }
}

/// The providers of one installation, checked together: unique names, and no prefix that is the
/// start of another's (so a username belongs to one provider at most).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityProviders {
    /// By name.
    providers: Vec<IdentityProvider>,
}

/// Why a reference to a provider (an Invite's or a selfJoin policy's) cannot be checked by this
/// installation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unchecked<'a> {
    /// No provider of that name is configured.
    Unknown(&'a str),
    /// The reference names a tenant, and the provider has no tenant key to read it from.
    NoTenantKey(&'a IdentityProvider),
}

impl Unchecked<'_> {
    /// What is wrong, naming `field` (the reference's path, such as `spec.identityProvider`) and
    /// what to do; `configured` lists the installation's providers.
    pub fn message(&self, field: &str, configured: &IdentityProviders) -> String {
        match self {
            Unchecked::Unknown(name) => format!(
                "{field}.name: identity provider {name} is not configured in this installation ({}); use one of those, or ask your platform team to add it (roster run --identity-provider, chart value identityProviders)",
                configured.describe()
            ),
            Unchecked::NoTenantKey(p) => format!(
                "{field}.tenant: identity provider {} has no tenantKey configured, so roster cannot see a user's tenant; leave the tenant out, or ask your platform team to configure one",
                p.name
            ),
        }
    }
}

impl IdentityProviders {
    /// The providers, refused with the first problem found.
    pub fn new(
        providers: impl IntoIterator<Item = IdentityProvider>,
    ) -> Result<IdentityProviders, String> {
        let mut providers: Vec<IdentityProvider> = providers.into_iter().collect();
        for p in &providers {
            p.validate()?;
        }
        providers.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in providers.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(format!(
                    "identity provider {} is configured twice",
                    pair[0].name
                ));
            }
        }
        for a in &providers {
            for b in &providers {
                if a.name != b.name && b.username_prefix.starts_with(&a.username_prefix) {
                    return Err(format!(
                        "identity providers {} and {} overlap: usernamePrefix {:?} starts with {:?}, so a username of {} would also count as signed in with {}; give each provider a prefix of its own that no other starts with",
                        a.name, b.name, b.username_prefix, a.username_prefix, b.name, a.name
                    ));
                }
            }
        }
        Ok(IdentityProviders { providers })
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &IdentityProvider> {
        self.providers.iter()
    }

    pub fn get(&self, name: &str) -> Option<&IdentityProvider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The provider a username was made by, if any (at most one: prefixes never overlap).
    pub fn signed_in_with<'s, 'u>(
        &'s self,
        username: &'u str,
    ) -> Option<(&'s IdentityProvider, &'u str)> {
        self.providers
            .iter()
            .find_map(|p| Some((p, p.signed_in(username)?)))
    }

    /// The configured provider a reference names, if this installation can check it.
    pub fn resolve<'a>(
        &'a self,
        reference: &'a IdentityProviderRef,
    ) -> Result<&'a IdentityProvider, Unchecked<'a>> {
        let p = self
            .get(&reference.name)
            .ok_or(Unchecked::Unknown(&reference.name))?;
        if reference.tenant.is_some() && p.tenant_key.is_none() {
            return Err(Unchecked::NoTenantKey(p));
        }
        Ok(p)
    }

    /// Whether `username` is `address` itself or `address` as one of these providers names it:
    /// what an invite for `address` that is bound to no provider ("any provider") accepts.
    pub fn any_names(&self, username: &str, address: &str) -> bool {
        username == address
            || self
                .signed_in_with(username)
                .is_some_and(|(_, rest)| rest == address)
    }

    /// `google (google:), entra (entra:, tenant from entra.example/tid)`, or `none are configured`.
    pub fn describe(&self) -> String {
        if self.providers.is_empty() {
            return "none are configured".into();
        }
        let each: Vec<String> = self
            .providers
            .iter()
            .map(|p| match &p.tenant_key {
                Some(key) => format!("{} ({}, tenant from {key})", p.name, p.username_prefix),
                None => format!("{} ({})", p.name, p.username_prefix),
            })
            .collect();
        format!("configured: {}", each.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(text: &str) -> IdentityProvider {
        text.parse().unwrap()
    }

    fn google_and_entra() -> IdentityProviders {
        IdentityProviders::new([
            provider("name=google,usernamePrefix=google:"),
            provider("name=entra,usernamePrefix=entra:,tenantKey=entra.example/tid"),
        ])
        .unwrap()
    }

    #[test]
    fn the_flag_form_reads_and_writes_back() {
        let entra = provider("name=entra,usernamePrefix=entra:,tenantKey=entra.example/tid");
        assert_eq!(entra.name, "entra");
        assert_eq!(entra.username_prefix, "entra:");
        assert_eq!(entra.tenant_key.as_deref(), Some("entra.example/tid"));
        assert_eq!(entra.to_string().parse::<IdentityProvider>(), Ok(entra));
        let google = provider("usernamePrefix=https://accounts.google.com#,name=google");
        assert_eq!(google.username_prefix, "https://accounts.google.com#");
        assert_eq!(google.tenant_key, None);
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        for (text, says) in [
            ("google", "key=value"),
            ("name=google", "usernamePrefix is missing"),
            ("usernamePrefix=google:", "name is missing"),
            ("name=google,usernamePrefix=", "must not be empty"),
            ("name=Google,usernamePrefix=google:", "lowercase name"),
            ("name=google,usernamePrefix=system:google:", "system:"),
            ("name=google,usernamePrefix=g :", "whitespace"),
            ("name=google,prefix=google:", "unknown key \"prefix\""),
            (
                "name=google,usernamePrefix=google:,name=g",
                "name is given twice",
            ),
            (
                "name=entra,usernamePrefix=entra:,tenantKey=Entra.example/TID",
                "lower case",
            ),
            (
                "name=entra,usernamePrefix=entra:,tenantKey=",
                "tenantKey is empty",
            ),
        ] {
            let err = text.parse::<IdentityProvider>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn providers_are_unique_and_their_prefixes_never_overlap() {
        let twice = IdentityProviders::new([
            provider("name=google,usernamePrefix=google:"),
            provider("name=google,usernamePrefix=g:"),
        ]);
        assert!(twice.unwrap_err().contains("configured twice"));
        let overlap = IdentityProviders::new([
            provider("name=google,usernamePrefix=google:"),
            provider("name=workspace,usernamePrefix=google:workspace:"),
        ])
        .unwrap_err();
        assert!(overlap.contains("overlap"), "{overlap}");
        assert!(
            overlap.contains("google") && overlap.contains("workspace"),
            "{overlap}"
        );
        let same = IdentityProviders::new([
            provider("name=a,usernamePrefix=oidc:"),
            provider("name=b,usernamePrefix=oidc:"),
        ]);
        assert!(same.unwrap_err().contains("overlap"));
        assert!(google_and_entra().get("entra").is_some());
        assert!(IdentityProviders::default().is_empty());
    }

    #[test]
    fn a_username_belongs_to_the_provider_whose_prefix_it_carries() {
        let p = google_and_entra();
        fn of<'u>(p: &IdentityProviders, u: &'u str) -> Option<(String, &'u str)> {
            p.signed_in_with(u).map(|(p, rest)| (p.name.clone(), rest))
        }
        let of = |u| of(&p, u);
        assert_eq!(
            of("google:ada@acme.example"),
            Some(("google".into(), "ada@acme.example"))
        );
        assert_eq!(
            of("entra:google:ada@acme.example"),
            Some(("entra".into(), "google:ada@acme.example"))
        );
        for nobody in [
            "ada@acme.example",
            "Google:ada@acme.example",
            "GOOGLE:ada@acme.example",
            " google:ada@acme.example",
            "google:",
            "googleada@acme.example",
            "system:serviceaccount:ns:google",
        ] {
            assert_eq!(of(nobody), None, "{nobody}");
        }
    }

    #[test]
    fn an_invite_for_any_provider_accepts_the_address_under_every_prefix() {
        let p = google_and_entra();
        for yes in [
            "ada@acme.example",
            "google:ada@acme.example",
            "entra:ada@acme.example",
        ] {
            assert!(p.any_names(yes, "ada@acme.example"), "{yes}");
        }
        for no in [
            "okta:ada@acme.example",
            "Ada@acme.example",
            "google:Ada@acme.example",
            "entra:google:ada@acme.example",
            "google:ada@acme.example.evil",
        ] {
            assert!(!p.any_names(no, "ada@acme.example"), "{no}");
        }
        // Without providers, only the address itself (roster's behaviour before providers).
        assert!(
            !IdentityProviders::default().any_names("google:ada@acme.example", "ada@acme.example")
        );
    }

    #[test]
    fn tenants_come_from_the_providers_key_only() {
        let p = google_and_entra();
        let entra = p.get("entra").unwrap();
        let google = p.get("google").unwrap();
        let extra: Extra = [
            ("entra.example/tid".to_string(), vec!["t-1".to_string()]),
            ("other/tid".to_string(), vec!["t-2".to_string()]),
        ]
        .into();
        assert!(entra.in_tenant("t-1", &extra));
        assert!(!entra.in_tenant("t-2", &extra));
        assert!(!entra.in_tenant("T-1", &extra));
        assert!(!google.in_tenant("t-1", &extra));
        assert_eq!(entra.tenants(&extra), ["t-1".to_string()]);
    }

    #[test]
    fn references_resolve_only_to_what_can_be_checked() {
        let p = google_and_entra();
        let r = |name: &str, tenant: Option<&str>| IdentityProviderRef {
            name: name.into(),
            tenant: tenant.map(Into::into),
        };
        assert!(p.resolve(&r("google", None)).is_ok());
        assert!(p.resolve(&r("entra", Some("t-1"))).is_ok());
        let okta = r("okta", None);
        let unknown = p.resolve(&okta).unwrap_err();
        assert_eq!(unknown, Unchecked::Unknown("okta"));
        let m = unknown.message("spec.identityProvider", &p);
        assert!(
            m.starts_with("spec.identityProvider.name: identity provider okta"),
            "{m}"
        );
        assert!(
            m.contains("entra (entra:, tenant from entra.example/tid), google (google:)"),
            "{m}"
        );
        let tenant = r("google", Some("t-1"));
        let m = p
            .resolve(&tenant)
            .unwrap_err()
            .message("spec.identityProvider", &p);
        assert!(
            m.starts_with(
                "spec.identityProvider.tenant: identity provider google has no tenantKey"
            ),
            "{m}"
        );
        let none = IdentityProviders::default();
        let m = none
            .resolve(&okta)
            .unwrap_err()
            .message("spec.policy.selfJoin.identityProvider", &none);
        assert!(m.contains("none are configured"), "{m}");
    }
}
