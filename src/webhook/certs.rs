//! The self-managed webhook certificates as PEM: what the shared Secret holds, read back into what
//! [`super::rotation`] decides from, and made anew (rcgen) for each of its steps. No I/O.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::rotation::{self, Ca, Leaf, Observed, Policy, Step, Validity};

/// The Secret's keys: the CA bundle the `caBundle` copies (oldest first), the key of the CA that
/// signs (the newest), and the serving certificate and key (as cert-manager names them).
pub const CA_BUNDLE: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const CERT: &str = "tls.crt";
pub const KEY: &str = "tls.key";

/// What the shared Secret holds, as PEM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Material {
    pub bundle: String,
    pub ca_key: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

impl Material {
    /// Whether there is a serving certificate and key to serve.
    pub fn serving(&self) -> Option<(&str, &str)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }
}

/// The host names and addresses the serving certificate must carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("generate a webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the shared webhook Secret holds no CA key to sign with")]
    NoSigner,
}

/// One CA of a bundle, read back.
struct CaCert {
    pem: String,
    validity: Validity,
    subject: Vec<u8>,
    public_key: Vec<u8>,
}

/// The serving certificate, read back.
struct LeafCert {
    validity: Validity,
    issuer: Vec<u8>,
    names: Names,
}

fn seconds(timestamp: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(timestamp.max(0).unsigned_abs())
}

fn validity(cert: &X509Certificate<'_>) -> Validity {
    Validity {
        not_before: seconds(cert.validity().not_before.timestamp()),
        not_after: seconds(cert.validity().not_after.timestamp()),
    }
}

/// The PEM blocks of the certificates in `text`, each on its own.
fn pem_blocks(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    text.split_inclusive(END)
        .filter_map(|block| Some(format!("{}\n", &block[block.find(BEGIN)?..])))
        .filter(|block| block.trim_end().ends_with(END))
        .collect()
}

/// Parses one PEM certificate and hands it to `read`; `None` when it does not parse.
fn with_cert<T>(pem: &str, read: impl FnOnce(&X509Certificate<'_>) -> T) -> Option<T> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(read(&cert))
}

/// The CAs of a bundle that parse, in its order.
fn read_cas(bundle: &str) -> Vec<CaCert> {
    pem_blocks(bundle)
        .into_iter()
        .filter_map(|pem| {
            let (validity, subject, public_key) = with_cert(&pem, |c| {
                (
                    validity(c),
                    c.subject().as_raw().to_vec(),
                    c.public_key().subject_public_key.data.to_vec(),
                )
            })?;
            Some(CaCert {
                pem,
                validity,
                subject,
                public_key,
            })
        })
        .collect()
}

fn read_leaf(pem: &str) -> Option<LeafCert> {
    with_cert(pem, |c| {
        let mut names = Names::default();
        let sans = c.subject_alternative_name().ok().flatten();
        for name in sans.iter().flat_map(|s| s.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(d) => names.dns.push(d.to_string()),
                GeneralName::IPAddress(b) => names.ips.extend(ip(b)),
                _ => {}
            }
        }
        LeafCert {
            validity: validity(c),
            issuer: c.issuer().as_raw().to_vec(),
            names,
        }
    })
}

fn ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// When the certificate in `pem` (the first of a chain) expires.
pub fn not_after(pem: &str) -> Option<SystemTime> {
    with_cert(pem_blocks(pem).first()?, |c| validity(c).not_after)
}

/// What the Secret and the webhook configuration hold, read for a decision, with the CAs as PEM in
/// the same order as [`Observed::cas`].
pub struct Seen {
    pub observed: Observed,
    cas: Vec<String>,
}

fn same_names(a: &Names, b: &Names) -> bool {
    let set = |n: &Names| {
        let mut dns = n.dns.clone();
        dns.sort();
        let mut ips = n.ips.clone();
        ips.sort();
        (dns, ips)
    };
    set(a) == set(b)
}

