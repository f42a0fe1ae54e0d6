//! Instances: registering, deregistering and their custom health, for RegisterInstance,
//! DeregisterInstance and UpdateInstanceCustomHealthStatus, and the Rust API the ECS service
//! scheduler uses for a service's `serviceRegistries` ([`register`], [`set_health`],
//! [`deregister`], [`service`]).
//!
//! Every change writes the instance and its service's record (`instance_count`,
//! `instances_revision`) in one compare-and-swap transaction on both, with the operation record
//! it makes (REGISTER_INSTANCE, DEREGISTER_INSTANCE: SUCCESS at once). Operations older than
//! [`OPERATION_RETENTION_SECONDS`] are dropped a few at a time by the writes that add new ones,
//! so the store stays bounded under task churn.

use crate::error::SdError;
use crate::keys::{self, decode, encode};
use crate::record::{self, InstanceRecord, OperationRecord, ServiceRecord};
use crate::shapes::{CustomHealthStatus, OperationType, RecordType};
use crate::ErrorShape;
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Store, Txn};
use std::collections::BTreeMap;

/// How long operations are kept (seconds).
pub const OPERATION_RETENTION_SECONDS: f64 = 24.0 * 3600.0;
/// At most this many old operations are dropped by one write.
const PRUNE_BATCH: usize = 16;

/// What ECS needs to know of a service named in a `serviceRegistries` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// Its id (`srv-...`).
    pub id: String,
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// Its namespace's id.
    pub namespace_id: String,
    /// The record types of its DnsConfig (empty for an HTTP service): ECS requires a port (or
    /// a container name and port) for SRV.
    pub record_types: Vec<RecordType>,
    /// Whether it has a custom health check (ECS then reports its tasks' health).
    pub custom_health: bool,
}

impl ServiceView {
    fn of(s: &ServiceRecord) -> ServiceView {
        ServiceView {
            id: s.id.clone(),
            arn: s.arn.clone(),
            name: s.name.clone(),
            namespace_id: s.namespace_id.clone(),
            record_types: s
                .dns
                .as_ref()
                .map(|d| d.records.iter().map(|(t, _)| *t).collect())
                .unwrap_or_default(),
            custom_health: s.has_custom_health(),
        }
    }

    /// Whether its DnsConfig has an SRV record.
    pub fn has_srv(&self) -> bool {
        self.record_types.contains(&RecordType::Srv)
    }
}

/// The service id of a registry ARN (`...:service/srv-...`) or id.
pub fn service_id_of(service_arn: &str) -> &str {
    service_arn
        .rsplit_once(":service/")
        .map_or(service_arn, |(_, id)| id)
}

/// Checks an instance id as the model's pattern says (1-64 of letters, digits, `_/:.@-`).
pub fn check_instance_id(id: &str) -> Result<(), SdError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_/:.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SdError::invalid(format!(
            "InstanceId {id:?} is not valid: 1 to 64 letters, digits and _/:.@- characters."
        )))
    }
}

fn contended() -> SdError {
    SdError::of(
        ErrorShape::DuplicateRequest,
        "The service's instances are being changed by other requests; retry.",
    )
}

/// The keys of operations older than the retention, a few of the oldest.
pub(crate) async fn expired_operations(
    store: &dyn Store,
    now: f64,
) -> Result<Vec<String>, SdError> {
    let page = store.list(keys::OPERATIONS, None, PRUNE_BATCH).await?;
    let cutoff = record::millis(now - OPERATION_RETENTION_SECONDS);
    Ok(page
        .items
        .into_iter()
        .filter(|kv| {
            kv.key
                .strip_prefix(keys::OPERATIONS)
                .and_then(record::operation_time)
                .is_some_and(|t| t < cutoff)
        })
        .map(|kv| kv.key)
        .collect())
}

/// Adds `op` (and the removal of expired operations) to `txn`.
pub(crate) async fn with_operation(
    store: &dyn Store,
    mut txn: Txn,
    op: &OperationRecord,
    now: f64,
) -> Result<Txn, SdError> {
    for key in expired_operations(store, now).await? {
        txn = txn.delete(key);
    }
    Ok(txn.put(keys::operation(&op.id), encode(op)?))
}

