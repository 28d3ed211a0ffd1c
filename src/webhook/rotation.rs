//! When the self-managed webhook certificates change, decided without I/O: given what the shared
//! Secret holds, what the ValidatingWebhookConfiguration trusts and the time, the one step to take
//! next. [`super::self_managed`] reads, writes and serves; this module only decides.
//!
//! The sequence keeps every served certificate trusted by the `caBundle` the API server uses:
//!
//! 1. The serving certificate is re-signed by the CA whose key the Secret holds once it has
//!    `renew_before` left ([`Step::RenewLeaf`]); the `caBundle` does not change.
//! 2. When that CA has a third of its validity left (never less than one serving certificate's
//!    validity, so that no certificate it signed outlives it), a new CA joins the bundle and its key
//!    replaces the old one's ([`Step::AddCa`]); the served certificate stays.
//! 3. Once the new CA is in the published `caBundle` and has been for [`Policy::overlap`] (time for
//!    the API server to load it), the serving certificate is re-signed by it ([`Step::RenewLeaf`]).
//! 4. Once that certificate is [`Policy::overlap`] old (every replica follows the Secret well within
//!    it), the old CA leaves the bundle ([`Step::DropCas`]).
//!
//! A Secret with nothing usable (empty, expired while roster was down, unreadable) is refilled at
//! once ([`Step::StartOver`]), keeping in the bundle the CAs the webhook configuration still trusts,
//! for replicas that still serve a certificate they signed.

use std::time::{Duration, SystemTime};

/// The validity of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// Whether the certificate is still valid at `now` (expiry is what matters here: roster makes
    /// certificates valid from the moment they are made).
    fn alive(&self, now: SystemTime) -> bool {
        now < self.not_after
    }

    /// How long ago it was made, zero when it claims to be from the future.
    fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.not_before).unwrap_or_default()
    }

    /// Whether less than `margin` is left at `now`.
    fn within(&self, margin: Duration, now: SystemTime) -> bool {
        self.not_after
            .duration_since(now)
            .map_or(true, |left| left <= margin)
    }
}

/// A CA that the Secret's bundle holds, the webhook configuration trusts, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ca {
    pub validity: Validity,
    /// In the Secret's `ca.crt`.
    pub in_secret: bool,
    /// In the ValidatingWebhookConfiguration's `caBundle` (the API server trusts it).
    pub published: bool,
}

/// The serving certificate in the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub validity: Validity,
    /// The CA (an index into [`Observed::cas`]) that signed it, if it is one of them.
    pub issuer: Option<usize>,
    /// Whether it names the hosts the API server calls (the Service, or the URL's host).
    pub names_match: bool,
}

/// What the I/O side saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The Secret's bundle in its order, then the CAs only the webhook configuration trusts.
    pub cas: Vec<Ca>,
    /// The CA (index into `cas`) whose key the Secret holds.
    pub signer: Option<usize>,
    pub leaf: Option<Leaf>,
}

/// The next change to the Secret; each is one write, guarded by the Secret's resourceVersion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to change now.
    Keep,
    /// A new serving certificate, signed by the signer.
    RenewLeaf,
    /// A new CA joins the end of the bundle and its key replaces the signer's; the serving
    /// certificate stays until the new CA is trusted.
    AddCa,
    /// Nothing usable: a new CA and a serving certificate it signs, at once. The bundle keeps the
    /// CAs listed (indices into [`Observed::cas`]) before the new one.
    StartOver { keep: Vec<usize> },
    /// The bundle becomes the CAs listed: the others are expired, or nothing served chains to them.
    DropCas { keep: Vec<usize> },
}

/// How long certificates live, and when they are replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    leaf_validity: Duration,
    leaf_renew_before: Duration,
    ca_validity: Duration,
}

/// Why validities cannot work together.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the renewal time {renew_before:?} must be at least 10s")]
    RenewTooSoon { renew_before: Duration },
    #[error(
        "the serving certificate's validity {validity:?} must exceed its renewal time {renew_before:?} by at least {overlap:?} (the time replicas need to switch)"
    )]
    LeafTooShort {
        validity: Duration,
        renew_before: Duration,
        overlap: Duration,
    },
    #[error(
        "the CA's validity {ca:?} must be at least twice the serving certificate's {leaf:?}: a CA is replaced with a serving certificate's validity left, so that nothing it signed outlives it"
    )]
    CaTooShort { ca: Duration, leaf: Duration },
}

