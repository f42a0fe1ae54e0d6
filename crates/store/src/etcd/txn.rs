//! Translation of a Flotilla [`Txn`] into one etcd transaction, and of its answer back.
//!
//! - Compares: `Absent(k)` is `version(k) == 0`; `Present(k)` is `version(k) > 0`;
//!   `ModRevision(k, r)` is `mod_revision(k) == r`, except `r == 0`, which no key ever has
//!   (an absent key reads as 0 in etcd, but the contract says the compare then fails), so it
//!   becomes `version(k) < 0`, which never holds.
//! - Ops: etcd refuses a transaction that names one key twice (`duplicate key given in txn
//!   request`), so the ops are coalesced first: for each key only its last op is sent, at the
//!   position of that last op. The stored state after the commit is the one of applying every op
//!   in order; only the intermediate events (and, for a put then delete of an absent key, the
//!   revision bump) disappear, as the [`Txn`] contract allows.
//! - The failure branch reads every compared key (keys only), so that on a conflict the failed
//!   compares are found by evaluating them against the same snapshot the server used: etcd itself
//!   only answers "succeeded: false".
//! - [`request_size_bound`] bounds the encoded request from above, so that a request over
//!   etcd's `--max-request-bytes` is refused before it is sent.
//!
//! This module does no I/O.

use std::collections::HashMap;

use etcd_client::{Compare as EtcdCompare, CompareOp, GetOptions, Txn as EtcdTxn, TxnOp};

use crate::memory::{c_key, holds};
use crate::{Compare, Op, Txn};

/// Bytes etcd adds around a client request before it checks the size (the raft request header,
/// the member id and the request id), rounded up generously.
const RAFT_ENVELOPE: usize = 128;

/// One Flotilla transaction ready to send.
pub(crate) struct Translated {
    /// The etcd transaction.
    pub txn: EtcdTxn,
    /// The distinct compared keys (Flotilla keys), in the order the failure branch reads them.
    pub read_back: Vec<String>,
    /// An upper bound of the request's encoded size as etcd measures it.
    pub size_bound: usize,
}

/// Keeps only the last op of each key, at the position of that last op.
pub(crate) fn coalesce(ops: Vec<Op>) -> Vec<Op> {
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        last.insert(op_key(op), i);
    }
    let keep: Vec<bool> = (0..ops.len())
        .map(|i| last.get(op_key(&ops[i])) == Some(&i))
        .collect();
    ops.into_iter()
        .zip(keep)
        .filter_map(|(op, k)| k.then_some(op))
        .collect()
}

fn op_key(op: &Op) -> &str {
    match op {
        Op::Put(k, _) | Op::Delete(k) => k,
    }
}

/// Translates `txn` for an installation whose keys live under `prefix`.
pub(crate) fn translate(prefix: &str, txn: Txn) -> Translated {
    let full = |k: &str| format!("{prefix}{k}");
    let mut read_back: Vec<String> = Vec::new();
    for c in &txn.compares {
        let k = c_key(c);
        if !read_back.iter().any(|r| r == k) {
            read_back.push(k.to_owned());
        }
    }
    let ops = coalesce(txn.ops);
    let size_bound = request_size_bound(prefix.len(), &txn.compares, &ops, &read_back);
    let compares: Vec<EtcdCompare> = txn
        .compares
        .iter()
        .map(|c| match c {
            Compare::Absent(k) => EtcdCompare::version(full(k), CompareOp::Equal, 0),
            Compare::Present(k) => EtcdCompare::version(full(k), CompareOp::Greater, 0),
            Compare::ModRevision(k, 0) => EtcdCompare::version(full(k), CompareOp::Less, 0),
            Compare::ModRevision(k, r) => {
                EtcdCompare::mod_revision(full(k), CompareOp::Equal, revision_i64(*r))
            }
        })
        .collect();
    let then: Vec<TxnOp> = ops
        .into_iter()
        .map(|op| match op {
            Op::Put(k, v) => TxnOp::put(full(&k), v, None),
            Op::Delete(k) => TxnOp::delete(full(&k), None),
        })
        .collect();
    let or_else: Vec<TxnOp> = read_back
        .iter()
        .map(|k| TxnOp::get(full(k), Some(GetOptions::new().with_keys_only())))
        .collect();
    let txn = EtcdTxn::new()
        .when(compares)
        .and_then(then)
        .or_else(or_else);
    Translated {
        txn,
        read_back,
        size_bound,
    }
}