/// A new operation of `kind` on `targets` at `now`.
pub(crate) fn new_operation(
    kind: OperationType,
    now: f64,
    targets: &[(&str, &str)],
) -> OperationRecord {
    let mut random = [0u8; 31];
    for b in random.iter_mut() {
        *b = rand::random();
    }
    OperationRecord::success(kind, now, random, targets)
}

/// How an instance's health is set when it is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InitialHealth {
    /// From `AWS_INIT_HEALTH_STATUS` (HEALTHY when absent).
    FromAttributes,
    /// As given (ECS: the task's health).
    Given(CustomHealthStatus),
}

/// Registers (or replaces) instance `instance_id` of service `service_id`: checks its
/// attributes against the service, writes it with the service's counts and an operation.
pub(crate) async fn put(
    store: &dyn Store,
    service_id: &str,
    instance_id: &str,
    attributes: BTreeMap<String, String>,
    health: InitialHealth,
    creator_request_id: Option<String>,
    now: f64,
) -> Result<OperationRecord, SdError> {
    check_instance_id(instance_id)?;
    let attributes = &attributes;
    let creator = &creator_request_id;
    retry(store, || async move {
        let (mut service, srev) = keys::get_service(store, service_id)
            .await?
            .ok_or_else(|| SdError::service_not_found(service_id))?;
        let (attrs, init) = record::check_attributes(&service, attributes.clone())?;
        let key = keys::instance(service_id, instance_id);
        let existing = store.get(&key).await?;
        let compare = match &existing {
            Some(kv) => Compare::ModRevision(key.clone(), kv.mod_revision),
            None => Compare::Absent(key.clone()),
        };
        let instance = InstanceRecord {
            id: instance_id.to_string(),
            service_id: service_id.to_string(),
            attributes: attrs,
            health: match health {
                InitialHealth::FromAttributes => init,
                InitialHealth::Given(h) => h,
            },
            creator_request_id: creator.clone(),
        };
        if existing.is_none() {
            service.instance_count += 1;
        }
        service.instances_revision += 1;
        let op = new_operation(
            OperationType::RegisterInstance,
            now,
            &[("SERVICE", service_id), ("INSTANCE", instance_id)],
        );
        let txn = Txn::new()
            .when(Compare::ModRevision(keys::service(service_id), srev))
            .when(compare)
            .put(key, encode(&instance)?)
            .put(keys::service(service_id), encode(&service)?);
        let txn = with_operation(store, txn, &op, now).await?;
        Ok::<_, SdError>(Attempt::Commit(txn, op))
    })
    .await?
    .map_err(|_| contended())
}

/// Deregisters an instance; `Ok(None)` when it was not registered.
pub(crate) async fn remove(
    store: &dyn Store,
    service_id: &str,
    instance_id: &str,
    now: f64,
) -> Result<Option<OperationRecord>, SdError> {
    retry(store, || async move {
        let (mut service, srev) = keys::get_service(store, service_id)
            .await?
            .ok_or_else(|| SdError::service_not_found(service_id))?;
        let key = keys::instance(service_id, instance_id);
        let Some(kv) = store.get(&key).await? else {
            return Ok(Attempt::Done(None));
        };
        service.instance_count = service.instance_count.saturating_sub(1);
        service.instances_revision += 1;
        let op = new_operation(
            OperationType::DeregisterInstance,
            now,
            &[("SERVICE", service_id), ("INSTANCE", instance_id)],
        );
        let txn = Txn::new()
            .when(Compare::ModRevision(keys::service(service_id), srev))
            .when(Compare::ModRevision(key.clone(), kv.mod_revision))
            .delete(key)
            .put(keys::service(service_id), encode(&service)?);
        let txn = with_operation(store, txn, &op, now).await?;
        Ok::<_, SdError>(Attempt::Commit(txn, Some(op)))
    })
    .await?
    .map_err(|_| contended())
}

