//! A secret as stored, and Secrets Manager's rules for it (pure: callers pass times, ids and
//! sealed values in).
//!
//! A secret has versions, each with a version id (the request's `ClientRequestToken`, a UUID
//! otherwise), a sealed value and staging labels. Exactly one version has `AWSCURRENT` (once a
//! value exists); a new version takes the labels it is given (`AWSCURRENT` by default), each
//! label leaving the version that had it, and the version that loses `AWSCURRENT` gets
//! `AWSPREVIOUS` ([`SecretRecord::add_version`]). Versions without labels are deprecated: kept,
//! up to [`MAX_VERSIONS`] in all, oldest dropped first.
//!
//! Deletion schedules the secret for deletion after a recovery window of 7 to 30 days
//! (default 30) ([`SecretRecord::schedule_deletion`]); until then it can be restored, and every
//! operation but Describe, Restore and a forced Delete refuses it; after, it is gone
//! ([`SecretRecord::is_purged`]).

use crate::error::SmError;
use crate::shapes::Tag;
use crate::ErrorShape;
use serde::{Deserialize, Serialize};

/// The label of the current version.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The label of the version that was current before.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
/// The most versions a secret keeps (deprecated ones are dropped first).
pub const MAX_VERSIONS: usize = 100;
/// The most tags a secret has.
pub const MAX_TAGS: usize = 50;
/// The most labels one version has.
pub const MAX_STAGES: usize = 20;
/// The recovery window when none is given, in days.
pub const DEFAULT_RECOVERY_DAYS: i64 = 30;
/// Seconds in a day.
const DAY: f64 = 86_400.0;

/// Whether a value is text (`SecretString`) or bytes (`SecretBinary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueKind {
    /// `SecretString`.
    String,
    /// `SecretBinary`.
    Binary,
}

/// One version of a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// The version id.
    pub id: String,
    /// Its staging labels.
    pub stages: Vec<String>,
    /// When it was created.
    pub created: f64,
    /// Text or bytes.
    pub kind: ValueKind,
    /// The value, sealed with the installation's key for (ARN, version id): see
    /// [`crate::values`].
    pub sealed: String,
}

/// A secret scheduled for deletion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Deletion {
    /// When DeleteSecret was called (`DeletedDate`).
    pub deleted: f64,
    /// When it is gone for good (`DeletionDate`).
    pub purge_at: f64,
}

/// A secret, stored at `secretsmanager/secrets/NAME`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// The name.
    pub name: String,
    /// The ARN (the name and six random characters).
    pub arn: String,
    /// `Description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The tags, in the order given.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// `CreatedDate`.
    pub created: f64,
    /// `LastChangedDate`.
    pub last_changed: f64,
    /// `LastAccessedDate` (a day, as AWS rounds it), once a value was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_accessed: Option<f64>,
    /// Set while the secret is scheduled for deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<Deletion>,
    /// The versions, oldest first.
    #[serde(default)]
    pub versions: Vec<Version>,
}

/// What [`SecretRecord::add_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// A new version, with these labels.
    New(Vec<String>),
    /// The version already existed with the same value: nothing changed (a retried request).
    Unchanged(Vec<String>),
}

impl SecretRecord {
    /// A new secret without versions.
    pub fn new(
        name: String,
        arn: String,
        description: Option<String>,
        tags: Vec<Tag>,
        now: f64,
    ) -> Self {
        SecretRecord {
            name,
            arn,
            description,
            tags,
            created: now,
            last_changed: now,
            last_accessed: None,
            deletion: None,
            versions: Vec::new(),
        }
    }

    /// Whether it is scheduled for deletion.
    pub fn is_deleted(&self) -> bool {
        self.deletion.is_some()
    }

    /// Whether its recovery window is over at `now`: it no longer exists.
    pub fn is_purged(&self, now: f64) -> bool {
        self.deletion.is_some_and(|d| d.purge_at <= now)
    }

    /// Refuses a change to a secret scheduled for deletion.
    pub fn check_not_deleted(&self) -> Result<(), SmError> {
        if self.is_deleted() {
            return Err(SmError::marked_for_deletion());
        }
        Ok(())
    }