/// A Flotilla revision as etcd's signed revision (revisions never reach `i64::MAX`).
pub(crate) fn revision_i64(r: u64) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

/// Indexes of the compares that fail given each compared key's `mod_revision` at the
/// transaction's revision (`None`: absent).
pub(crate) fn failed_compares(
    compares: &[Compare],
    read_back: &[String],
    current: &[Option<u64>],
) -> Vec<usize> {
    compares
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let k = c_key(c);
            let cur = read_back
                .iter()
                .position(|r| r == k)
                .and_then(|i| current.get(i).copied().flatten());
            !holds(c, cur)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Protobuf cost of a length-delimited field of `len` bytes: tag, length varint, body.
fn field(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn varint_len(v: u64) -> usize {
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Most bytes a varint field (tag and value) can take.
const VARINT_FIELD: usize = 11;

/// An upper bound of the encoded `TxnRequest` plus etcd's envelope. Each message is counted
/// with every field it may carry, so the real request is never larger.
pub(crate) fn request_size_bound(
    prefix_len: usize,
    compares: &[Compare],
    ops: &[Op],
    read_back: &[String],
) -> usize {
    let compare: usize = compares
        .iter()
        .map(|c| {
            // result, target, key, target_union.
            field(2 * VARINT_FIELD + field(prefix_len + c_key(c).len()) + VARINT_FIELD)
        })
        .sum();
    let success: usize = ops
        .iter()
        .map(|op| {
            let body = match op {
                // key, value, lease, prev_kv, ignore_value, ignore_lease.
                Op::Put(k, v) => field(prefix_len + k.len()) + field(v.len()) + 4 * VARINT_FIELD,
                // key, range_end (absent), prev_kv.
                Op::Delete(k) => field(prefix_len + k.len()) + VARINT_FIELD,
            };
            // RequestOp { oneof request }.
            field(field(body))
        })
        .sum();
    let failure: usize = read_back
        .iter()
        // RangeRequest: key and up to 10 varint options.
        .map(|k| field(field(field(prefix_len + k.len()) + 10 * VARINT_FIELD)))
        .sum();
    compare + success + failure + RAFT_ENVELOPE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> Op {
        Op::Put(k.into(), k.as_bytes().to_vec())
    }
    fn del(k: &str) -> Op {
        Op::Delete(k.into())
    }

    #[test]
    fn coalesce_keeps_the_last_op_of_each_key_in_place() {
        let check = |ops: Vec<Op>, want: Vec<Op>| assert_eq!(coalesce(ops), want);
        check(vec![], vec![]);
        check(vec![put("a"), put("b")], vec![put("a"), put("b")]);
        check(vec![put("t"), del("t")], vec![del("t")]);
        check(vec![del("t"), put("t")], vec![put("t")]);
        check(
            vec![put("a"), put("b"), put("a"), del("c")],
            vec![put("b"), put("a"), del("c")],
        );
    }

    #[test]
    fn failed_compares_are_evaluated_against_the_read_back() {
        let compares = vec![
            Compare::Absent("a".into()),
            Compare::Present("b".into()),
            Compare::ModRevision("a".into(), 0),
            Compare::ModRevision("b".into(), 7),
        ];
        let read_back = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            failed_compares(&compares, &read_back, &[None, Some(7)]),
            vec![2]
        );
        assert_eq!(
            failed_compares(&compares, &read_back, &[Some(3), None]),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn size_bound_grows_with_values_and_covers_the_payload() {
        let small = request_size_bound(10, &[], &[put("k")], &[]);
        let big = request_size_bound(10, &[], &[Op::Put("k".into(), vec![0; 1 << 20])], &[]);
        assert!(big >= (1 << 20) + 10);
        assert!(big - small >= (1 << 20) - 1);
        assert!(big < (1 << 20) + 1024);
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
    }
}
