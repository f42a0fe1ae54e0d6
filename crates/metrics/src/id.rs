//! A metric's identity, as CloudWatch defines it: the namespace, the metric name and the set of
//! dimensions (name/value pairs). Two metrics with the same name but different dimensions are
//! different metrics; the order dimensions are given in does not matter, so [`MetricId::new`]
//! sorts them by name, and a `MetricId` compares and hashes as the metric it names.

use serde::{Deserialize, Serialize};

/// One dimension: a name/value pair that is part of a metric's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dimension {
    /// `ClusterName`.
    pub name: String,
    /// `default`.
    pub value: String,
}

impl Dimension {
    /// A dimension.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Dimension {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A metric: namespace, name and dimensions (sorted by name, each name once).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MetricId {
    /// `AWS/ECS`, or a custom namespace.
    pub namespace: String,
    /// `CPUUtilization`.
    pub name: String,
    /// Sorted by name.
    pub dimensions: Vec<Dimension>,
}

impl MetricId {
    /// The metric `namespace`/`name` with `dimensions`, given in any order. A dimension name
    /// given twice keeps its last value (callers validate input before; CloudWatch refuses
    /// duplicates).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        dimensions: impl IntoIterator<Item = Dimension>,
    ) -> Self {
        let mut dims: Vec<Dimension> = Vec::new();
        for d in dimensions {
            match dims.iter_mut().find(|x| x.name == d.name) {
                Some(x) => x.value = d.value,
                None => dims.push(d),
            }
        }
        dims.sort();
        MetricId {
            namespace: namespace.into(),
            name: name.into(),
            dimensions: dims,
        }
    }

    /// The value of dimension `name`, if the metric has it.
    pub fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }
}

impl std::fmt::Display for MetricId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        for d in &self.dimensions {
            write!(f, " {}={}", d.name, d.value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_order_does_not_matter() {
        let a = MetricId::new(
            "AWS/ECS",
            "CPUUtilization",
            [
                Dimension::new("ServiceName", "s"),
                Dimension::new("ClusterName", "c"),
            ],
        );
        let b = MetricId::new(
            "AWS/ECS",
            "CPUUtilization",
            [
                Dimension::new("ClusterName", "c"),
                Dimension::new("ServiceName", "s"),
            ],
        );
        assert_eq!(a, b);
        assert_eq!(a.dimension("ServiceName"), Some("s"));
        assert_eq!(
            a.to_string(),
            "AWS/ECS/CPUUtilization ClusterName=c ServiceName=s"
        );
    }

    #[test]
    fn a_repeated_dimension_keeps_its_last_value() {
        let a = MetricId::new(
            "N",
            "M",
            [Dimension::new("A", "1"), Dimension::new("A", "2")],
        );
        assert_eq!(a.dimensions, vec![Dimension::new("A", "2")]);
    }
}
