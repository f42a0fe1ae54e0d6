//! The tag rules every operation that takes `tags` shares: at most 50 per resource, unique keys,
//! and no keys in the reserved `aws:` namespace.

use flotilla_model::shapes::Tag;
use flotilla_model::EcsError;

/// The most tags a resource may carry.
pub const MAX_TAGS: usize = 50;

/// Checks tags given in a request; `existing` is how many other tags the resource keeps.
pub fn validate_tags(tags: &[Tag], existing: usize) -> Result<(), EcsError> {
    let mut keys = std::collections::HashSet::new();
    for t in tags {
        let key = t.key.as_deref().unwrap_or("");
        if key.is_empty() {
            return Err(EcsError::invalid_parameter("Tag keys must not be empty."));
        }
        if key.len() >= 4 && key[..4].eq_ignore_ascii_case("aws:") {
            return Err(EcsError::invalid_parameter(format!(
                "Tag key '{key}' is not allowed: the 'aws:' prefix is reserved for AWS use."
            )));
        }
        if !keys.insert(key) {
            return Err(EcsError::invalid_parameter(format!(
                "Tag key '{key}' appears more than once."
            )));
        }
    }
    if tags.len() + existing > MAX_TAGS {
        return Err(EcsError::invalid_parameter(format!(
            "A resource can have at most {MAX_TAGS} tags; this request would leave it with {}.",
            tags.len() + existing
        )));
    }
    Ok(())
}
