//! Where Cloud Map's records live in the store, ARNs, and the reads every part shares.
//!
//! - `servicediscovery/namespaces/ID` -> [`NamespaceRecord`]
//! - `servicediscovery/namespace-names/NAME` -> the id (names are unique, compared in lower
//!   case: DiscoverInstances and DNS find a namespace by name)
//! - `servicediscovery/services/ID` -> [`ServiceRecord`]
//! - `servicediscovery/service-names/NAMESPACE-ID/NAME` -> the id (unique in a namespace)
//! - `servicediscovery/instances/SERVICE-ID/INSTANCE-ID` -> [`InstanceRecord`]
//! - `servicediscovery/operations/OPERATION-ID` -> [`OperationRecord`] (ids sort by time)

use crate::error::SdError;
use crate::record::{InstanceRecord, NamespaceRecord, OperationRecord, ServiceRecord};
use flotilla_store::{KeyValue, Store};
use serde::de::DeserializeOwned;

/// Prefix of every key of Cloud Map.
pub const PREFIX: &str = "servicediscovery/";
/// Namespace records.
pub const NAMESPACES: &str = "servicediscovery/namespaces/";
/// Namespace names.
pub const NAMESPACE_NAMES: &str = "servicediscovery/namespace-names/";
/// Service records.
pub const SERVICES: &str = "servicediscovery/services/";
/// Service names per namespace.
pub const SERVICE_NAMES: &str = "servicediscovery/service-names/";
/// Instance records per service.
pub const INSTANCES: &str = "servicediscovery/instances/";
/// Operation records.
pub const OPERATIONS: &str = "servicediscovery/operations/";

/// A namespace's key.
pub fn namespace(id: &str) -> String {
    format!("{NAMESPACES}{id}")
}
/// A namespace name's key.
pub fn namespace_name(name: &str) -> String {
    format!(
        "{NAMESPACE_NAMES}{}",
        name.trim_end_matches('.').to_lowercase()
    )
}
/// A service's key.
pub fn service(id: &str) -> String {
    format!("{SERVICES}{id}")
}
/// A service name's key.
pub fn service_name(namespace_id: &str, name: &str) -> String {
    format!("{SERVICE_NAMES}{namespace_id}/{}", name.to_lowercase())
}
/// The prefix of a service's instances.
pub fn instances(service_id: &str) -> String {
    format!("{INSTANCES}{service_id}/")
}
/// An instance's key.
pub fn instance(service_id: &str, instance_id: &str) -> String {
    format!("{INSTANCES}{service_id}/{instance_id}")
}
/// An operation's key.
pub fn operation(id: &str) -> String {
    format!("{OPERATIONS}{id}")
}

/// The region and account ARNs are made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The region.
    pub region: String,
    /// The account id.
    pub account: String,
}

impl Account {
    /// `arn:aws:servicediscovery:REGION:ACCOUNT:KIND/ID`.
    pub fn arn(&self, kind: &str, id: &str) -> String {
        format!(
            "arn:aws:servicediscovery:{}:{}:{kind}/{id}",
            self.region, self.account
        )
    }

    /// The id an id-or-ARN parameter names for `kind` (`namespace`, `service`); `None` for an
    /// ARN of another kind, region or account, which names nothing here.
    pub fn id_of<'a>(&self, kind: &str, id_or_arn: &'a str) -> Option<&'a str> {
        if !id_or_arn.starts_with("arn:") {
            return Some(id_or_arn);
        }
        let prefix = self.arn(kind, "");
        id_or_arn.strip_prefix(prefix.as_str())
    }
}

pub(crate) fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<T, SdError> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| SdError::internal(format!("a stored record ({}) is unreadable: {e}", kv.key)))
}

pub(crate) fn encode<T: serde::Serialize>(r: &T) -> Result<Vec<u8>, SdError> {
    serde_json::to_vec(r).map_err(|e| SdError::internal(format!("could not encode a record: {e}")))
}

/// A namespace by id and its `mod_revision`.
pub async fn get_namespace(
    store: &dyn Store,
    id: &str,
) -> Result<Option<(NamespaceRecord, u64)>, SdError> {
    match store.get(&namespace(id)).await? {
        Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// A namespace by name.
pub async fn namespace_by_name(
    store: &dyn Store,
    name: &str,
) -> Result<Option<(NamespaceRecord, u64)>, SdError> {
    let Some(kv) = store.get(&namespace_name(name)).await? else {
        return Ok(None);
    };
    get_namespace(store, &String::from_utf8_lossy(&kv.value)).await
}

/// A service by id and its `mod_revision`.
pub async fn get_service(
    store: &dyn Store,
    id: &str,
) -> Result<Option<(ServiceRecord, u64)>, SdError> {
    match store.get(&service(id)).await? {
        Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// A service of a namespace by name.
pub async fn service_by_name(
    store: &dyn Store,
    namespace_id: &str,
    name: &str,
) -> Result<Option<(ServiceRecord, u64)>, SdError> {
    let Some(kv) = store.get(&service_name(namespace_id, name)).await? else {
        return Ok(None);
    };
    get_service(store, &String::from_utf8_lossy(&kv.value)).await
}

/// An instance and its `mod_revision`.
pub async fn get_instance(
    store: &dyn Store,
    service_id: &str,
    instance_id: &str,
) -> Result<Option<(InstanceRecord, u64)>, SdError> {
    match store.get(&instance(service_id, instance_id)).await? {
        Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// Every record under `prefix`.
pub async fn all<T: DeserializeOwned>(store: &dyn Store, prefix: &str) -> Result<Vec<T>, SdError> {
    let page = store.list(prefix, None, 0).await?;
    page.items.iter().map(decode).collect()
}

/// Every instance of a service, in id order.
pub async fn instances_of(
    store: &dyn Store,
    service_id: &str,
) -> Result<Vec<InstanceRecord>, SdError> {
    all(store, &instances(service_id)).await
}

/// An operation by id.
pub async fn get_operation(
    store: &dyn Store,
    id: &str,
) -> Result<Option<OperationRecord>, SdError> {
    match store.get(&operation(id)).await? {
        Some(kv) => Ok(Some(decode(&kv)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_arns_name_the_same_resource() {
        let a = Account {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        };
        let arn = a.arn("service", "srv-abc");
        assert_eq!(
            arn,
            "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-abc"
        );
        assert_eq!(a.id_of("service", &arn), Some("srv-abc"));
        assert_eq!(a.id_of("service", "srv-abc"), Some("srv-abc"));
        assert_eq!(a.id_of("namespace", &arn), None);
        assert_eq!(
            a.id_of(
                "service",
                "arn:aws:servicediscovery:eu-west-1:123456789012:service/srv-abc"
            ),
            None
        );
        assert_eq!(
            namespace_name("Corp.Local."),
            format!("{NAMESPACE_NAMES}corp.local")
        );
    }
}