    /// The version with `id`.
    pub fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }

    /// The version a read asks for: by id and/or label (`AWSCURRENT` when neither), with
    /// AWS's errors when there is none.
    pub fn select(&self, id: Option<&str>, stage: Option<&str>) -> Result<&Version, SmError> {
        let found = match (id, stage) {
            (Some(id), stage) => self
                .version(id)
                .filter(|v| stage.is_none_or(|s| v.stages.iter().any(|x| x == s)))
                .ok_or_else(|| {
                    SmError::new(
                        ErrorShape::ResourceNotFoundException,
                        format!("Secrets Manager can't find the specified secret value for VersionId: {id}"),
                    )
                })?,
            (None, stage) => {
                let stage = stage.unwrap_or(AWSCURRENT);
                self.versions
                    .iter()
                    .find(|v| v.stages.iter().any(|s| s == stage))
                    .ok_or_else(|| {
                        SmError::new(
                            ErrorShape::ResourceNotFoundException,
                            format!("Secrets Manager can't find the specified secret value for staging label: {stage}"),
                        )
                    })?
            }
        };
        Ok(found)
    }

    /// Adds a version. `same_value` tells whether an existing version with the same id holds
    /// the same value (the caller opens it): a retried request changes nothing, another value
    /// under an existing id is refused.
    pub fn add_version(
        &mut self,
        version: Version,
        stages: Option<Vec<String>>,
        same_value: impl Fn(&Version) -> bool,
        now: f64,
    ) -> Result<Added, SmError> {
        if let Some(existing) = self.version(&version.id) {
            if same_value(existing) {
                return Ok(Added::Unchanged(existing.stages.clone()));
            }
            return Err(SmError::new(
                ErrorShape::ResourceExistsException,
                "You can't modify an existing version, you can only create a new version.",
            ));
        }
        let stages = stages.unwrap_or_else(|| vec![AWSCURRENT.to_string()]);
        if stages.len() > MAX_STAGES {
            return Err(SmError::new(
                ErrorShape::LimitExceededException,
                format!("A version can have at most {MAX_STAGES} staging labels."),
            ));
        }
        let mut stages_dedup: Vec<String> = Vec::new();
        for s in stages {
            if !stages_dedup.contains(&s) {
                stages_dedup.push(s);
            }
        }
        let takes_current = stages_dedup.iter().any(|s| s == AWSCURRENT);
        let old_current = self
            .versions
            .iter()
            .position(|v| v.stages.iter().any(|s| s == AWSCURRENT));
        for v in &mut self.versions {
            v.stages.retain(|s| !stages_dedup.contains(s));
        }
        if takes_current {
            if let Some(i) = old_current {
                for v in &mut self.versions {
                    v.stages.retain(|s| s != AWSPREVIOUS);
                }
                self.versions[i].stages.push(AWSPREVIOUS.to_string());
            }
        }
        let mut version = version;
        version.stages = stages_dedup.clone();
        self.versions.push(version);
        self.prune();
        self.last_changed = now;
        Ok(Added::New(stages_dedup))
    }

    /// Drops the oldest deprecated (unlabelled) versions beyond [`MAX_VERSIONS`].
    fn prune(&mut self) {
        while self.versions.len() > MAX_VERSIONS {
            match self.versions.iter().position(|v| v.stages.is_empty()) {
                Some(i) => {
                    self.versions.remove(i);
                }
                None => break,
            }
        }
    }

    /// Schedules the deletion: `days` of recovery window (7 to 30, default 30).
    pub fn schedule_deletion(&mut self, days: Option<i64>, now: f64) -> Result<f64, SmError> {
        let days = days.unwrap_or(DEFAULT_RECOVERY_DAYS);
        if !(7..=30).contains(&days) {
            return Err(SmError::invalid_parameter(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
            ));
        }
        self.check_not_deleted()?;
        let purge_at = now + days as f64 * DAY;
        self.deletion = Some(Deletion {
            deleted: now,
            purge_at,
        });
        self.last_changed = now;
        Ok(purge_at)
    }

    /// Cancels a scheduled deletion (a secret not scheduled stays as it is).
    pub fn restore(&mut self, now: f64) {
        if self.deletion.take().is_some() {
            self.last_changed = now;
        }
    }

    /// Adds or replaces tags by key.
    pub fn tag(&mut self, tags: Vec<Tag>, now: f64) -> Result<(), SmError> {
        let mut merged = self.tags.clone();
        for t in tags {
            match merged.iter_mut().find(|m| m.key == t.key) {
                Some(m) => m.value = t.value,
                None => merged.push(t),
            }
        }
        if merged.len() > MAX_TAGS {
            return Err(SmError::new(
                ErrorShape::LimitExceededException,
                format!("A secret can have at most {MAX_TAGS} tags."),
            ));
        }
        self.tags = merged;
        self.last_changed = now;
        Ok(())
    }

    /// Removes the tags with these keys.
    pub fn untag(&mut self, keys: &[String], now: f64) {
        self.tags
            .retain(|t| !t.key.as_ref().is_some_and(|k| keys.contains(k)));
        self.last_changed = now;
    }

    /// Records a read at `now` (the day, as AWS shows `LastAccessedDate`); true when that
    /// changed the record.
    pub fn touch(&mut self, now: f64) -> bool {
        let day = (now / DAY).floor() * DAY;
        if self.last_accessed == Some(day) {
            return false;
        }
        self.last_accessed = Some(day);
        true
    }

    /// `VersionIdsToStages` of the labelled versions.
    pub fn version_stages(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.versions
            .iter()
            .filter(|v| !v.stages.is_empty())
            .map(|v| (v.id.clone(), v.stages.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str) -> Version {
        Version {
            id: id.into(),
            stages: vec![],
            created: 1.0,
            kind: ValueKind::String,
            sealed: format!("sealed-{id}"),
        }
    }

    fn record() -> SecretRecord {
        SecretRecord::new("db".into(), "arn".into(), None, vec![], 0.0)
    }

    fn stages(r: &SecretRecord) -> Vec<(String, Vec<String>)> {
        r.versions
            .iter()
            .map(|v| (v.id.clone(), v.stages.clone()))
            .collect()
    }

    #[test]
    fn current_moves_to_the_new_version_and_previous_follows() {
        let mut r = record();
        r.add_version(v("1"), None, |_| false, 1.0).unwrap();
        r.add_version(v("2"), None, |_| false, 2.0).unwrap();
        r.add_version(v("3"), None, |_| false, 3.0).unwrap();
        assert_eq!(
            stages(&r),
            vec![
                ("1".into(), vec![]),
                ("2".into(), vec![AWSPREVIOUS.into()]),
                ("3".into(), vec![AWSCURRENT.into()]),
            ]
        );
        assert_eq!(r.select(None, None).unwrap().id, "3");
        assert_eq!(r.select(None, Some(AWSPREVIOUS)).unwrap().id, "2");
        assert_eq!(r.select(Some("1"), None).unwrap().id, "1");
        assert_eq!(r.version_stages().len(), 2);
    }

    #[test]
    fn custom_labels_leave_current_alone() {
        let mut r = record();
        r.add_version(v("1"), None, |_| false, 1.0).unwrap();
        r.add_version(v("2"), Some(vec!["AWSPENDING".into()]), |_| false, 2.0)
            .unwrap();
        assert_eq!(r.select(None, None).unwrap().id, "1");
        assert_eq!(r.select(None, Some("AWSPENDING")).unwrap().id, "2");
        assert!(r.select(None, Some(AWSPREVIOUS)).is_err());
    }

    #[test]
    fn a_retried_version_is_a_no_op_and_another_value_is_refused() {
        let mut r = record();
        r.add_version(v("1"), None, |_| false, 1.0).unwrap();
        assert_eq!(
            r.add_version(v("1"), None, |_| true, 2.0).unwrap(),
            Added::Unchanged(vec![AWSCURRENT.into()])
        );
        let e = r.add_version(v("1"), None, |_| false, 2.0).unwrap_err();
        assert_eq!(
            e.kind,
            crate::error::Kind::Modeled(ErrorShape::ResourceExistsException)
        );
    }

    #[test]
    fn missing_versions_and_labels_have_awss_messages() {
        let r = record();
        assert_eq!(
            r.select(None, None).unwrap_err().message,
            "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT"
        );
        assert!(r
            .select(Some("x"), None)
            .unwrap_err()
            .message
            .ends_with("VersionId: x"));
    }

    #[test]
    fn deletion_has_a_7_to_30_day_window_and_can_be_undone() {
        let mut r = record();
        assert!(r.schedule_deletion(Some(6), 0.0).is_err());
        assert!(r.schedule_deletion(Some(31), 0.0).is_err());
        let at = r.schedule_deletion(None, 100.0).unwrap();
        assert_eq!(at, 100.0 + 30.0 * DAY);
        assert!(r.is_deleted() && !r.is_purged(at - 1.0) && r.is_purged(at));
        assert!(r.schedule_deletion(Some(7), 200.0).is_err());
        assert!(r.check_not_deleted().is_err());
        r.restore(300.0);
        assert!(!r.is_deleted());
        assert!(r.schedule_deletion(Some(7), 400.0).is_ok());
    }

    #[test]
    fn deprecated_versions_are_pruned_oldest_first() {
        let mut r = record();
        for i in 0..(MAX_VERSIONS + 5) {
            r.add_version(v(&i.to_string()), None, |_| false, i as f64)
                .unwrap();
        }
        assert_eq!(r.versions.len(), MAX_VERSIONS);
        assert_eq!(r.versions[0].id, "5");
        assert_eq!(
            r.select(None, None).unwrap().id,
            (MAX_VERSIONS + 4).to_string()
        );
    }

    #[test]
    fn tags_merge_by_key_and_are_limited() {
        let mut r = record();
        let t = |k: &str, v: &str| Tag {
            key: Some(k.into()),
            value: Some(v.into()),
        };
        r.tag(vec![t("a", "1"), t("b", "2")], 1.0).unwrap();
        r.tag(vec![t("a", "3")], 2.0).unwrap();
        assert_eq!(r.tags, vec![t("a", "3"), t("b", "2")]);
        r.untag(&["a".into()], 3.0);
        assert_eq!(r.tags, vec![t("b", "2")]);
        let many: Vec<Tag> = (0..50).map(|i| t(&format!("k{i}"), "v")).collect();
        assert!(r.tag(many, 4.0).is_err());
    }
}
