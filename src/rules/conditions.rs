//! metav1.Condition bookkeeping: `lastTransitionTime` moves only when a condition's status flips;
//! and the summary conditions (`Ready`, `Reconciling`, `Stalled`) that kstatus, `kubectl wait`, Flux
//! and Argo CD read.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::reason::ConditionReason;
use crate::api::Condition;

/// A condition as the rules want it, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub type_: &'static str,
    pub status: bool,
    pub reason: Cow<'static, str>,
    pub message: String,
}

impl Want {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Want {
        Want {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

pub const READY: &str = "Ready";
/// kstatus' "abnormal-true" conditions: present only while they hold.
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// Where an object stands, in the terms of kstatus (sigs.k8s.io/cli-utils), which Flux's health
/// checks and `wait` use: with neither `Reconciling` nor `Stalled`, `Ready=False` reads as "in
/// progress" forever, so every state that is not in progress must be `Ready=True`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// What the spec asks is in effect, or the object has reached a settled end state (an invite
    /// used up, expired or revoked; a deactivated team).
    Current,
    /// roster is working toward the spec, or waits on something that resolves by itself.
    Reconciling,
    /// Only a person can move it on.
    Stalled,
}

/// The one-line summary of an object: `Ready` with its reason and message, plus `Reconciling` or
/// `Stalled` carrying the same reason and message when one holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub standing: Standing,
    pub reason: Cow<'static, str>,
    pub message: String,
}

impl Summary {
    pub fn current(reason: ConditionReason, message: impl Into<String>) -> Summary {
        Summary::new(Standing::Current, reason, message)
    }

    pub fn reconciling(reason: ConditionReason, message: impl Into<String>) -> Summary {
        Summary::new(Standing::Reconciling, reason, message)
    }

    pub fn stalled(reason: ConditionReason, message: impl Into<String>) -> Summary {
        Summary::new(Standing::Stalled, reason, message)
    }

    pub fn new(
        standing: Standing,
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Summary {
        Summary {
            standing,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The summary `conditions` state, if they carry one.
    pub fn read(conditions: &[Condition]) -> Option<Summary> {
        let ready = find(conditions, READY)?;
        Some(Summary::new(
            standing(conditions),
            ready.reason.clone(),
            ready.message.clone(),
        ))
    }

    /// The summary of an object made of two parts: the part that is furthest from done (`Stalled`
    /// over `Reconciling` over `Current`), the first on a tie.
    pub fn and(self, other: Summary) -> Summary {
        if other.standing > self.standing {
            other
        } else {
            self
        }
    }

    /// The conditions that say it.
    pub fn wants(self) -> Vec<Want> {
        let ready = Want::new(
            READY,
            self.standing == Standing::Current,
            self.reason,
            self.message,
        );
        let abnormal = match self.standing {
            Standing::Current => None,
            Standing::Reconciling => Some(RECONCILING),
            Standing::Stalled => Some(STALLED),
        };
        let mut wants = vec![ready.clone()];
        wants.extend(abnormal.map(|type_| Want {
            type_,
            status: true,
            ..ready
        }));
        wants
    }
}

/// Builds the condition list from what is wanted now and what was there before: a condition keeps its
/// `lastTransitionTime` unless its status flipped (or it is new), so recomputing an unchanged state
/// yields identical conditions.
pub fn merge(
    previous: &[Condition],
    wanted: Vec<Want>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    wanted
        .into_iter()
        .map(|w| {
            let status = if w.status { "True" } else { "False" };
            let since = previous
                .iter()
                .find(|c| c.type_ == w.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: w.type_.to_string(),
                status: status.to_string(),
                reason: w.reason.to_string(),
                message: w.message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// Adds the condition of one part of an object (such as `AccessSynced`) to conditions that carry
/// the summary of the rest, and folds the part into that summary (see [`Summary::and`]). `previous`
/// (the object's conditions as stored) keeps their `lastTransitionTime`.
pub fn fold(
    conditions: &mut Vec<Condition>,
    part: Want,
    part_standing: Standing,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) {
    let part_summary = Summary::new(part_standing, part.reason.clone(), part.message.clone());
    let summary = match Summary::read(conditions) {
        Some(rest) => rest.and(part_summary),
        None => part_summary,
    };
    conditions.retain(|c| ![READY, RECONCILING, STALLED, part.type_].contains(&c.type_.as_str()));
    conditions.extend(merge(previous, vec![part], generation, now));
    conditions.extend(merge(previous, summary.wants(), generation, now));
}

/// Puts in place (or, with `None`, removes) a condition that is no part of the summary, such as an
/// Invite's `Delivered`: an e-mail that did not go out leaves the Invite usable and `Ready`.
pub fn put(
    conditions: &mut Vec<Condition>,
    type_: &str,
    want: Option<Want>,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) {
    conditions.retain(|c| c.type_ != type_);
    conditions.extend(merge(previous, want.into_iter().collect(), generation, now));
}

/// The standing that `conditions` state (`Current` when they state none).
pub fn standing(conditions: &[Condition]) -> Standing {
    if is_true(conditions, STALLED) {
        Standing::Stalled
    } else if is_true(conditions, RECONCILING) {
        Standing::Reconciling
    } else {
        Standing::Current
    }
}

/// The condition of a type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether a condition of this type is present with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn folded(rest: Summary, part: Standing) -> Vec<Condition> {
        let mut conditions = merge(&[], rest.wants(), Some(1), now());
        let status = part == Standing::Current;
        let want = Want::new("AccessSynced", status, "Part", "the part");
        fold(&mut conditions, want, part, &[], Some(1), now());
        conditions
    }

    #[test]
    fn the_part_furthest_from_done_sums_the_object_up() {
        let ready = Summary::current(ConditionReason::Ready, "all good");
        let c = folded(ready.clone(), Standing::Current);
        assert_eq!(standing(&c), Standing::Current);
        assert_eq!(find(&c, READY).unwrap().reason, "Ready");
        let c = folded(ready, Standing::Stalled);
        assert_eq!(standing(&c), Standing::Stalled);
        assert!(!is_true(&c, READY));
        assert_eq!(find(&c, READY).unwrap().reason, "Part");
        assert_eq!(find(&c, STALLED).unwrap().reason, "Part");
        assert!(find(&c, "AccessSynced").is_some());
        // Reconciling gives way to Stalled, never the other way round; one abnormal condition.
        let c = folded(
            Summary::reconciling(ConditionReason::OwnerQuorumNotMet, "wait"),
            Standing::Stalled,
        );
        assert_eq!(standing(&c), Standing::Stalled);
        assert!(find(&c, RECONCILING).is_none());
        let c = folded(
            Summary::stalled(ConditionReason::Duplicate, "fix it"),
            Standing::Reconciling,
        );
        assert_eq!(find(&c, READY).unwrap().reason, "Duplicate");
        assert!(find(&c, RECONCILING).is_none());
        // Folding again replaces, never duplicates.
        let mut again = c.clone();
        let want = Want::new("AccessSynced", false, "Part", "the part");
        fold(&mut again, want, Standing::Reconciling, &c, Some(1), now());
        assert_eq!(again.len(), c.len());
    }
}
