//! The local CA of `flotilla dev --tls`: generated once into a directory, with a server
//! certificate it signs for the names this machine is reached by (`localhost`, the loopback
//! addresses, the host name, the listen address).
//!
//! Files (in `DATA_DIR/tls`): `ca.pem` (what clients trust: `aws --ca-bundle`,
//! `AWS_CA_BUNDLE`, `flotilla --ca-file`), `ca-key.pem` (0600), `server.pem` (the server's
//! certificate, then the CA's), `server-key.pem` (0600) and `server.names` (what the server
//! certificate was issued for and until when). The CA is kept as long as its files exist, so a
//! client told to trust it once keeps trusting the server; the server certificate is issued
//! again, by the same CA, only when the names it must cover change or it expires within 30
//! days ([`leaf_decision`], pure).

use crate::TlsError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The CA's certificate (what clients trust).
pub const CA_FILE: &str = "ca.pem";
/// The CA's private key.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The server's certificate chain.
pub const CERT_FILE: &str = "server.pem";
/// The server's private key.
pub const KEY_FILE: &str = "server-key.pem";
/// What the server certificate covers and until when.
pub const NAMES_FILE: &str = "server.names";

/// How long the CA is valid.
const CA_DAYS: i64 = 3650;
/// How long a server certificate is valid.
const LEAF_DAYS: i64 = 365;
/// A server certificate expiring within this is issued again.
const RENEW_BEFORE_DAYS: i64 = 30;

/// The files of the local CA and the server certificate, and what this run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCertificates {
    /// `ca.pem`.
    pub ca: PathBuf,
    /// `server.pem`.
    pub cert: PathBuf,
    /// `server-key.pem`.
    pub key: PathBuf,
    /// Whether the CA was created now (clients must be told to trust it).
    pub ca_created: bool,
    /// What happened to the server certificate.
    pub leaf: LeafDecision,
}

/// What the server certificate file says it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRecord {
    /// The names (DNS names and IP addresses) it covers.
    pub names: BTreeSet<String>,
    /// Its expiry, epoch seconds.
    pub not_after: i64,
}

impl LeafRecord {
    /// `not_after=SECONDS` then one name a line.
    pub fn to_text(&self) -> String {
        let mut s = format!("not_after={}\n", self.not_after);
        for n in &self.names {
            s.push_str(n);
            s.push('\n');
        }
        s
    }

    /// Reads [`LeafRecord::to_text`]; `None` when it is not of that form.
    pub fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let not_after = lines.next()?.strip_prefix("not_after=")?.parse().ok()?;
        let names = lines
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        Some(LeafRecord { names, not_after })
    }
}

/// Whether the server certificate is kept or issued again, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafDecision {
    /// It covers the names and is valid for more than 30 days.
    Keep,
    /// There is none (or its record is unreadable), or the CA is new.
    IssueMissing,
    /// It does not cover exactly the names wanted.
    IssueNames,
    /// It expires within 30 days.
    IssueExpiring,
}

/// The decision for a server certificate recorded as `recorded`, `wanted` names, at `now`
/// (epoch seconds).
pub fn leaf_decision(
    recorded: Option<&LeafRecord>,
    wanted: &BTreeSet<String>,
    now: i64,
) -> LeafDecision {
    match recorded {
        None => LeafDecision::IssueMissing,
        Some(r) if &r.names != wanted => LeafDecision::IssueNames,
        Some(r) if r.not_after - now < RENEW_BEFORE_DAYS * 86_400 => LeafDecision::IssueExpiring,
        Some(_) => LeafDecision::Keep,
    }
}

/// The names a server listening on `listen` on a host called `hostname` is reached by:
/// `localhost`, 127.0.0.1, ::1, the host name, the listen address unless it is a wildcard, and
/// `extra`. Names that cannot be a DNS name are left out.
pub fn names_for(listen: SocketAddr, hostname: Option<&str>, extra: &[String]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let ip = listen.ip().to_canonical();
    if !ip.is_unspecified() {
        names.insert(ip.to_string());
    }
    for n in hostname.into_iter().chain(extra.iter().map(String::as_str)) {
        let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
        let dns_like = !n.is_empty()
            && n.len() <= 253
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'*');
        if n.parse::<IpAddr>().is_ok() || dns_like {
            names.insert(n);
        }
    }
    names
}

fn generate<T>(r: Result<T, rcgen::Error>) -> Result<T, TlsError> {
    r.map_err(|e| TlsError::Generate(e.to_string()))
}

