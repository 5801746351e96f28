//! Typed Neutron resources: what Neutron answers (`Network`, `Port`, ...) and what a caller
//! sends on create and update (`NetworkSpec`, `PortSpec`, ...).
//!
//! Answers default every missing field, so that a list with `fields=` selection still
//! deserializes. Specs leave out every field that is `None`.

mod agent;
mod extension;
mod floating_ip;
mod ip_availability;
mod network;
mod port;
mod router;
mod security_group;
mod subnet;
mod subnetpool;
mod trunk;

pub use agent::Agent;
pub use extension::Extension;
pub use floating_ip::{FloatingIp, FloatingIpSpec, PortForwarding, PortForwardingSpec};
pub use ip_availability::{NetworkIpAvailability, SubnetIpAvailability};
pub use network::{Network, NetworkSpec};
pub use port::{AddressPair, FixedIp, Port, PortSpec, TrunkDetails};
pub use router::{ExternalGatewayInfo, Router, RouterInterface, RouterInterfaceInfo, RouterSpec};
pub use security_group::{
    SecurityGroup, SecurityGroupRule, SecurityGroupRuleSpec, SecurityGroupSpec,
};
pub use subnet::{AllocationPool, HostRoute, Subnet, SubnetSpec};
pub use subnetpool::{SubnetPool, SubnetPoolSpec};
pub use trunk::{Subport, Trunk, TrunkSpec};

/// Implement [`super::api::Resource`] (and optionally `Taggable`) for a type.
macro_rules! resource {
    ($ty:ty, $spec:ty, $singular:literal, $plural:literal, $collection:literal) => {
        impl $crate::neutron::api::Resource for $ty {
            const SINGULAR: &'static str = $singular;
            const PLURAL: &'static str = $plural;
            const COLLECTION: &'static str = $collection;
            type Spec = $spec;
        }
    };
    ($ty:ty, $spec:ty, $singular:literal, $plural:literal, $collection:literal, taggable) => {
        resource!($ty, $spec, $singular, $plural, $collection);
        impl $crate::neutron::api::Taggable for $ty {}
    };
}
pub(crate) use resource;

/// Deserialize numbers that older Neutrons send as strings (`"24"`) as well as numbers.
pub(crate) mod lenient {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(u64),
        Str(String),
    }

    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match Option::<NumOrStr>::deserialize(d)? {
            None => Ok(None),
            Some(NumOrStr::Num(n)) => u32::try_from(n).map(Some).map_err(serde::de::Error::custom),
            Some(NumOrStr::Str(s)) if s.is_empty() => Ok(None),
            Some(NumOrStr::Str(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }

    /// `null` becomes the default value.
    pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Default + Deserialize<'de>,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }
}