/// The serving certificate's validity by default: cert-manager's default `duration`.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(90 * 86_400);
/// Renewal with a third of the serving certificate's validity left, as cert-manager renews.
pub const DEFAULT_LEAF_RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);
/// The CA's validity by default: three years, replaced with a year left.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(3 * 365 * 86_400);

impl Default for Policy {
    fn default() -> Policy {
        Policy::new(
            DEFAULT_LEAF_VALIDITY,
            DEFAULT_LEAF_RENEW_BEFORE,
            DEFAULT_CA_VALIDITY,
        )
        .expect("the default validities work together")
    }
}

impl Policy {
    /// Validities for the serving certificate and the CA, and when the serving certificate renews.
    pub fn new(
        leaf_validity: Duration,
        leaf_renew_before: Duration,
        ca_validity: Duration,
    ) -> Result<Policy, PolicyError> {
        if leaf_renew_before < Duration::from_secs(10) {
            return Err(PolicyError::RenewTooSoon {
                renew_before: leaf_renew_before,
            });
        }
        let policy = Policy {
            leaf_validity,
            leaf_renew_before,
            ca_validity,
        };
        if leaf_validity < leaf_renew_before + policy.overlap() {
            return Err(PolicyError::LeafTooShort {
                validity: leaf_validity,
                renew_before: leaf_renew_before,
                overlap: policy.overlap(),
            });
        }
        if ca_validity < 2 * leaf_validity {
            return Err(PolicyError::CaTooShort {
                ca: ca_validity,
                leaf: leaf_validity,
            });
        }
        Ok(policy)
    }

    pub fn leaf_validity(&self) -> Duration {
        self.leaf_validity
    }

    pub fn ca_validity(&self) -> Duration {
        self.ca_validity
    }