/// Sets an instance's custom health status. `Ok(false)` when the service has no custom health
/// check (nothing to set); `InstanceNotFound` when the instance is not registered.
pub(crate) async fn health(
    store: &dyn Store,
    service_id: &str,
    instance_id: &str,
    status: CustomHealthStatus,
) -> Result<bool, SdError> {
    retry(store, || async move {
        let (mut service, srev) = keys::get_service(store, service_id)
            .await?
            .ok_or_else(|| SdError::service_not_found(service_id))?;
        let key = keys::instance(service_id, instance_id);
        let Some(kv) = store.get(&key).await? else {
            return Err(SdError::instance_not_found(instance_id));
        };
        if !service.has_custom_health() {
            return Ok(Attempt::Done(false));
        }
        let mut instance: InstanceRecord = decode(&kv)?;
        if instance.health == status {
            return Ok(Attempt::Done(true));
        }
        instance.health = status;
        service.instances_revision += 1;
        let txn = Txn::new()
            .when(Compare::ModRevision(keys::service(service_id), srev))
            .when(Compare::ModRevision(key.clone(), kv.mod_revision))
            .put(key, encode(&instance)?)
            .put(keys::service(service_id), encode(&service)?);
        Ok::<_, SdError>(Attempt::Commit(txn, true))
    })
    .await?
    .map_err(|_| contended())
}

fn custom(healthy: bool) -> CustomHealthStatus {
    if healthy {
        CustomHealthStatus::Healthy
    } else {
        CustomHealthStatus::Unhealthy
    }
}

/// Registers (or replaces) an instance of the service named by its registry ARN (the
/// `registryArn` of an ECS service's `serviceRegistries`), with attributes (`AWS_INSTANCE_IPV4`,
/// `AWS_INSTANCE_PORT`, `AVAILABILITY_ZONE`, `ECS_CLUSTER_NAME`, `ECS_SERVICE_NAME`,
/// `ECS_TASK_DEFINITION_FAMILY`, ...) and an initial health status (used when the service has
/// a custom health check). The attributes are checked as RegisterInstance checks them.
pub async fn register(
    store: &dyn Store,
    service_arn: &str,
    instance_id: &str,
    attributes: BTreeMap<String, String>,
    healthy: bool,
    now: f64,
) -> Result<(), SdError> {
    put(
        store,
        service_id_of(service_arn),
        instance_id,
        attributes,
        InitialHealth::Given(custom(healthy)),
        None,
        now,
    )
    .await
    .map(|_| ())
}

/// Sets an instance's health (a service without a custom health check has nothing to set: Ok).
pub async fn set_health(
    store: &dyn Store,
    service_arn: &str,
    instance_id: &str,
    healthy: bool,
) -> Result<(), SdError> {
    health(
        store,
        service_id_of(service_arn),
        instance_id,
        custom(healthy),
    )
    .await
    .map(|_| ())
}

