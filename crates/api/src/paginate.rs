//! `nextToken`/`maxResults` pagination, the same for every List operation.
//!
//! A token is opaque to clients: base64 of the sort key of the last item returned. The next page
//! starts strictly after it, so a page is stable even when items are added or removed between
//! calls.

use base64::Engine;
use flotilla_model::EcsError;

/// Decodes a `nextToken` into the last key of the previous page.
pub fn decode_token(token: Option<&str>) -> Result<Option<String>, EcsError> {
    let Some(t) = token else { return Ok(None) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(Some)
        .ok_or_else(|| {
            EcsError::invalid_parameter(
                "Invalid nextToken: it was not returned by a previous call of this operation.",
            )
        })
}

/// Encodes the last key of a page as a `nextToken`.
pub fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Checks `maxResults` against the operation's allowed range and applies its default.
pub fn page_size(max_results: Option<i32>, default: usize, max: usize) -> Result<usize, EcsError> {
    match max_results {
        None => Ok(default),
        Some(n) if n >= 1 && (n as usize) <= max => Ok(n as usize),
        Some(n) => Err(EcsError::invalid_parameter(format!(
            "Invalid value {n} for maxResults: it must be between 1 and {max}."
        ))),
    }
}

/// [`page`] of records that answer with their ARNs (the List operations): each item's sort key
/// and ARN in, the page of ARNs out as the response member wants it (`Some`, possibly empty).
pub fn arns(
    items: impl Iterator<Item = (String, String)>,
    token: Option<&str>,
    max_results: Option<i32>,
    default: usize,
) -> Result<(Option<Vec<String>>, Option<String>), EcsError> {
    let (arns, next) = page(items.collect(), token, max_results, default, 100)?;
    Ok((Some(arns), next))
}

/// Takes one page from `items` (already filtered and in order), each with its sort key.
pub fn page<T>(
    items: Vec<(String, T)>,
    token: Option<&str>,
    max_results: Option<i32>,
    default: usize,
    max: usize,
) -> Result<(Vec<T>, Option<String>), EcsError> {
    let size = page_size(max_results, default, max)?;
    let after = decode_token(token)?;
    let mut out = Vec::new();
    let mut last_key = None;
    let mut more = false;
    let mut started = after.is_none();
    let after = after.unwrap_or_default();
    for (key, item) in items {
        if !started {
            if key == after {
                started = true;
            }
            continue;
        }
        if out.len() == size {
            more = true;
            break;
        }
        last_key = Some(key);
        out.push(item);
    }
    if !started {
        // The token's item is gone; fall back to "nothing further" rather than restarting.
        return Ok((Vec::new(), None));
    }
    Ok((
        out,
        if more {
            last_key.map(|k| encode_token(&k))
        } else {
            None
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_every_item_exactly_once() {
        let items: Vec<(String, i32)> = (0..25).map(|i| (format!("k{i:03}"), i)).collect();
        let mut token = None;
        let mut seen = Vec::new();
        loop {
            let (page, next) = page(items.clone(), token.as_deref(), Some(10), 100, 100).unwrap();
            seen.extend(page);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
    }

    #[test]
    fn bad_tokens_and_sizes() {
        assert!(page::<i32>(vec![], Some("!!!"), None, 10, 100).is_err());
        assert!(page::<i32>(vec![], None, Some(0), 10, 100).is_err());
        assert!(page::<i32>(vec![], None, Some(101), 10, 100).is_err());
    }
}
