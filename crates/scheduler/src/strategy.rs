//! Placement strategies: which of the instances that can take a task gets it.
//!
//! What it is: [`PlacementStrategy`] (random, spread, binpack) with ECS's wire
//! parsing ([`PlacementStrategy::from_ecs`]) and the documented defaults
//! ([`default_strategy`]). What it is not: the selection algorithm (that is
//! `place`), which applies a chain of these in order, each one narrowing the
//! ties left by the previous one.
//!
//! Semantics kept here and in `place`:
//! - `binpack(cpu|memory)`: prefer the instance with the least remaining
//!   amount of the field (among those the task fits on).
//! - `spread(instanceId)` = `spread(host)`: prefer the instance running the
//!   fewest tasks of the request's group.
//! - `spread(attribute:NAME)`: prefer instances whose value of NAME has the
//!   fewest tasks of the request's group over the cluster's ACTIVE instances
//!   (instances without the attribute form one more value of their own).
//! - `random`: pick uniformly; a strategy after `random` can never break a tie
//!   and is ignored.
//! - Ties left after the whole chain are broken uniformly at random with the
//!   request's seed.
//!
//! Invariant: at most [`MAX_STRATEGIES`] (5) strategies per request.

use crate::error::PlacementError;

/// ECS's limit on strategies per request.
pub const MAX_STRATEGIES: usize = 5;

/// The resource binpack packs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinpackField {
    /// CPU units.
    Cpu,
    /// Memory.
    Memory,
}

/// What spread spreads over.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SpreadField {
    /// `instanceId` or `host`: one value per instance.
    InstanceId,
    /// `attribute:NAME`, e.g. `attribute:ecs.availability-zone`.
    Attribute(String),
}

/// One placement strategy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PlacementStrategy {
    /// `random`.
    Random,
    /// `spread` on a field.
    Spread(SpreadField),
    /// `binpack` on a resource.
    Binpack(BinpackField),
}

/// Who is asking: decides the default strategy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PlacementKind {
    /// RunTask / StartTask.
    #[default]
    Task,
    /// The service scheduler.
    Service,
}

impl PlacementStrategy {
    /// `spread(attribute:ecs.availability-zone)`.
    pub fn spread_az() -> Self {
        Self::Spread(SpreadField::Attribute("ecs.availability-zone".into()))
    }

    /// Parses ECS's `{type, field}`. Types are `random`, `spread`, `binpack`;
    /// binpack fields are `cpu` / `memory` (any case); spread fields are
    /// `instanceId`, `host` or `attribute:NAME`; random takes no field (a
    /// field is ignored, as ECS does).
    pub fn from_ecs(kind: &str, field: Option<&str>) -> Result<Self, PlacementError> {
        let bad = |m: String| Err(PlacementError::InvalidStrategy(m));
        match kind {
            "random" => Ok(Self::Random),
            "binpack" => match field.map(str::to_ascii_lowercase).as_deref() {
                Some("cpu") => Ok(Self::Binpack(BinpackField::Cpu)),
                Some("memory") => Ok(Self::Binpack(BinpackField::Memory)),
                Some(f) => bad(format!("binpack field must be cpu or memory, not {f}")),
                None => bad("binpack needs a field (cpu or memory)".into()),
            },
            "spread" => match field {
                Some("instanceId") | Some("host") => Ok(Self::Spread(SpreadField::InstanceId)),
                Some(f) => match f.strip_prefix("attribute:") {
                    Some(name) if !name.is_empty() => {
                        Ok(Self::Spread(SpreadField::Attribute(name.to_string())))
                    }
                    _ => bad(format!(
                        "spread field must be instanceId, host or attribute:<name>, not {f}"
                    )),
                },
                None => bad("spread needs a field".into()),
            },
            other => bad(format!(
                "type must be random, spread or binpack, not {other}"
            )),
        }
    }

    /// ECS's `type`.
    pub fn ecs_type(&self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Spread(_) => "spread",
            Self::Binpack(_) => "binpack",
        }
    }

    /// ECS's `field` (`None` for random).
    pub fn ecs_field(&self) -> Option<String> {
        match self {
            Self::Random => None,
            Self::Spread(SpreadField::InstanceId) => Some("instanceId".into()),
            Self::Spread(SpreadField::Attribute(n)) => Some(format!("attribute:{n}")),
            Self::Binpack(BinpackField::Cpu) => Some("cpu".into()),
            Self::Binpack(BinpackField::Memory) => Some("memory".into()),
        }
    }
}

/// The strategy used when a request gives none.
///
/// - For [`PlacementKind::Task`] (RunTask): `random` — each task goes to a
///   uniformly chosen instance it fits on.
/// - For [`PlacementKind::Service`]: `spread(attribute:ecs.availability-zone)`
///   then `spread(instanceId)` — ECS's service scheduler balances a service's
///   tasks across zones, then across instances within a zone.
pub fn default_strategy(kind: PlacementKind) -> Vec<PlacementStrategy> {
    match kind {
        PlacementKind::Task => vec![PlacementStrategy::Random],
        PlacementKind::Service => vec![
            PlacementStrategy::spread_az(),
            PlacementStrategy::Spread(SpreadField::InstanceId),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ecs_forms() {
        assert_eq!(
            PlacementStrategy::from_ecs("binpack", Some("MEMORY")).unwrap(),
            PlacementStrategy::Binpack(BinpackField::Memory)
        );
        assert_eq!(
            PlacementStrategy::from_ecs("spread", Some("host")).unwrap(),
            PlacementStrategy::Spread(SpreadField::InstanceId)
        );
        assert_eq!(
            PlacementStrategy::from_ecs("spread", Some("attribute:ecs.availability-zone")).unwrap(),
            PlacementStrategy::spread_az()
        );
        assert_eq!(
            PlacementStrategy::from_ecs("random", None).unwrap(),
            PlacementStrategy::Random
        );
        assert!(PlacementStrategy::from_ecs("binpack", Some("disk")).is_err());
        assert!(PlacementStrategy::from_ecs("spread", Some("attribute:")).is_err());
        assert!(PlacementStrategy::from_ecs("spread", None).is_err());
        assert!(PlacementStrategy::from_ecs("pack", None).is_err());
    }

    #[test]
    fn round_trip_and_defaults() {
        for s in [
            PlacementStrategy::Random,
            PlacementStrategy::spread_az(),
            PlacementStrategy::Spread(SpreadField::InstanceId),
            PlacementStrategy::Binpack(BinpackField::Cpu),
        ] {
            let back = PlacementStrategy::from_ecs(s.ecs_type(), s.ecs_field().as_deref()).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(
            default_strategy(PlacementKind::Task),
            vec![PlacementStrategy::Random]
        );
        assert_eq!(default_strategy(PlacementKind::Service).len(), 2);
    }
}
