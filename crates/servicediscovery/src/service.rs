//! [`ServiceDiscovery`]: Cloud Map's operations on the store. Each handler is thin: read the
//! records, apply a rule of [`crate::record`], write back with a compare-and-swap on every record
//! it read (retried by [`flotilla_store::cas::retry`]), answer the generated response type.
//!
//! Namespace and service creation, deletion and updates and instance changes are asynchronous
//! in AWS (they answer an `OperationId`); here they are done when the answer is sent, and their
//! operation is recorded SUCCESS in the same transaction.

use crate::discover::{self, Query};
use crate::error::SdError;
use crate::instances::{self, new_operation, with_operation, InitialHealth};
use crate::keys::{self, encode, Account};
use crate::record::{self, add_tags, tag_list, NamespaceRecord, OperationRecord, ServiceRecord};
use crate::shapes::*;
use crate::ErrorShape;
use base64::Engine as _;
use flotilla_edge::json::validate::Model;
use flotilla_edge::json::{JsonApi, JsonCall, JsonError};
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Store, Txn};
use rand::seq::SliceRandom;
use serde_json::Value;
use std::sync::Arc;

/// The SOA TTL of a DNS namespace created without one (Cloud Map's default).
pub const DEFAULT_SOA_TTL: i64 = 15;
/// Page size of the List operations when `MaxResults` is not given.
pub const DEFAULT_PAGE: usize = 100;

