//! Service options of the ECS model that this server does not carry out yet, refused with
//! `UnsupportedFeatureException` naming them, by CreateService and UpdateService alike, rather
//! than stored and ignored: Service Connect (enabled), service-managed EBS volumes, VPC Lattice,
//! gateway connectors and monitoring configurations. What turns a feature off (Service Connect
//! with `enabled: false`, empty lists) is accepted: it asks for nothing.

use flotilla_model::shapes::{
    GatewayConnector, MonitoringConfiguration, ServiceConnectConfiguration,
    ServiceVolumeConfiguration, VpcLatticeConfiguration,
};
use flotilla_model::{EcsError, ErrorCode};

/// The options a CreateService or UpdateService request names.
pub struct ServiceOptions<'a> {
    /// `serviceConnectConfiguration`.
    pub service_connect: Option<&'a ServiceConnectConfiguration>,
    /// `volumeConfigurations`.
    pub volumes: Option<&'a [ServiceVolumeConfiguration]>,
    /// `vpcLatticeConfigurations`.
    pub vpc_lattice: Option<&'a [VpcLatticeConfiguration]>,
    /// `gatewayConnectors`.
    pub gateway_connectors: Option<&'a [GatewayConnector]>,
    /// `monitoring`.
    pub monitoring: Option<&'a MonitoringConfiguration>,
}

impl<'a> ServiceOptions<'a> {
    /// The options of a CreateService request.
    pub fn of_create(r: &'a flotilla_model::shapes::CreateServiceRequest) -> Self {
        ServiceOptions {
            service_connect: r.service_connect_configuration.as_ref(),
            volumes: r.volume_configurations.as_deref(),
            vpc_lattice: r.vpc_lattice_configurations.as_deref(),
            gateway_connectors: r.gateway_connectors.as_deref(),
            monitoring: r.monitoring.as_ref(),
        }
    }

    /// The options of an UpdateService request.
    pub fn of_update(r: &'a flotilla_model::shapes::UpdateServiceRequest) -> Self {
        ServiceOptions {
            service_connect: r.service_connect_configuration.as_ref(),
            volumes: r.volume_configurations.as_deref(),
            vpc_lattice: r.vpc_lattice_configurations.as_deref(),
            gateway_connectors: r.gateway_connectors.as_deref(),
            monitoring: r.monitoring.as_ref(),
        }
    }
}

/// `UnsupportedFeatureException` for the first option asked that is not served.
pub fn refuse(o: &ServiceOptions<'_>) -> Result<(), EcsError> {
    let asked = [
        (
            o.service_connect.is_some_and(|c| c.enabled),
            "Service Connect (serviceConnectConfiguration) is not supported by this Flotilla server yet; use serviceRegistries (Cloud Map) and load balancers.",
        ),
        (
            o.volumes.is_some_and(|v| !v.is_empty()),
            "Service-managed Amazon EBS volumes (volumeConfigurations) are not supported by this Flotilla server.",
        ),
        (
            o.vpc_lattice.is_some_and(|v| !v.is_empty()),
            "VPC Lattice (vpcLatticeConfigurations) is not supported by this Flotilla server.",
        ),
        (
            o.gateway_connectors.is_some_and(|v| !v.is_empty()),
            "Gateway connectors (gatewayConnectors) are not supported by this Flotilla server.",
        ),
        (
            o.monitoring.is_some(),
            "Service monitoring configurations (monitoring) are not supported by this Flotilla server yet.",
        ),
    ];
    match asked.iter().find(|(given, _)| *given) {
        Some((_, message)) => Err(EcsError::new(
            ErrorCode::UnsupportedFeatureException,
            *message,
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> ServiceOptions<'static> {
        ServiceOptions {
            service_connect: None,
            volumes: None,
            vpc_lattice: None,
            gateway_connectors: None,
            monitoring: None,
        }
    }

    #[test]
    fn what_asks_for_nothing_passes_and_what_asks_is_refused() {
        assert!(refuse(&none()).is_ok());
        let off = ServiceConnectConfiguration {
            enabled: false,
            ..Default::default()
        };
        assert!(refuse(&ServiceOptions {
            service_connect: Some(&off),
            volumes: Some(&[]),
            ..none()
        })
        .is_ok());
        let on = ServiceConnectConfiguration {
            enabled: true,
            ..Default::default()
        };
        let e = refuse(&ServiceOptions {
            service_connect: Some(&on),
            ..none()
        })
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedFeatureException);
        assert!(e.message.contains("Service Connect"), "{}", e.message);
    }
}
