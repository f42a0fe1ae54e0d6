//! The agent's pure decisions about a task's endpoint: when its role's credentials are
//! refreshed ([`refresh_due`]), and the unguessable ids in the URIs its containers get and the
//! MAC addresses its bridge containers are created with (from random bytes the caller draws).
//!
//! What this is not: the request for credentials (the task's owner sends it through the
//! session) or the HTTP server ([`super::TaskEndpoint`]).

use flotilla_protocol::RoleCredentials;

/// The part of a key's life after which the agent asks for the next one (the server hands out
/// the same key only in the first half of its life, so the answer is a new key, and the SDKs in
/// the containers, which refresh when 15 minutes or less are left, always find one with most
/// of its life ahead).
pub const REFRESH_AT: f64 = 0.6;

/// Whether `c` should be replaced at `now` (epoch seconds).
pub fn refresh_due(c: &RoleCredentials, now: f64) -> bool {
    now >= c.issued_at + REFRESH_AT * (c.expiration - c.issued_at)
}

/// An id for the endpoint's URIs (`/v4/ID`, `/v2/credentials/ID`): 122 random bits as a UUID
/// (version 4), from 16 random bytes.
pub fn endpoint_id(random: [u8; 16]) -> String {
    let mut b = random;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether `id` has the shape of [`endpoint_id`] (checked before any lookup).
pub fn is_endpoint_id(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

/// A locally administered unicast MAC address for a bridge container (`02:f1:` and 4 random
/// bytes): the agent's NAT rule matches it before the container exists.
pub fn bridge_mac(random: [u8; 4]) -> String {
    format!(
        "02:f1:{:02x}:{:02x}:{:02x}:{:02x}",
        random[0], random[1], random[2], random[3]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_protocol::SecretText;

    fn creds(issued_at: f64, expiration: f64) -> RoleCredentials {
        RoleCredentials {
            role_arn: "r".into(),
            access_key_id: "ASIA".into(),
            secret_access_key: SecretText("s".into()),
            session_token: SecretText("t".into()),
            issued_at,
            expiration,
        }
    }

    #[test]
    fn credentials_are_refreshed_at_sixty_percent_of_their_life() {
        let c = creds(1000.0, 4600.0);
        assert!(!refresh_due(&c, 1000.0));
        assert!(!refresh_due(&c, 3159.9));
        assert!(refresh_due(&c, 3160.0));
        assert!(refresh_due(&c, 9999.0));
        // Reused keys (issued earlier) are replaced by their own age, not the request's.
        assert!(refresh_due(&creds(0.0, 100.0), 60.0));
    }

    #[test]
    fn ids_are_uuids_and_macs_are_local_unicast() {
        let id = endpoint_id([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert!(is_endpoint_id(&id));
        assert!(is_endpoint_id(&endpoint_id([0; 16])));
        assert!(!is_endpoint_id("ffffffff-ffff-4fff-bfff-fffffffffff"));
        assert!(!is_endpoint_id("FFFFFFFF-ffff-4fff-bfff-ffffffffffff"));
        assert!(!is_endpoint_id("../../../etc/passwd-ffff-ffffffffffff"));
        let mac = bridge_mac([1, 2, 0xab, 0xcd]);
        assert_eq!(mac, "02:f1:01:02:ab:cd");
        // Locally administered (bit 1) and unicast (bit 0 clear).
        assert_eq!(u8::from_str_radix(&mac[..2], 16).unwrap() & 3, 2);
    }
}
