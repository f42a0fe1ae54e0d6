//! The SigV4 verifier: any method, path, query, headers and body must verify or be refused with
//! an `AuthError`, never panic. The input is split on NUL bytes into method, path, query, body
//! and header lines (`name: value`); a known key is configured so parsing reaches the signature.
#![no_main]

use flotilla_sigv4::{verify, Credential};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let query = parts.next().unwrap_or("");
    let body = parts.next().unwrap_or("");
    let headers: Vec<(String, String)> = parts
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim_start().to_string()))
        .collect();
    let cred = Credential {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: None,
        principal_arn: "arn:aws:iam::000000000000:root".into(),
    };
    let _ = verify(
        method,
        path,
        query,
        &headers,
        body.as_bytes(),
        1_440_938_160,
        |akid| (akid == cred.access_key_id).then_some(&cred),
    );
    for h in headers.iter().map(|(_, v)| v.as_str()) {
        let _ = flotilla_sigv4::scope_region(h);
        let _ = flotilla_sigv4::scope_service(h);
        let _ = flotilla_sigv4::access_key_id(h);
    }
});