/// Reads the Secret's `material` and the `published` bundle (the webhook configuration's `caBundle`,
/// `None` when there is no configuration to wait for: then the Secret's CAs count as trusted).
pub fn observe(material: &Material, published: Option<&str>, wanted: &Names) -> Seen {
    let in_secret = read_cas(&material.bundle);
    let trusted = published.map(read_cas);
    let is_published = |pem: &str| {
        trusted
            .as_ref()
            .is_none_or(|t| t.iter().any(|c| c.pem.trim() == pem.trim()))
    };
    let mut cas: Vec<Ca> = in_secret
        .iter()
        .map(|c| Ca {
            validity: c.validity,
            in_secret: true,
            published: is_published(&c.pem),
        })
        .collect();
    let mut pems: Vec<String> = in_secret.iter().map(|c| c.pem.clone()).collect();
    for c in trusted.iter().flatten() {
        if !pems.iter().any(|p| p.trim() == c.pem.trim()) {
            cas.push(Ca {
                validity: c.validity,
                in_secret: false,
                published: true,
            });
            pems.push(c.pem.clone());
        }
    }
    let signer_key = material
        .ca_key
        .as_deref()
        .and_then(|k| KeyPair::from_pem(k).ok());
    let signer = signer_key.and_then(|k| {
        in_secret
            .iter()
            .rposition(|c| c.public_key == k.public_key_raw())
    });
    let leaf = material.cert.as_deref().and_then(read_leaf).map(|l| Leaf {
        validity: l.validity,
        issuer: in_secret.iter().rposition(|c| c.subject == l.issuer),
        names_match: same_names(&l.names, wanted),
    });
    Seen {
        observed: Observed { cas, signer, leaf },
        cas: pems,
    }
}

/// The Secret's new contents after `step`, made at `now`.
pub fn carry_out(
    step: &Step,
    seen: &Seen,
    material: &Material,
    (policy, names): (&Policy, &Names),
    now: SystemTime,
) -> Result<Material, IssueError> {
    let kept = |keep: &[usize]| {
        keep.iter()
            .map(|&i| seen.cas[i].clone())
            .collect::<Vec<_>>()
    };
    let mut next = material.clone();
    match step {
        Step::Keep => {}
        Step::RenewLeaf => {
            let signer = seen.observed.signer.ok_or(IssueError::NoSigner)?;
            let ca_key = material.ca_key.as_deref().ok_or(IssueError::NoSigner)?;
            let ca_key = KeyPair::from_pem(ca_key)?;
            let not_after = seen.observed.cas[signer].validity.not_after;
            sign_into(
                &mut next,
                &seen.cas[signer],
                &ca_key,
                (policy, names),
                not_after,
                now,
            )?;
        }
        Step::AddCa => {
            let (ca, key) = new_ca(policy, now)?;
            next.bundle = format!("{}{}", material.bundle, ca);
            next.ca_key = Some(key.serialize_pem());
        }
        Step::StartOver { keep } => {
            let (ca, key) = new_ca(policy, now)?;
            next.bundle = format!("{}{ca}", kept(keep).concat());
            next.ca_key = Some(key.serialize_pem());
            let not_after = now + policy.ca_validity();
            sign_into(&mut next, &ca, &key, (policy, names), not_after, now)?;
        }
        Step::DropCas { keep } => next.bundle = kept(keep).concat(),
    }
    Ok(next)
}

/// A new CA, valid from `now` for the policy's CA validity, with a name of its own (serving
/// certificates are matched to their CA by issuer name).
fn new_ca(policy: &Policy, now: SystemTime) -> Result<(String, KeyPair), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut tag = [0u8; 4];
    getrandom::fill(&mut tag).expect("the operating system provides randomness");
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("roster webhook CA {since}-{tag}"),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now.into();
    params.not_after = (now + policy.ca_validity()).into();
    Ok((params.self_signed(&key)?.pem(), key))
}