/// The CA's parameters: the same each time, so the issuer rebuilt from its saved key names
/// the same subject as its saved certificate.
fn ca_params(now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Flotilla");
    dn.push(DnType::CommonName, "Flotilla local development CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(CA_DAYS);
    params
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

/// A new CA: its certificate and key, PEM.
fn new_ca(now: OffsetDateTime) -> Result<(String, String), TlsError> {
    let key = generate(KeyPair::generate())?;
    let mut params = ca_params(now);
    params.serial_number = Some(serial());
    let cert = generate(params.self_signed(&key))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A server certificate for `names`, signed by the CA whose key is `ca_key_pem`: the
/// certificate and its key, PEM, and its expiry.
fn new_leaf(
    ca_key_pem: &str,
    names: &BTreeSet<String>,
    now: OffsetDateTime,
) -> Result<(String, String, OffsetDateTime), TlsError> {
    let ca_key = generate(KeyPair::from_pem(ca_key_pem))?;
    let issuer = Issuer::new(ca_params(now), ca_key);
    let key = generate(KeyPair::generate())?;
    let mut params = generate(CertificateParams::new(
        names.iter().cloned().collect::<Vec<_>>(),
    ))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Flotilla");
    dn.push(DnType::CommonName, "Flotilla server");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial());
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(LEAF_DAYS);
    let not_after = params.not_after;
    let cert = generate(params.signed_by(&key, &issuer))?;
    Ok((cert.pem(), key.serialize_pem(), not_after))
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    // A new file, then renamed over the old one: a crash never leaves half a key.
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(if private { 0o600 } else { 0o644 });
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn read_text(path: &Path, what: &'static str) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Makes sure `dir` holds a CA and a server certificate for `names` valid at `now`: creates
/// the CA when either of its files is missing, and issues the server certificate as
/// [`leaf_decision`] says.
pub fn ensure(
    dir: &Path,
    names: &BTreeSet<String>,
    now: OffsetDateTime,
) -> Result<DevCertificates, TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let (ca, ca_key) = (dir.join(CA_FILE), dir.join(CA_KEY_FILE));
    let (cert, key, names_file) = (
        dir.join(CERT_FILE),
        dir.join(KEY_FILE),
        dir.join(NAMES_FILE),
    );
    let ca_created = !(ca.exists() && ca_key.exists());
    if ca_created {
        let (ca_pem, ca_key_pem) = new_ca(now)?;
        write(&ca_key, &ca_key_pem, true)?;
        write(&ca, &ca_pem, false)?;
    }
    let recorded = if ca_created || !cert.exists() || !key.exists() {
        None
    } else {
        std::fs::read_to_string(&names_file)
            .ok()
            .and_then(|t| LeafRecord::parse(&t))
    };
    let leaf = leaf_decision(recorded.as_ref(), names, now.unix_timestamp());
    if leaf != LeafDecision::Keep {
        let ca_key_pem = zeroize::Zeroizing::new(read_text(&ca_key, "CA private key")?);
        let (leaf_pem, leaf_key_pem, not_after) = new_leaf(&ca_key_pem, names, now)?;
        let ca_pem = read_text(&ca, "CA file")?;
        write(&key, &leaf_key_pem, true)?;
        write(&cert, &format!("{leaf_pem}{ca_pem}"), false)?;
        let record = LeafRecord {
            names: names.clone(),
            not_after: not_after.unix_timestamp(),
        };
        write(&names_file, &record.to_text(), false)?;
    }
    Ok(DevCertificates {
        ca,
        cert,
        key,
        ca_created,
        leaf,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh CA and a server certificate for `names`: (chain PEM, key PEM, CA PEM).
    pub(crate) fn issue(names: &[&str]) -> (String, String, String) {
        let now = OffsetDateTime::now_utc();
        let (ca_pem, ca_key_pem) = new_ca(now).unwrap();
        let names = names.iter().map(|s| s.to_string()).collect();
        let (leaf, key, _) = new_leaf(&ca_key_pem, &names, now).unwrap();
        (format!("{leaf}{ca_pem}"), key, ca_pem)
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_server_certificate_is_issued_again_only_when_names_change_or_it_expires() {
        let wanted = set(&["localhost", "127.0.0.1"]);
        let rec = LeafRecord {
            names: wanted.clone(),
            not_after: 1_000 * 86_400,
        };
        assert_eq!(leaf_decision(None, &wanted, 0), LeafDecision::IssueMissing);
        assert_eq!(leaf_decision(Some(&rec), &wanted, 0), LeafDecision::Keep);
        assert_eq!(
            leaf_decision(Some(&rec), &set(&["localhost"]), 0),
            LeafDecision::IssueNames
        );
        assert_eq!(
            leaf_decision(Some(&rec), &wanted, 971 * 86_400),
            LeafDecision::IssueExpiring
        );
        assert_eq!(LeafRecord::parse(&rec.to_text()), Some(rec));
        assert_eq!(LeafRecord::parse("names\n"), None);
    }

    #[test]
    fn the_names_cover_loopback_the_host_and_a_specific_listen_address() {
        let n = names_for("0.0.0.0:8080".parse().unwrap(), Some("Box1"), &[]);
        assert_eq!(n, set(&["localhost", "127.0.0.1", "::1", "box1"]));
        let n = names_for(
            "10.0.0.5:443".parse().unwrap(),
            Some("bad name!"),
            &["api.example.com".into()],
        );
        assert_eq!(
            n,
            set(&[
                "localhost",
                "127.0.0.1",
                "::1",
                "10.0.0.5",
                "api.example.com"
            ])
        );
    }

    #[test]
    fn the_ca_is_made_once_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let names = set(&["localhost", "127.0.0.1"]);
        let first = ensure(dir.path(), &names, now).unwrap();
        assert!(first.ca_created);
        assert_eq!(first.leaf, LeafDecision::IssueMissing);
        #[cfg(unix)]
        for f in [CA_KEY_FILE, KEY_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let ca = std::fs::read(&first.ca).unwrap();
        let again = ensure(dir.path(), &names, now).unwrap();
        assert!(!again.ca_created);
        assert_eq!(again.leaf, LeafDecision::Keep);
        let wider = set(&["localhost", "127.0.0.1", "box1"]);
        let renamed = ensure(dir.path(), &wider, now).unwrap();
        assert_eq!(renamed.leaf, LeafDecision::IssueNames);
        assert_eq!(std::fs::read(&renamed.ca).unwrap(), ca, "the CA is kept");
        // The certificate issued again by the same CA still loads with its key and is trusted
        // by the CA file.
        crate::ServerTls::load(&renamed.cert, &renamed.key).unwrap();
        crate::ClientTls::load(Some(&renamed.ca)).unwrap();
    }
}