/// Deregisters an instance; one that is not registered (or a service that is gone) is Ok. The
/// DEREGISTER_INSTANCE operation it records is dated by the system clock.
pub async fn deregister(
    store: &dyn Store,
    service_arn: &str,
    instance_id: &str,
) -> Result<(), SdError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    match remove(store, service_id_of(service_arn), instance_id, now).await {
        Ok(_) => Ok(()),
        Err(e) if e.shape() == Some(ErrorShape::ServiceNotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the service exists, and its record types (so CreateService in ECS can check
/// `serviceRegistries` as ECS does: SRV needs a port).
pub async fn service(store: &dyn Store, service_arn: &str) -> Result<Option<ServiceView>, SdError> {
    Ok(keys::get_service(store, service_id_of(service_arn))
        .await?
        .map(|(s, _)| ServiceView::of(&s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::DnsSettings;
    use crate::shapes::RoutingPolicy;
    use flotilla_store::MemoryStore;

    async fn seed(store: &MemoryStore, custom: bool) -> String {
        let s = ServiceRecord {
            id: "srv-abc".into(),
            arn: "arn:aws:servicediscovery:us-east-1:1:service/srv-abc".into(),
            name: "web".into(),
            namespace_id: "ns-1".into(),
            description: None,
            created: 0.0,
            creator_request_id: None,
            dns: Some(DnsSettings {
                routing: RoutingPolicy::Multivalue,
                records: vec![(RecordType::A, 10), (RecordType::Srv, 10)],
            }),
            custom_health: custom.then(crate::shapes::HealthCheckCustomConfig::default),
            instance_count: 0,
            instances_revision: 0,
            tags: BTreeMap::new(),
        };
        store
            .txn(Txn::new().put(keys::service(&s.id), encode(&s).unwrap()))
            .await
            .unwrap();
        s.arn
    }

    fn attrs(ip: &str) -> BTreeMap<String, String> {
        [
            ("AWS_INSTANCE_IPV4".to_string(), ip.to_string()),
            ("AWS_INSTANCE_PORT".to_string(), "80".to_string()),
            ("ECS_CLUSTER_NAME".to_string(), "default".to_string()),
        ]
        .into_iter()
        .collect()
    }

    #[tokio::test]
    async fn ecs_registers_replaces_and_deregisters_keeping_the_counts() {
        let store = MemoryStore::new();
        let arn = seed(&store, true).await;
        let view = service(&store, &arn).await.unwrap().unwrap();
        assert!(view.has_srv() && view.custom_health);
        register(&store, &arn, "t1", attrs("10.0.0.1"), true, 1.0)
            .await
            .unwrap();
        register(&store, &arn, "t1", attrs("10.0.0.9"), false, 2.0)
            .await
            .unwrap();
        register(&store, &arn, "t2", attrs("10.0.0.2"), true, 3.0)
            .await
            .unwrap();
        let (s, _) = keys::get_service(&store, "srv-abc").await.unwrap().unwrap();
        assert_eq!(s.instance_count, 2);
        assert_eq!(s.instances_revision, 3);
        let (t1, _) = keys::get_instance(&store, "srv-abc", "t1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t1.attributes["AWS_INSTANCE_IPV4"], "10.0.0.9");
        assert_eq!(t1.health, CustomHealthStatus::Unhealthy);
        set_health(&store, &arn, "t1", true).await.unwrap();
        let (t1, _) = keys::get_instance(&store, "srv-abc", "t1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t1.health, CustomHealthStatus::Healthy);
        deregister(&store, &arn, "t1").await.unwrap();
        deregister(&store, &arn, "t1").await.unwrap();
        let (s, _) = keys::get_service(&store, "srv-abc").await.unwrap().unwrap();
        assert_eq!(s.instance_count, 1);
        // A port is required by the SRV record.
        let mut no_port = attrs("10.0.0.3");
        no_port.remove("AWS_INSTANCE_PORT");
        let e = register(&store, &arn, "t3", no_port, true, 6.0)
            .await
            .unwrap_err();
        assert_eq!(e.shape(), Some(ErrorShape::InvalidInput));
        assert!(service(
            &store,
            "arn:aws:servicediscovery:us-east-1:1:service/srv-zzz"
        )
        .await
        .unwrap()
        .is_none());
        assert!(deregister(&store, "srv-zzz", "t1").await.is_ok());
        assert_eq!(
            set_health(&store, &arn, "nope", true)
                .await
                .unwrap_err()
                .shape(),
            Some(ErrorShape::InstanceNotFound)
        );
    }

    #[tokio::test]
    async fn old_operations_are_dropped_by_new_writes() {
        let store = MemoryStore::new();
        let arn = seed(&store, false).await;
        register(&store, &arn, "t1", attrs("10.0.0.1"), true, 1000.0)
            .await
            .unwrap();
        register(&store, &arn, "t2", attrs("10.0.0.2"), true, 1001.0)
            .await
            .unwrap();
        assert_eq!(
            store
                .list(keys::OPERATIONS, None, 0)
                .await
                .unwrap()
                .items
                .len(),
            2
        );
        let later = 1000.0 + OPERATION_RETENTION_SECONDS + 10.0;
        register(&store, &arn, "t3", attrs("10.0.0.3"), true, later)
            .await
            .unwrap();
        let ops = store.list(keys::OPERATIONS, None, 0).await.unwrap().items;
        assert_eq!(ops.len(), 1);
    }
}