/// The operations served (the model's others are refused by name).
pub const SERVED: &[&str] = &[
    "CreateHttpNamespace",
    "CreatePrivateDnsNamespace",
    "CreatePublicDnsNamespace",
    "GetNamespace",
    "ListNamespaces",
    "DeleteNamespace",
    "CreateService",
    "GetService",
    "ListServices",
    "UpdateService",
    "DeleteService",
    "RegisterInstance",
    "DeregisterInstance",
    "GetInstance",
    "ListInstances",
    "DiscoverInstances",
    "DiscoverInstancesRevision",
    "GetInstancesHealthStatus",
    "UpdateInstanceCustomHealthStatus",
    "GetOperation",
    "ListOperations",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// Cloud Map on one installation's store, region and account.
pub struct ServiceDiscovery {
    store: Arc<dyn Store>,
    account: Account,
    model: Model,
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, SdError> {
    serde_json::to_value(v)
        .map_err(|e| SdError::internal(format!("could not encode the response: {e}")))
}

fn contended() -> SdError {
    SdError::of(
        ErrorShape::DuplicateRequest,
        "The resource is being changed by other requests; retry.",
    )
}

/// Page tokens: base64 of the last item's store key, so pages stay stable while items come and
/// go.
mod page_token {
    use super::*;

    pub(super) fn encode(key: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    pub(super) fn decode(token: &str) -> Result<String, SdError> {
        base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| SdError::invalid("The NextToken value is not valid."))
    }
}

/// One page of `items` (sorted by their key) after `token`, at most `max`.
fn page<T>(
    items: Vec<(String, T)>,
    token: Option<&str>,
    max: Option<i32>,
) -> Result<(Vec<T>, Option<String>), SdError> {
    let after = token.map(page_token::decode).transpose()?;
    let max = max
        .and_then(|m| usize::try_from(m).ok())
        .filter(|m| *m > 0)
        .unwrap_or(DEFAULT_PAGE);
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let next = (rest.len() > max).then(|| page_token::encode(&rest[max - 1].0));
    rest.truncate(max);
    Ok((rest.into_iter().map(|(_, t)| t).collect(), next))
}

fn matches_condition(
    value: &str,
    values: &[String],
    condition: Option<FilterCondition>,
    allowed: &[FilterCondition],
    what: &str,
) -> Result<bool, SdError> {
    let c = condition.unwrap_or(FilterCondition::Eq);
    if !allowed.contains(&c) {
        return Err(SdError::invalid(format!(
            "The {what} filter takes the conditions {}; not {c}.",
            allowed
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    match c {
        FilterCondition::Eq | FilterCondition::In => {
            if c == FilterCondition::Eq && values.len() != 1 {
                return Err(SdError::invalid(format!(
                    "The {what} filter with EQ takes exactly one value."
                )));
            }
            Ok(values.iter().any(|v| v == value))
        }
        FilterCondition::BeginsWith => Ok(values.iter().any(|v| value.starts_with(v.as_str()))),
        FilterCondition::Between => Err(SdError::invalid(format!(
            "The {what} filter does not take BETWEEN."
        ))),
    }
}

impl ServiceDiscovery {
    /// Cloud Map on `store`, for ARNs of `region`/`account`.
    pub fn new(
        store: Arc<dyn Store>,
        region: impl Into<String>,
        account: impl Into<String>,
    ) -> Self {
        ServiceDiscovery {
            store,
            account: Account {
                region: region.into(),
                account: account.into(),
            },
            // The model is written by the build script from the vendored one: it parses.
            model: Model::parse(crate::MODEL_JSON).unwrap_or_else(|_| Model::empty()),
        }
    }

    /// The store (for [`crate::dns::resolve`] and [`crate::instances`]).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn store_ref(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The namespace an id or ARN names, and its `mod_revision`.
    async fn namespace(&self, id_or_arn: &str) -> Result<(NamespaceRecord, u64), SdError> {
        let Some(id) = self.account.id_of("namespace", id_or_arn) else {
            return Err(SdError::namespace_not_found(id_or_arn));
        };
        keys::get_namespace(self.store_ref(), id)
            .await?
            .ok_or_else(|| SdError::namespace_not_found(id_or_arn))
    }

    /// The service an id or ARN names, and its `mod_revision`.
    async fn service(&self, id_or_arn: &str) -> Result<(ServiceRecord, u64), SdError> {
        let Some(id) = self.account.id_of("service", id_or_arn) else {
            return Err(SdError::service_not_found(id_or_arn));
        };
        keys::get_service(self.store_ref(), id)
            .await?
            .ok_or_else(|| SdError::service_not_found(id_or_arn))
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_namespace(
        &self,
        kind: NamespaceType,
        name: &str,
        creator_request_id: Option<String>,
        description: Option<String>,
        tags: Option<Vec<Tag>>,
        vpc: Option<String>,
        soa_ttl: Option<i64>,
        now: f64,
    ) -> Result<String, SdError> {
        let spec = NewNamespace {
            kind,
            name,
            creator_request_id,
            description,
            tags,
            vpc,
            soa_ttl,
        };
        create_namespace_in(self.store_ref(), &self.account, spec, now).await
    }

    async fn create_http_namespace(
        &self,
        req: CreateHttpNamespaceRequest,
        now: f64,
    ) -> Result<CreateHttpNamespaceResponse, SdError> {
        let id = self
            .create_namespace(
                NamespaceType::Http,
                &req.name,
                req.creator_request_id,
                req.description,
                req.tags,
                None,
                None,
                now,
            )
            .await?;
        Ok(CreateHttpNamespaceResponse {
            operation_id: Some(id),
        })
    }

    async fn create_private_dns_namespace(
        &self,
        req: CreatePrivateDnsNamespaceRequest,
        now: f64,
    ) -> Result<CreatePrivateDnsNamespaceResponse, SdError> {
        let ttl = req.properties.as_ref().map(|p| p.dns_properties.soa.ttl);
        let id = self
            .create_namespace(
                NamespaceType::DnsPrivate,
                &req.name,
                req.creator_request_id,
                req.description,
                req.tags,
                Some(req.vpc),
                ttl,
                now,
            )
            .await?;
        Ok(CreatePrivateDnsNamespaceResponse {
            operation_id: Some(id),
        })
    }

    async fn create_public_dns_namespace(
        &self,
        req: CreatePublicDnsNamespaceRequest,
        now: f64,
    ) -> Result<CreatePublicDnsNamespaceResponse, SdError> {
        let ttl = req.properties.as_ref().map(|p| p.dns_properties.soa.ttl);
        let id = self
            .create_namespace(
                NamespaceType::DnsPublic,
                &req.name,
                req.creator_request_id,
                req.description,
                req.tags,
                None,
                ttl,
                now,
            )
            .await?;
        Ok(CreatePublicDnsNamespaceResponse {
            operation_id: Some(id),
        })
    }

    async fn get_namespace(
        &self,
        req: GetNamespaceRequest,
        _now: f64,
    ) -> Result<GetNamespaceResponse, SdError> {
        let (ns, _) = self.namespace(&req.id).await?;
        Ok(GetNamespaceResponse {
            namespace: Some(ns.shape(&self.account.account)),
        })
    }

    async fn list_namespaces(
        &self,
        req: ListNamespacesRequest,
        _now: f64,
    ) -> Result<ListNamespacesResponse, SdError> {
        let all: Vec<NamespaceRecord> = keys::all(self.store_ref(), keys::NAMESPACES).await?;
        let filters = req.filters.unwrap_or_default();
        let mut kept = Vec::new();
        for ns in all {
            let mut ok = true;
            for f in &filters {
                use FilterCondition as C;
                ok &= match f.name {
                    NamespaceFilterName::Type => matches_condition(
                        ns.kind.as_str(),
                        &f.values,
                        f.condition,
                        &[C::Eq, C::In],
                        "TYPE",
                    )?,
                    NamespaceFilterName::Name | NamespaceFilterName::HttpName => matches_condition(
                        &ns.name,
                        &f.values,
                        f.condition,
                        &[C::Eq, C::BeginsWith],
                        f.name.as_str(),
                    )?,
                    NamespaceFilterName::ResourceOwner => matches_condition(
                        &self.account.account,
                        &f.values,
                        f.condition,
                        &[C::Eq],
                        "RESOURCE_OWNER",
                    )?,
                };
            }
            if ok {
                kept.push((keys::namespace(&ns.id), ns.summary(&self.account.account)));
            }
        }
        let (namespaces, next_token) = page(kept, req.next_token.as_deref(), req.max_results)?;
        Ok(ListNamespacesResponse {
            namespaces: Some(namespaces),
            next_token,
        })
    }

    async fn delete_namespace(
        &self,
        req: DeleteNamespaceRequest,
        now: f64,
    ) -> Result<DeleteNamespaceResponse, SdError> {
        let store = self.store_ref();
        let op = retry(store, || async {
            let (ns, rev) = self.namespace(&req.id).await?;
            if ns.service_count > 0 {
                return Err(SdError::in_use(format!(
                    "Namespace {} has {} associated services: delete them first.",
                    ns.id, ns.service_count
                )));
            }
            let op = new_operation(
                OperationType::DeleteNamespace,
                now,
                &[("NAMESPACE", &ns.id)],
            );
            let txn = Txn::new()
                .when(Compare::ModRevision(keys::namespace(&ns.id), rev))
                .delete(keys::namespace(&ns.id))
                .delete(keys::namespace_name(&ns.name));
            let txn = with_operation(store, txn, &op, now).await?;
            Ok(Attempt::Commit(txn, op))
        })
        .await?
        .map_err(|_| contended())?;
        Ok(DeleteNamespaceResponse {
            operation_id: Some(op.id),
        })
    }

    async fn create_service(
        &self,
        req: CreateServiceRequest,
        now: f64,
    ) -> Result<CreateServiceResponse, SdError> {
        record::check_service_name(&req.name)?;
        let ns_ref = req
            .namespace_id
            .clone()
            .or_else(|| req.dns_config.as_ref().and_then(|d| d.namespace_id.clone()))
            .ok_or_else(|| SdError::invalid("NamespaceId is required."))?;
        let mut tag_map = Default::default();
        add_tags(&mut tag_map, req.tags.as_deref().unwrap_or_default())?;
        let store = self.store_ref();
        let (req, tag_map) = (&req, &tag_map);
        let service = retry(store, || async {
            let (mut ns, nrev) = self.namespace(&ns_ref).await?;
            let (dns, custom) = record::service_settings(
                &ns,
                req.dns_config.as_ref(),
                req.r#type == Some(ServiceTypeOption::Http),
                req.health_check_config.as_ref(),
                req.health_check_custom_config.as_ref(),
            )?;
            let name_key = keys::service_name(&ns.id, &req.name);
            if let Some((existing, _)) = keys::service_by_name(store, &ns.id, &req.name).await? {
                return Err(SdError::of(
                    ErrorShape::ServiceAlreadyExists,
                    format!(
                        "Service already exists with name: {} (id {}, ARN {})",
                        req.name, existing.id, existing.arn
                    ),
                ));
            }
            let mut random = [0u8; 16];
            random.iter_mut().for_each(|b| *b = rand::random());
            let id = record::service_id(random);
            let s = ServiceRecord {
                arn: self.account.arn("service", &id),
                id: id.clone(),
                name: req.name.clone(),
                namespace_id: ns.id.clone(),
                description: req.description.clone(),
                created: now,
                creator_request_id: req.creator_request_id.clone(),
                dns,
                custom_health: custom,
                instance_count: 0,
                instances_revision: 0,
                tags: tag_map.clone(),
            };
            ns.service_count += 1;
            let txn = Txn::new()
                .when(Compare::ModRevision(keys::namespace(&ns.id), nrev))
                .when(Compare::Absent(name_key.clone()))
                .when(Compare::Absent(keys::service(&id)))
                .put(keys::namespace(&ns.id), encode(&ns)?)
                .put(name_key, id.clone().into_bytes())
                .put(keys::service(&id), encode(&s)?);
            Ok(Attempt::Commit(txn, s))
        })
        .await?
        .map_err(|_| contended())?;
        Ok(CreateServiceResponse {
            service: Some(service.shape(&self.account.account)),
        })
    }

    async fn get_service(
        &self,
        req: GetServiceRequest,
        _now: f64,
    ) -> Result<GetServiceResponse, SdError> {
        let (s, _) = self.service(&req.id).await?;
        Ok(GetServiceResponse {
            service: Some(s.shape(&self.account.account)),
        })
    }

    async fn list_services(
        &self,
        req: ListServicesRequest,
        _now: f64,
    ) -> Result<ListServicesResponse, SdError> {
        let all: Vec<ServiceRecord> = keys::all(self.store_ref(), keys::SERVICES).await?;
        let filters = req.filters.unwrap_or_default();
        let mut kept = Vec::new();
        for s in all {
            let mut ok = true;
            for f in &filters {
                use FilterCondition as C;
                ok &= match f.name {
                    ServiceFilterName::NamespaceId => {
                        let values: Vec<String> = f
                            .values
                            .iter()
                            .map(|v| self.account.id_of("namespace", v).unwrap_or(v).to_string())
                            .collect();
                        matches_condition(
                            &s.namespace_id,
                            &values,
                            f.condition,
                            &[C::Eq, C::In],
                            "NAMESPACE_ID",
                        )?
                    }
                    ServiceFilterName::ResourceOwner => matches_condition(
                        &self.account.account,
                        &f.values,
                        f.condition,
                        &[C::Eq],
                        "RESOURCE_OWNER",
                    )?,
                };
            }
            if ok {
                kept.push((keys::service(&s.id), s.summary(&self.account.account)));
            }
        }
        let (services, next_token) = page(kept, req.next_token.as_deref(), req.max_results)?;
        Ok(ListServicesResponse {
            services: Some(services),
            next_token,
        })
    }

    async fn update_service(
        &self,
        req: UpdateServiceRequest,
        now: f64,
    ) -> Result<UpdateServiceResponse, SdError> {
        if req.service.health_check_config.is_some() {
            return Err(SdError::invalid(
                "Flotilla does not run Route 53 health checks (HealthCheckConfig): use HealthCheckCustomConfig and UpdateInstanceCustomHealthStatus.",
            ));
        }
        let store = self.store_ref();
        let req = &req;
        let op = retry(store, || async {
            let (mut s, rev) = self.service(&req.id).await?;
            if let Some(d) = &req.service.description {
                s.description = Some(d.clone());
            }
            if let Some(change) = &req.service.dns_config {
                let Some(dns) = s.dns.as_mut() else {
                    return Err(SdError::invalid(format!(
                        "The service {} has no DnsConfig to change.",
                        s.id
                    )));
                };
                let records = record::check_records(&change.dns_records)?;
                let mut old: Vec<RecordType> = dns.records.iter().map(|(t, _)| *t).collect();
                let mut new: Vec<RecordType> = records.iter().map(|(t, _)| *t).collect();
                old.sort();
                new.sort();
                if old != new {
                    return Err(SdError::invalid(format!(
                        "UpdateService changes the TTLs of the service's records; their types ({}) cannot change.",
                        old.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                    )));
                }
                dns.records = records;
            }
            let op = new_operation(OperationType::UpdateService, now, &[("SERVICE", &s.id)]);
            let txn = Txn::new()
                .when(Compare::ModRevision(keys::service(&s.id), rev))
                .put(keys::service(&s.id), encode(&s)?);
            let txn = with_operation(store, txn, &op, now).await?;
            Ok(Attempt::Commit(txn, op))
        })
        .await?
        .map_err(|_| contended())?;
        Ok(UpdateServiceResponse {
            operation_id: Some(op.id),
        })
    }

    async fn delete_service(
        &self,
        req: DeleteServiceRequest,
        _now: f64,
    ) -> Result<DeleteServiceResponse, SdError> {
        let store = self.store_ref();
        retry(store, || async {
            let (s, srev) = self.service(&req.id).await?;
            if s.instance_count > 0 {
                return Err(SdError::in_use(format!(
                    "Service {} has {} associated instances: deregister them first.",
                    s.id, s.instance_count
                )));
            }
            let mut txn = Txn::new()
                .when(Compare::ModRevision(keys::service(&s.id), srev))
                .delete(keys::service(&s.id))
                .delete(keys::service_name(&s.namespace_id, &s.name));
            if let Some((mut ns, nrev)) = keys::get_namespace(store, &s.namespace_id).await? {
                ns.service_count = ns.service_count.saturating_sub(1);
                txn = txn
                    .when(Compare::ModRevision(keys::namespace(&ns.id), nrev))
                    .put(keys::namespace(&ns.id), encode(&ns)?);
            }
            Ok(Attempt::Commit(txn, ()))
        })
        .await?
        .map_err(|_| contended())?;
        Ok(DeleteServiceResponse {})
    }

    async fn register_instance(
        &self,
        req: RegisterInstanceRequest,
        now: f64,
    ) -> Result<RegisterInstanceResponse, SdError> {
        let (s, _) = self.service(&req.service_id).await?;
        let op = instances::put(
            self.store_ref(),
            &s.id,
            &req.instance_id,
            req.attributes,
            InitialHealth::FromAttributes,
            req.creator_request_id,
            now,
        )
        .await?;
        Ok(RegisterInstanceResponse {
            operation_id: Some(op.id),
        })
    }

    async fn deregister_instance(
        &self,
        req: DeregisterInstanceRequest,
        now: f64,
    ) -> Result<DeregisterInstanceResponse, SdError> {
        let (s, _) = self.service(&req.service_id).await?;
        let op = instances::remove(self.store_ref(), &s.id, &req.instance_id, now)
            .await?
            .ok_or_else(|| SdError::instance_not_found(&req.instance_id))?;
        Ok(DeregisterInstanceResponse {
            operation_id: Some(op.id),
        })
    }

    async fn get_instance(
        &self,
        req: GetInstanceRequest,
        _now: f64,
    ) -> Result<GetInstanceResponse, SdError> {
        let (s, _) = self.service(&req.service_id).await?;
        let (i, _) = keys::get_instance(self.store_ref(), &s.id, &req.instance_id)
            .await?
            .ok_or_else(|| SdError::instance_not_found(&req.instance_id))?;
        Ok(GetInstanceResponse {
            resource_owner: Some(self.account.account.clone()),
            instance: Some(Instance {
                id: i.id,
                creator_request_id: i.creator_request_id,
                attributes: Some(i.attributes),
                created_by_account: Some(self.account.account.clone()),
            }),
        })
    }

    async fn list_instances(
        &self,
        req: ListInstancesRequest,
        _now: f64,
    ) -> Result<ListInstancesResponse, SdError> {
        let (s, _) = self.service(&req.service_id).await?;
        let all = keys::instances_of(self.store_ref(), &s.id).await?;
        let items = all
            .into_iter()
            .map(|i| {
                (
                    keys::instance(&s.id, &i.id),
                    InstanceSummary {
                        id: Some(i.id),
                        attributes: Some(i.attributes),
                        created_by_account: Some(self.account.account.clone()),
                    },
                )
            })
            .collect();
        let (instances, next_token) = page(items, req.next_token.as_deref(), req.max_results)?;
        Ok(ListInstancesResponse {
            resource_owner: Some(self.account.account.clone()),
            instances: Some(instances),
            next_token,
        })
    }

    /// The service DiscoverInstances names (namespace by name, service by name in it).
    async fn discovered_service(
        &self,
        namespace_name: &str,
        service_name: &str,
        owner: Option<&str>,
    ) -> Result<ServiceRecord, SdError> {
        let not_found = || {
            SdError::of(
                ErrorShape::NamespaceNotFound,
                format!("Namespace not found: {namespace_name}"),
            )
        };
        if owner.is_some_and(|o| o != self.account.account) {
            return Err(not_found());
        }
        let (ns, _) = keys::namespace_by_name(self.store_ref(), namespace_name)
            .await?
            .ok_or_else(not_found)?;
        let (s, _) = keys::service_by_name(self.store_ref(), &ns.id, service_name)
            .await?
            .ok_or_else(|| SdError::service_not_found(service_name))?;
        Ok(s)
    }

    async fn discover_instances(
        &self,
        req: DiscoverInstancesRequest,
        _now: f64,
    ) -> Result<DiscoverInstancesResponse, SdError> {
        let s = self
            .discovered_service(
                &req.namespace_name,
                &req.service_name,
                req.owner_account.as_deref(),
            )
            .await?;
        let (ns, _) = keys::get_namespace(self.store_ref(), &s.namespace_id)
            .await?
            .ok_or_else(|| SdError::namespace_not_found(&req.namespace_name))?;
        let mut all = keys::instances_of(self.store_ref(), &s.id).await?;
        all.shuffle(&mut rand::thread_rng());
        let query = Query {
            required: req.query_parameters.unwrap_or_default(),
            optional: req.optional_parameters.unwrap_or_default(),
            health: req.health_status,
            max_results: req.max_results.and_then(|m| usize::try_from(m).ok()),
        };
        let found = discover::discover(&s, &all, &query)
            .into_iter()
            .map(|i| HttpInstanceSummary {
                instance_id: Some(i.id.clone()),
                namespace_name: Some(ns.name.clone()),
                service_name: Some(s.name.clone()),
                health_status: Some(s.health_of(i)),
                attributes: Some(i.attributes.clone()),
            })
            .collect();
        Ok(DiscoverInstancesResponse {
            instances: Some(found),
            instances_revision: Some(s.instances_revision),
        })
    }

    async fn discover_instances_revision(
        &self,
        req: DiscoverInstancesRevisionRequest,
        _now: f64,
    ) -> Result<DiscoverInstancesRevisionResponse, SdError> {
        let s = self
            .discovered_service(
                &req.namespace_name,
                &req.service_name,
                req.owner_account.as_deref(),
            )
            .await?;
        Ok(DiscoverInstancesRevisionResponse {
            instances_revision: Some(s.instances_revision),
        })
    }

    async fn get_instances_health_status(
        &self,
        req: GetInstancesHealthStatusRequest,
        _now: f64,
    ) -> Result<GetInstancesHealthStatusResponse, SdError> {
        let (s, _) = self.service(&req.service_id).await?;
        let all = keys::instances_of(self.store_ref(), &s.id).await?;
        if let Some(wanted) = &req.instances {
            if let Some(missing) = wanted.iter().find(|w| !all.iter().any(|i| &i.id == *w)) {
                return Err(SdError::instance_not_found(missing));
            }
        }
        let items = all
            .iter()
            .filter(|i| req.instances.as_ref().is_none_or(|w| w.contains(&i.id)))
            .map(|i| (keys::instance(&s.id, &i.id), (i.id.clone(), s.health_of(i))))
            .collect();
        let (statuses, next_token) = page(items, req.next_token.as_deref(), req.max_results)?;
        Ok(GetInstancesHealthStatusResponse {
            status: Some(statuses.into_iter().collect()),
            next_token,
        })
    }

    async fn update_instance_custom_health_status(
        &self,
        req: UpdateInstanceCustomHealthStatusRequest,
        _now: f64,
    ) -> Result<Value, SdError> {
        let (s, _) = self.service(&req.service_id).await?;
        if !s.has_custom_health() {
            return Err(SdError::of(
                ErrorShape::CustomHealthNotFound,
                format!(
                    "The service {} has no HealthCheckCustomConfig: its instances' health cannot be set.",
                    s.id
                ),
            ));
        }
        instances::health(self.store_ref(), &s.id, &req.instance_id, req.status).await?;
        Ok(Value::Object(Default::default()))
    }

    async fn get_operation(
        &self,
        req: GetOperationRequest,
        _now: f64,
    ) -> Result<GetOperationResponse, SdError> {
        let op = keys::get_operation(self.store_ref(), &req.operation_id)
            .await?
            .ok_or_else(|| {
                SdError::of(
                    ErrorShape::OperationNotFound,
                    format!("Operation not found: {}", req.operation_id),
                )
            })?;
        Ok(GetOperationResponse {
            operation: Some(op.shape(&self.account.account)),
        })
    }

    async fn list_operations(
        &self,
        req: ListOperationsRequest,
        _now: f64,
    ) -> Result<ListOperationsResponse, SdError> {
        let all: Vec<OperationRecord> = keys::all(self.store_ref(), keys::OPERATIONS).await?;
        let filters = req.filters.unwrap_or_default();
        let mut kept = Vec::new();
        for op in all {
            let mut ok = true;
            for f in &filters {
                use FilterCondition as C;
                ok &= match f.name {
                    OperationFilterName::NamespaceId => matches_condition(
                        op.targets.get("NAMESPACE").map_or("", String::as_str),
                        &f.values,
                        f.condition,
                        &[C::Eq],
                        "NAMESPACE_ID",
                    )?,
                    OperationFilterName::ServiceId => matches_condition(
                        op.targets.get("SERVICE").map_or("", String::as_str),
                        &f.values,
                        f.condition,
                        &[C::Eq],
                        "SERVICE_ID",
                    )?,
                    OperationFilterName::Status => matches_condition(
                        op.status.as_str(),
                        &f.values,
                        f.condition,
                        &[C::Eq, C::In],
                        "STATUS",
                    )?,
                    OperationFilterName::Type => matches_condition(
                        op.kind.as_str(),
                        &f.values,
                        f.condition,
                        &[C::Eq, C::In],
                        "TYPE",
                    )?,
                    OperationFilterName::UpdateDate => {
                        if f.condition != Some(C::Between) || f.values.len() != 2 {
                            return Err(SdError::invalid(
                                "The UPDATE_DATE filter takes BETWEEN with two values: a start and an end date (epoch seconds).",
                            ));
                        }
                        let bound = |v: &String| {
                            v.parse::<f64>().map_err(|_| {
                                SdError::invalid(format!(
                                    "UPDATE_DATE values are epoch seconds, not {v}."
                                ))
                            })
                        };
                        let (from, to) = (bound(&f.values[0])?, bound(&f.values[1])?);
                        let at = op.created_ms as f64 / 1000.0;
                        from <= at && at <= to
                    }
                };
            }
            if ok {
                kept.push((
                    keys::operation(&op.id),
                    OperationSummary {
                        id: Some(op.id.clone()),
                        status: Some(op.status),
                    },
                ));
            }
        }
        let (operations, next_token) = page(kept, req.next_token.as_deref(), req.max_results)?;
        Ok(ListOperationsResponse {
            operations: Some(operations),
            next_token,
        })
    }

    /// Changes the tags of the resource `arn` names.
    async fn retag(
        &self,
        arn: &str,
        change: impl Fn(&mut std::collections::BTreeMap<String, String>) -> Result<(), SdError>,
    ) -> Result<std::collections::BTreeMap<String, String>, SdError> {
        let store = self.store_ref();
        let change = &change;
        retry(store, || async move {
            if let Some(id) = self
                .account
                .id_of("namespace", arn)
                .filter(|_| arn.starts_with("arn:"))
            {
                let (mut ns, rev) = keys::get_namespace(store, id)
                    .await?
                    .ok_or_else(|| SdError::resource_not_found(arn))?;
                change(&mut ns.tags)?;
                let txn = Txn::new()
                    .when(Compare::ModRevision(keys::namespace(id), rev))
                    .put(keys::namespace(id), encode(&ns)?);
                return Ok(Attempt::Commit(txn, ns.tags));
            }
            if let Some(id) = self
                .account
                .id_of("service", arn)
                .filter(|_| arn.starts_with("arn:"))
            {
                let (mut s, rev) = keys::get_service(store, id)
                    .await?
                    .ok_or_else(|| SdError::resource_not_found(arn))?;
                change(&mut s.tags)?;
                let txn = Txn::new()
                    .when(Compare::ModRevision(keys::service(id), rev))
                    .put(keys::service(id), encode(&s)?);
                return Ok(Attempt::Commit(txn, s.tags));
            }
            Err(SdError::resource_not_found(arn))
        })
        .await?
        .map_err(|_| contended())
    }

    async fn tag_resource(&self, req: TagResourceRequest, _now: f64) -> Result<Value, SdError> {
        self.retag(&req.resource_arn, |tags| add_tags(tags, &req.tags))
            .await?;
        Ok(Value::Object(Default::default()))
    }

    async fn untag_resource(&self, req: UntagResourceRequest, _now: f64) -> Result<Value, SdError> {
        self.retag(&req.resource_arn, |tags| {
            for k in &req.tag_keys {
                tags.remove(k);
            }
            Ok(())
        })
        .await?;
        Ok(Value::Object(Default::default()))
    }

    async fn list_tags_for_resource(
        &self,
        req: ListTagsForResourceRequest,
        _now: f64,
    ) -> Result<ListTagsForResourceResponse, SdError> {
        let tags = self.retag(&req.resource_arn, |_| Ok(())).await?;
        Ok(ListTagsForResourceResponse {
            tags: Some(tag_list(&tags)),
        })
    }
}

macro_rules! ops {
    ($self:ident, $call:ident; $( $name:literal => $handler:ident ),* $(,)?) => {
        match $call.operation {
            $(
                $name => {
                    let req = $self.model.parse_input($name, $call.input).map_err(SdError::from)?;
                    to_value($self.$handler(req, $call.now).await?)
                }
            )*
            other => Err(SdError::invalid(format!(
                "{other} is not served by this Flotilla server: it serves {}.",
                SERVED.join(", ")
            ))),
        }
    };
}

#[async_trait::async_trait]
impl JsonApi for ServiceDiscovery {
    fn title(&self) -> &'static str {
        "AWS Cloud Map"
    }

    fn signing_name(&self) -> &'static str {
        "servicediscovery"
    }

    fn target_prefix(&self) -> &'static str {
        "Route53AutoNaming_v20170314"
    }

    fn has_operation(&self, name: &str) -> bool {
        self.model.has_operation(name)
    }

    fn invalid_request(&self, message: String) -> JsonError {
        SdError::invalid(message).into()
    }

    async fn dispatch(&self, call: JsonCall<'_>) -> Result<Value, JsonError> {
        let result: Result<Value, SdError> = ops!(self, call;
            "CreateHttpNamespace" => create_http_namespace,
            "CreatePrivateDnsNamespace" => create_private_dns_namespace,
            "CreatePublicDnsNamespace" => create_public_dns_namespace,
            "GetNamespace" => get_namespace,
            "ListNamespaces" => list_namespaces,
            "DeleteNamespace" => delete_namespace,
            "CreateService" => create_service,
            "GetService" => get_service,
            "ListServices" => list_services,
            "UpdateService" => update_service,
            "DeleteService" => delete_service,
            "RegisterInstance" => register_instance,
            "DeregisterInstance" => deregister_instance,
            "GetInstance" => get_instance,
            "ListInstances" => list_instances,
            "DiscoverInstances" => discover_instances,
            "DiscoverInstancesRevision" => discover_instances_revision,
            "GetInstancesHealthStatus" => get_instances_health_status,
            "UpdateInstanceCustomHealthStatus" => update_instance_custom_health_status,
            "GetOperation" => get_operation,
            "ListOperations" => list_operations,
            "TagResource" => tag_resource,
            "UntagResource" => untag_resource,
            "ListTagsForResource" => list_tags_for_resource,
        );
        result.map_err(JsonError::from)
    }
}

/// A namespace to create.
struct NewNamespace<'a> {
    kind: NamespaceType,
    name: &'a str,
    creator_request_id: Option<String>,
    description: Option<String>,
    tags: Option<Vec<Tag>>,
    vpc: Option<String>,
    soa_ttl: Option<i64>,
}

/// Creates a namespace on `store` (its name unique; its operation recorded SUCCESS in the same
/// transaction); returns the operation's id.
async fn create_namespace_in(
    store: &dyn Store,
    account: &Account,
    spec: NewNamespace<'_>,
    now: f64,
) -> Result<String, SdError> {
    let NewNamespace {
        kind,
        name,
        creator_request_id,
        description,
        tags,
        vpc,
        soa_ttl,
    } = spec;
    record::check_namespace_name(kind, name)?;
    let mut tag_map = Default::default();
    add_tags(&mut tag_map, tags.as_deref().unwrap_or_default())?;
    let name_key = keys::namespace_name(name);
    let (creator, description, vpc, tag_map) = (&creator_request_id, &description, &vpc, &tag_map);
    let op = retry(store, || async {
        if let Some(kv) = store.get(&name_key).await? {
            let id = String::from_utf8_lossy(&kv.value).to_string();
            return Err(SdError::of(
                ErrorShape::NamespaceAlreadyExists,
                format!("Namespace already exists with name: {name} (id {id})"),
            ));
        }
        let mut random = [0u8; 16];
        random.iter_mut().for_each(|b| *b = rand::random());
        let id = record::namespace_id(random);
        let ns = NamespaceRecord {
            arn: account.arn("namespace", &id),
            id: id.clone(),
            name: name.trim_end_matches('.').to_string(),
            kind,
            description: description.clone(),
            created: now,
            creator_request_id: creator.clone(),
            vpc: vpc.clone(),
            soa_ttl: (kind != NamespaceType::Http).then_some(soa_ttl.unwrap_or(DEFAULT_SOA_TTL)),
            service_count: 0,
            tags: tag_map.clone(),
        };
        let op = new_operation(OperationType::CreateNamespace, now, &[("NAMESPACE", &id)]);
        let txn = Txn::new()
            .when(Compare::Absent(name_key.clone()))
            .when(Compare::Absent(keys::namespace(&id)))
            .put(name_key.clone(), id.clone().into_bytes())
            .put(keys::namespace(&id), encode(&ns)?);
        let txn = with_operation(store, txn, &op, now).await?;
        Ok(Attempt::Commit(txn, op))
    })
    .await?
    .map_err(|_| contended())?;
    Ok(op.id)
}

/// The HTTP namespace named `name`, created when there is none (what ECS does with a
/// cluster's `serviceConnectDefaults` namespace name); a namespace of that name of another
/// type is returned as it is.
pub async fn ensure_http_namespace(
    store: &dyn Store,
    account: &Account,
    name: &str,
    now: f64,
) -> Result<NamespaceRecord, SdError> {
    // What the model's pattern for CreateHttpNamespace's `Name` allows (the JSON edge checks
    // it for Cloud Map's own callers).
    if name.is_empty() || name.len() > 1024 || !name.chars().all(|c| ('!'..='~').contains(&c)) {
        return Err(SdError::invalid(format!(
            "Namespace name {name:?} is not valid: 1 to 1,024 printable characters without spaces."
        )));
    }
    if let Some((ns, _)) = keys::namespace_by_name(store, name).await? {
        return Ok(ns);
    }
    let spec = NewNamespace {
        kind: NamespaceType::Http,
        name,
        creator_request_id: None,
        description: None,
        tags: None,
        vpc: None,
        soa_ttl: None,
    };
    match create_namespace_in(store, account, spec, now).await {
        Ok(_) => {}
        // Created by a concurrent request: it is there now.
        Err(e) if e.shape() == Some(ErrorShape::NamespaceAlreadyExists) => {}
        Err(e) => return Err(e),
    }
    keys::namespace_by_name(store, name)
        .await?
        .map(|(ns, _)| ns)
        .ok_or_else(|| SdError::namespace_not_found(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{self, Answer, QueryType};
    use flotilla_store::MemoryStore;
    use serde_json::json;

    fn api() -> ServiceDiscovery {
        ServiceDiscovery::new(Arc::new(MemoryStore::new()), "us-east-1", "123456789012")
    }

    async fn call(sd: &ServiceDiscovery, op: &str, input: Value) -> Result<Value, JsonError> {
        let caller = flotilla_sigv4::Caller {
            access_key_id: "AKIDEXAMPLE".into(),
            region: "us-east-1".into(),
            service: "servicediscovery".into(),
            principal_arn: "arn:aws:iam::123456789012:root".into(),
        };
        sd.dispatch(JsonCall {
            caller: &caller,
            operation: op,
            input,
            now: 1_700_000_000.0,
        })
        .await
    }

    async fn namespace_id(sd: &ServiceDiscovery, op_id: &str) -> String {
        let op = call(sd, "GetOperation", json!({"OperationId": op_id}))
            .await
            .unwrap();
        op["Operation"]["Targets"]["NAMESPACE"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn a_private_namespace_its_service_and_instances_answer_dns_and_discovery() {
        let sd = api();
        let op = call(
            &sd,
            "CreatePrivateDnsNamespace",
            json!({"Name": "corp.local", "Vpc": "vpc-1"}),
        )
        .await
        .unwrap();
        let ns = namespace_id(&sd, op["OperationId"].as_str().unwrap()).await;
        let e = call(&sd, "CreateHttpNamespace", json!({"Name": "corp.local"}))
            .await
            .unwrap_err();
        assert_eq!(e.type_name, "NamespaceAlreadyExists");
        let svc = call(
            &sd,
            "CreateService",
            json!({"Name": "web", "NamespaceId": ns, "DnsConfig": {"DnsRecords": [{"Type": "A", "TTL": 10}, {"Type": "SRV", "TTL": 10}]},
                   "HealthCheckCustomConfig": {}}),
        )
        .await
        .unwrap();
        let sid = svc["Service"]["Id"].as_str().unwrap().to_string();
        assert_eq!(svc["Service"]["Type"], "DNS_HTTP");
        for (id, ip) in [("a", "10.0.0.1"), ("b", "10.0.0.2")] {
            call(
                &sd,
                "RegisterInstance",
                json!({"ServiceId": sid, "InstanceId": id,
                "Attributes": {"AWS_INSTANCE_IPV4": ip, "AWS_INSTANCE_PORT": "80"}}),
            )
            .await
            .unwrap();
        }
        call(
            &sd,
            "UpdateInstanceCustomHealthStatus",
            json!({"ServiceId": sid, "InstanceId": "b", "Status": "UNHEALTHY"}),
        )
        .await
        .unwrap();
        let found = call(
            &sd,
            "DiscoverInstances",
            json!({"NamespaceName": "corp.local", "ServiceName": "web"}),
        )
        .await
        .unwrap();
        assert_eq!(found["Instances"].as_array().unwrap().len(), 1);
        assert_eq!(found["InstancesRevision"], 3);
        let all = call(
            &sd,
            "DiscoverInstances",
            json!({"NamespaceName": "corp.local", "ServiceName": "web", "HealthStatus": "ALL"}),
        )
        .await
        .unwrap();
        assert_eq!(all["Instances"].as_array().unwrap().len(), 2);
        let answer = dns::resolve(sd.store().as_ref(), "web.corp.local", QueryType::A)
            .await
            .unwrap();
        let Answer::Records { answers, .. } = answer else {
            panic!("records expected")
        };
        assert_eq!(answers.len(), 1);
        // In use: the namespace has a service, the service instances.
        let e = call(&sd, "DeleteNamespace", json!({"Id": ns}))
            .await
            .unwrap_err();
        assert_eq!(e.type_name, "ResourceInUse");
        let e = call(&sd, "DeleteService", json!({"Id": sid}))
            .await
            .unwrap_err();
        assert_eq!(e.type_name, "ResourceInUse");
        for id in ["a", "b"] {
            call(
                &sd,
                "DeregisterInstance",
                json!({"ServiceId": sid, "InstanceId": id}),
            )
            .await
            .unwrap();
        }
        let e = call(
            &sd,
            "DeregisterInstance",
            json!({"ServiceId": sid, "InstanceId": "a"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.type_name, "InstanceNotFound");
        call(&sd, "DeleteService", json!({"Id": sid}))
            .await
            .unwrap();
        call(&sd, "DeleteNamespace", json!({"Id": ns}))
            .await
            .unwrap();
        assert!(keys::get_namespace(sd.store().as_ref(), &ns)
            .await
            .unwrap()
            .is_none());
        let ops = call(&sd, "ListOperations", json!({})).await.unwrap();
        assert_eq!(ops["Operations"].as_array().unwrap().len(), 6);
    }

    #[tokio::test]
    async fn lists_page_and_filter_and_refusals_name_what_is_served() {
        let sd = api();
        for n in 0..5 {
            call(
                &sd,
                "CreateHttpNamespace",
                json!({"Name": format!("ns{n}")}),
            )
            .await
            .unwrap();
        }
        call(
            &sd,
            "CreatePrivateDnsNamespace",
            json!({"Name": "x.local", "Vpc": "vpc-1"}),
        )
        .await
        .unwrap();
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut input =
                json!({"MaxResults": 2, "Filters": [{"Name": "TYPE", "Values": ["HTTP"]}]});
            if let Some(t) = &token {
                input["NextToken"] = json!(t);
            }
            let page = call(&sd, "ListNamespaces", input).await.unwrap();
            for n in page["Namespaces"].as_array().unwrap() {
                seen.push(n["Name"].as_str().unwrap().to_string());
            }
            match page["NextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, ["ns0", "ns1", "ns2", "ns3", "ns4"]);
        let e = call(&sd, "GetServiceAttributes", json!({"ServiceId": "srv-x"}))
            .await
            .unwrap_err();
        assert_eq!(e.type_name, "InvalidInput");
        assert!(e.message.contains("DiscoverInstances"), "{}", e.message);
        let e = call(&sd, "GetNamespace", json!({"Id": "ns-nope"}))
            .await
            .unwrap_err();
        assert_eq!((e.type_name, e.status), ("NamespaceNotFound", 404));
        let e = call(&sd, "GetOperation", json!({"OperationId": "nope"}))
            .await
            .unwrap_err();
        assert_eq!(e.type_name, "OperationNotFound");
    }
}