    /// How often every replica looks at the Secret: a tenth of the renewal time, between 1 s and
    /// 30 s, so that a renewal is seen long before the old certificate expires, in production
    /// without more than a GET every 30 s, and in tests with validities of seconds.
    pub fn check_every(&self) -> Duration {
        (self.leaf_renew_before / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// How long a new CA is trusted before it signs, and a new serving certificate served before the
    /// CA it replaced is dropped: three checks, so that the API server has loaded the new bundle and
    /// every replica has followed the Secret, with a missed check to spare.
    pub fn overlap(&self) -> Duration {
        3 * self.check_every()
    }

    /// When a CA is replaced: with a third of its validity left (as cert-manager renews), and never
    /// later than a serving certificate's validity before its expiry, so that every certificate it
    /// signs expires before it does.
    pub fn ca_renew_before(&self) -> Duration {
        (self.ca_validity / 3).max(self.leaf_validity)
    }
}

/// The one step to take at `now`.
pub fn decide(policy: &Policy, now: SystemTime, seen: &Observed) -> Step {
    let ca_alive = |i: usize| seen.cas[i].in_secret && seen.cas[i].validity.alive(now);
    let signer = seen.signer.filter(|&i| ca_alive(i));
    let trusted_leaf = seen
        .leaf
        .as_ref()
        .filter(|l| l.validity.alive(now) && l.issuer.is_some_and(ca_alive));
    let signer = match signer {
        Some(s) if !seen.cas[s].validity.within(policy.ca_renew_before(), now) => s,
        // No key, or one whose CA is due: a new CA, and at once a serving certificate when the one
        // there is of no use anyway.
        _ => {
            return match trusted_leaf {
                Some(_) => Step::AddCa,
                None => Step::StartOver {
                    keep: published_alive(seen, now),
                },
            };
        }
    };
    let Some(leaf) = trusted_leaf.filter(|l| l.names_match) else {
        return Step::RenewLeaf;
    };
    if leaf.issuer != Some(signer) {
        // A new CA signs once the API server trusts it; the served certificate is still good.
        return match trusted_for(policy, &seen.cas[signer], now) {
            true => Step::RenewLeaf,
            false => Step::Keep,
        };
    }
    if leaf.validity.within(policy.leaf_renew_before, now) {
        return Step::RenewLeaf;
    }
    drop_unused(policy, seen, leaf, now)
}

/// Whether the API server has trusted `ca` long enough for it to sign what is served.
fn trusted_for(policy: &Policy, ca: &Ca, now: SystemTime) -> bool {
    ca.published && ca.validity.age(now) >= policy.overlap()
}

/// The CAs the webhook configuration trusts that have not expired.
fn published_alive(seen: &Observed, now: SystemTime) -> Vec<usize> {
    (0..seen.cas.len())
        .filter(|&i| seen.cas[i].published && seen.cas[i].validity.alive(now))
        .collect()
}

/// Drops from the bundle what nothing served chains to any more: expired CAs at once, and CAs that
/// neither sign nor signed the serving certificate once it has been served long enough for every
/// replica to follow.
fn drop_unused(policy: &Policy, seen: &Observed, leaf: &Leaf, now: SystemTime) -> Step {
    let settled = leaf.validity.age(now) >= policy.overlap();
    let bundle: Vec<usize> = (0..seen.cas.len())
        .filter(|&i| seen.cas[i].in_secret)
        .collect();
    let keep: Vec<usize> = bundle
        .iter()
        .copied()
        .filter(|&i| seen.cas[i].validity.alive(now))
        .filter(|&i| !settled || Some(i) == leaf.issuer || Some(i) == seen.signer)
        .collect();
    if keep == bundle {
        Step::Keep
    } else {
        Step::DropCas { keep }
    }
}

/// When a serving certificate signed at `now` by a CA valid until `ca_not_after` expires: after the
/// policy's validity, and never after its CA.
pub fn leaf_not_after(policy: &Policy, now: SystemTime, ca_not_after: SystemTime) -> SystemTime {
    (now + policy.leaf_validity).min(ca_not_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const DAY: Duration = Duration::from_secs(86_400);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn valid(from: u64, secs: u64) -> Validity {
        Validity {
            not_before: t(from),
            not_after: t(from + secs),
        }
    }

    /// Leaf 20 s, renewed 10 s before expiry, CA 60 s: checks every second, overlap 3 s, CAs
    /// replaced with 20 s left.
    fn short() -> Policy {
        Policy::new(20 * S, 10 * S, 60 * S).unwrap()
    }

    fn ca(from: u64, secs: u64) -> Ca {
        Ca {
            validity: valid(from, secs),
            in_secret: true,
            published: true,
        }
    }

    fn leaf(from: u64, secs: u64, issuer: usize) -> Leaf {
        Leaf {
            validity: valid(from, secs),
            issuer: Some(issuer),
            names_match: true,
        }
    }

    fn steady() -> Observed {
        Observed {
            cas: vec![ca(0, 60)],
            signer: Some(0),
            leaf: Some(leaf(0, 20, 0)),
        }
    }

    #[test]
    fn defaults_follow_cert_manager_and_derive_the_rest() {
        let p = Policy::default();
        assert_eq!(p.check_every(), 30 * S, "a GET every 30 s in production");
        assert_eq!(p.overlap(), 90 * S);
        assert_eq!(p.ca_renew_before(), 365 * DAY, "a third of three years");
        let s = short();
        assert_eq!((s.check_every(), s.overlap()), (S, 3 * S));
        assert_eq!(
            s.ca_renew_before(),
            20 * S,
            "never less than a leaf's validity"
        );
    }

    #[test]
    fn validities_that_cannot_work_together_are_refused_with_the_reason() {
        assert!(matches!(
            Policy::new(20 * S, 5 * S, 60 * S),
            Err(PolicyError::RenewTooSoon { .. })
        ));
        let e = Policy::new(12 * S, 10 * S, 60 * S).unwrap_err();
        assert!(
            e.to_string().contains("must exceed its renewal time"),
            "{e}"
        );
        assert!(matches!(
            Policy::new(20 * S, 10 * S, 30 * S),
            Err(PolicyError::CaTooShort { .. })
        ));
    }

    #[test]
    fn a_fresh_certificate_is_kept_and_renewed_with_renew_before_left() {
        let seen = steady();
        assert_eq!(decide(&short(), t(5), &seen), Step::Keep);
        assert_eq!(decide(&short(), t(9), &seen), Step::Keep);
        assert_eq!(decide(&short(), t(10), &seen), Step::RenewLeaf);
    }

    #[test]
    fn an_empty_or_expired_secret_is_refilled_at_once() {
        let empty = Observed::default();
        assert_eq!(
            decide(&short(), t(0), &empty),
            Step::StartOver { keep: vec![] }
        );
        // roster was down past the leaf's expiry; its CA still signs: a new leaf at once.
        assert_eq!(decide(&short(), t(25), &steady()), Step::RenewLeaf);
        // ... past the CA's expiry too: everything anew, nothing kept.
        assert_eq!(
            decide(&short(), t(100), &steady()),
            Step::StartOver { keep: vec![] }
        );
    }

    #[test]
    fn a_wiped_secret_keeps_the_cas_the_api_server_still_trusts() {
        let seen = Observed {
            cas: vec![Ca {
                in_secret: false,
                ..ca(0, 60)
            }],
            signer: None,
            leaf: None,
        };
        assert_eq!(
            decide(&short(), t(5), &seen),
            Step::StartOver { keep: vec![0] }
        );
    }

    #[test]
    fn a_ca_near_expiry_is_joined_by_a_new_one_before_anything_it_signed_switches() {
        // CA 0 has 20 s left at t=40: a new CA joins, the served certificate stays.
        let mut seen = Observed {
            leaf: Some(leaf(31, 20, 0)),
            ..steady()
        };
        assert_eq!(decide(&short(), t(39), &seen), Step::Keep);
        assert_eq!(decide(&short(), t(40), &seen), Step::AddCa);
        // The new CA (1) holds the key; it signs only once published and 3 s old.
        seen.cas.push(Ca {
            published: false,
            ..ca(40, 60)
        });
        seen.signer = Some(1);
        assert_eq!(decide(&short(), t(41), &seen), Step::Keep);
        assert_eq!(decide(&short(), t(45), &seen), Step::Keep, "not published");
        seen.cas[1].published = true;
        assert_eq!(decide(&short(), t(42), &seen), Step::Keep, "too new");
        assert_eq!(decide(&short(), t(43), &seen), Step::RenewLeaf);
        // Served by the new CA: the old one goes once the new certificate is 3 s old.
        seen.leaf = Some(leaf(43, 20, 1));
        assert_eq!(decide(&short(), t(45), &seen), Step::Keep);
        assert_eq!(
            decide(&short(), t(46), &seen),
            Step::DropCas { keep: vec![1] }
        );
    }

    #[test]
    fn a_secret_without_a_ca_key_gets_a_new_ca_without_a_failed_request() {
        // As roster wrote it before rotation: a CA valid for ever, and no key.
        let seen = Observed {
            cas: vec![ca(0, 1_000_000)],
            signer: None,
            leaf: Some(leaf(0, 1_000_000, 0)),
        };
        assert_eq!(decide(&short(), t(5), &seen), Step::AddCa);
    }

    #[test]
    fn a_certificate_for_other_names_is_replaced_at_once() {
        let mut seen = steady();
        seen.leaf.as_mut().unwrap().names_match = false;
        assert_eq!(decide(&short(), t(1), &seen), Step::RenewLeaf);
    }

    #[test]
    fn expired_cas_leave_the_bundle() {
        let seen = Observed {
            cas: vec![ca(0, 30), ca(10, 60)],
            signer: Some(1),
            leaf: Some(leaf(29, 20, 1)),
        };
        assert_eq!(
            decide(&short(), t(31), &seen),
            Step::DropCas { keep: vec![1] }
        );
    }

    #[test]
    fn a_leaf_never_outlives_its_ca() {
        let p = short();
        assert_eq!(leaf_not_after(&p, t(0), t(60)), t(20));
        assert_eq!(leaf_not_after(&p, t(50), t(60)), t(60));
    }

    /// Drives the decisions through many rotations, applying each step as the I/O side does (the
    /// writer publishes the Secret's bundle in the webhook configuration right after its write), and
    /// checks at every check that what any replica serves, the writer or one that follows a check
    /// later, is valid and chains to a CA that both the previous and the new `caBundle` hold (the API
    /// server may use either while it loads the new one).
    #[test]
    fn through_many_rotations_every_served_certificate_is_trusted() {
        let p = short();
        let mut sim = Simulation::default();
        let mut steps = Vec::new();
        for now in 0..600 {
            let (step, before, lagging) = sim.tick(&p, t(now));
            if step != Step::Keep {
                steps.push(step);
            }
            let Some(lagging) = lagging else { continue };
            for (leaf, ca) in [sim.served.unwrap(), lagging] {
                assert!(leaf.alive(t(now)), "t={now}: an expired certificate served");
                assert!(
                    before.contains(&ca) && sim.published.contains(&ca),
                    "t={now}: served by {ca:?}, trusted {before:?} then {:?}",
                    sim.published
                );
            }
        }
        let count = |f: fn(&Step) -> bool| steps.iter().filter(|s| f(s)).count();
        assert!(count(|s| matches!(s, Step::AddCa)) >= 10, "{steps:?}");
        assert!(count(|s| matches!(s, Step::RenewLeaf)) >= 30, "{steps:?}");
        assert!(
            count(|s| matches!(s, Step::DropCas { .. })) >= 10,
            "{steps:?}"
        );
        assert_eq!(count(|s| matches!(s, Step::StartOver { .. })), 1);
    }

    /// The Secret, the configuration's bundle and what the writing replica serves; a CA is named by
    /// its validity, a served certificate by its own and its CA's.
    #[derive(Default)]
    struct Simulation {
        bundle: Vec<Validity>,
        signer: Option<Validity>,
        leaf: Option<(Validity, Validity)>,
        published: Vec<Validity>,
        served: Option<(Validity, Validity)>,
    }

    /// What one check decided, the bundle published before it, and what a replica that follows a
    /// check later still serves.
    type Checked = (Step, Vec<Validity>, Option<(Validity, Validity)>);

    impl Simulation {
        fn tick(&mut self, p: &Policy, now: SystemTime) -> Checked {
            let before = self.published.clone();
            let lagging = self.served;
            let step = decide(p, now, &self.observed());
            self.apply(p, &step, now);
            self.published = self.bundle.clone();
            self.served = self.leaf;
            (step, before, lagging)
        }

        fn observed(&self) -> Observed {
            let cas: Vec<Ca> = self
                .bundle
                .iter()
                .map(|v| Ca {
                    validity: *v,
                    in_secret: true,
                    published: self.published.contains(v),
                })
                .collect();
            let index = |v: &Validity| self.bundle.iter().position(|b| b == v);
            Observed {
                signer: self.signer.as_ref().and_then(index),
                leaf: self.leaf.map(|(l, ca)| Leaf {
                    validity: l,
                    issuer: index(&ca),
                    names_match: true,
                }),
                cas,
            }
        }

        fn apply(&mut self, p: &Policy, step: &Step, now: SystemTime) {
            let new_ca = Validity {
                not_before: now,
                not_after: now + p.ca_validity,
            };
            match step {
                Step::Keep => {}
                Step::RenewLeaf => self.sign(p, now),
                Step::AddCa => {
                    self.bundle.push(new_ca);
                    self.signer = Some(new_ca);
                }
                Step::StartOver { keep } => {
                    self.bundle = keep.iter().map(|&i| self.bundle[i]).collect();
                    self.bundle.push(new_ca);
                    self.signer = Some(new_ca);
                    self.sign(p, now);
                }
                Step::DropCas { keep } => {
                    self.bundle = keep.iter().map(|&i| self.bundle[i]).collect();
                }
            }
        }

        fn sign(&mut self, p: &Policy, now: SystemTime) {
            let ca = self.signer.unwrap();
            let leaf = Validity {
                not_before: now,
                not_after: leaf_not_after(p, now, ca.not_after),
            };
            self.leaf = Some((leaf, ca));
        }
    }
}