/// Signs a new serving certificate with the CA `ca_pem` (key `ca_key`, valid until `ca_not_after`)
/// into `next`.
fn sign_into(
    next: &mut Material,
    ca_pem: &str,
    ca_key: &KeyPair,
    (policy, names): (&Policy, &Names),
    ca_not_after: SystemTime,
    now: SystemTime,
) -> Result<(), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(names.dns.clone())?;
    leaf.subject_alt_names
        .extend(names.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    leaf.distinguished_name.push(
        DnType::CommonName,
        names.dns.first().map_or("roster-webhook", |d| d.as_str()),
    );
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now.into();
    leaf.not_after = rotation::leaf_not_after(policy, now, ca_not_after).into();
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key)?;
    next.cert = Some(leaf.signed_by(&key, &issuer)?.pem());
    next.key = Some(key.serialize_pem());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
        }
    }

    fn policy() -> Policy {
        Policy::new(
            Duration::from_secs(20),
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
        .unwrap()
    }

    fn run(step: &Step, material: &Material, published: Option<&str>, now: SystemTime) -> Material {
        let seen = observe(material, published, &names());
        carry_out(step, &seen, material, (&policy(), &names()), now).unwrap()
    }

    /// Whether rustls, trusting exactly `bundle`, accepts `material`'s serving certificate for
    /// 127.0.0.1 at `now`, as the API server would.
    fn trusted(bundle: &str, material: &Material, now: SystemTime) -> bool {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder(roots.into())
            .build()
            .unwrap();
        let leaf =
            CertificateDer::from_pem_slice(material.cert.as_ref().unwrap().as_bytes()).unwrap();
        let at = UnixTime::since_unix_epoch(now.duration_since(SystemTime::UNIX_EPOCH).unwrap());
        let server = ServerName::try_from("127.0.0.1").unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &server, &[], at)
            .is_ok()
    }

    #[test]
    fn a_new_secret_is_read_back_as_it_was_made() {
        let now = SystemTime::now();
        let filled = run(
            &Step::StartOver { keep: vec![] },
            &Material::default(),
            None,
            now,
        );
        let seen = observe(&filled, None, &names()).observed;
        assert_eq!(seen.cas.len(), 1);
        assert_eq!(seen.signer, Some(0), "the key is the CA's");
        let leaf = seen.leaf.unwrap();
        assert_eq!(leaf.issuer, Some(0));
        assert!(leaf.names_match);
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(leaf.validity.not_after), secs(now) + 20);
        assert_eq!(secs(seen.cas[0].validity.not_after), secs(now) + 60);
        assert!(trusted(&filled.bundle, &filled, now));
        assert_eq!(
            not_after(filled.cert.as_ref().unwrap()),
            Some(leaf.validity.not_after)
        );
        let other = Names {
            dns: vec!["roster.roster-system.svc".into()],
            ips: vec![],
        };
        assert!(
            !observe(&filled, None, &other)
                .observed
                .leaf
                .unwrap()
                .names_match
        );
    }

    #[test]
    fn each_step_keeps_the_served_certificate_trusted_by_the_bundle() {
        let now = SystemTime::now();
        let first = run(
            &Step::StartOver { keep: vec![] },
            &Material::default(),
            None,
            now,
        );
        let renewed = run(&Step::RenewLeaf, &first, None, now);
        assert_ne!(renewed.cert, first.cert);
        assert_eq!(renewed.bundle, first.bundle, "same CA");
        assert!(trusted(&renewed.bundle, &renewed, now));

        let joined = run(&Step::AddCa, &renewed, None, now);
        assert_eq!(joined.cert, renewed.cert, "the served certificate stays");
        let seen = observe(&joined, Some(&renewed.bundle), &names()).observed;
        assert_eq!(seen.cas.len(), 2);
        assert_eq!(seen.signer, Some(1), "the new CA signs");
        assert!(!seen.cas[1].published);
        assert_eq!(seen.leaf.unwrap().issuer, Some(0));
        assert!(trusted(&joined.bundle, &joined, now));

        let switched = run(&Step::RenewLeaf, &joined, Some(&joined.bundle), now);
        assert_eq!(
            observe(&switched, None, &names())
                .observed
                .leaf
                .unwrap()
                .issuer,
            Some(1)
        );
        assert!(
            trusted(&joined.bundle, &switched, now),
            "trusted by the bundle of both"
        );
        assert!(
            !trusted(&renewed.bundle, &switched, now),
            "signed by the new CA"
        );

        let dropped = run(&Step::DropCas { keep: vec![1] }, &switched, None, now);
        assert_eq!(read_cas(&dropped.bundle).len(), 1);
        assert!(trusted(&dropped.bundle, &dropped, now));
    }

    #[test]
    fn a_wiped_secret_starts_over_with_the_published_cas_first() {
        let now = SystemTime::now();
        let old = run(
            &Step::StartOver { keep: vec![] },
            &Material::default(),
            None,
            now,
        );
        let seen = observe(&Material::default(), Some(&old.bundle), &names());
        assert!(!seen.observed.cas[0].in_secret && seen.observed.cas[0].published);
        let refilled = carry_out(
            &Step::StartOver { keep: vec![0] },
            &seen,
            &Material::default(),
            (&policy(), &names()),
            now,
        )
        .unwrap();
        assert!(refilled.bundle.starts_with(&old.bundle));
        assert!(
            trusted(&refilled.bundle, &old, now),
            "the old certificate stays trusted"
        );
        assert!(trusted(&refilled.bundle, &refilled, now));
    }

    #[test]
    fn what_does_not_parse_counts_as_absent() {
        let garbage = Material {
            bundle: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".into(),
            ca_key: Some("nope".into()),
            cert: Some("nope".into()),
            key: Some("nope".into()),
        };
        let seen = observe(&garbage, None, &names()).observed;
        assert_eq!(seen, Observed::default());
    }
}
