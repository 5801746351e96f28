//! The Docker network and IPAM driver on Neutron.
//!
//! Each libnetwork call ([`kuryr_libnetwork::Call`]) becomes a few Neutron requests; what ties
//! Docker's ids to Neutron's resources lives only in Neutron's names and tags
//! ([`mapping`]), with the same scheme as the upstream Python kuryr-libnetwork. What the
//! driver keeps between calls can be rebuilt or lost: a cache of what does not change
//! (`cache`), the port pools (recounted from Neutron after a start), and the records of
//! unfinished teardowns on the host (`teardown`, sent again after a restart). So it can be
//! killed and restarted between any two calls, or in the middle of one.
//!
//! The modules follow Docker's objects: [`ipam`] (pools and addresses), [`network`],
//! [`endpoint`] (ports and the host's veth), [`expose`] (`--expose` security groups);
//! [`nested`] is what differs for containers inside a VM.

mod cache;
pub mod control_plane;
pub mod endpoint;
pub mod error;
pub mod expose;
pub mod floating;
pub mod forget;
mod host;
pub mod ipam;
mod ledger;
mod locks;
mod lookup;
pub mod mapping;
pub mod nested;
pub mod network;
pub mod options;
mod plugging;
pub mod pool;
pub mod pool_admin;
mod pooled;
pub mod publish;
mod readiness;
pub mod reconcile;
mod routing;
pub mod teardown;

use std::path::PathBuf;
use std::time::Duration;

use kuryr_libnetwork::ipam::{Capabilities as IpamCapabilities, DefaultAddressSpaces};
use kuryr_libnetwork::network::Capabilities;
use kuryr_libnetwork::plugin::{ActivateResponse, Empty};
use kuryr_libnetwork::Call;
use kuryr_openstack::neutron::Neutron;
use serde::Serialize;
use serde_json::Value;

use error::host_err;
pub use error::{DriverError, Result};
pub use nested::{Nested, NestedKind, PortMode};
pub use readiness::Readiness;
pub use teardown::Teardown;

/// What the driver needs from kuryr.conf and the host.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// `binding:host_id` of the ports bound here (this host's name, as Neutron agents use it).
    pub host_id: String,
    /// `capability_scope`: `local` or `global`.
    pub capability_scope: String,
    pub local_default_address_space: String,
    pub global_default_address_space: String,
    /// `subnetpool_name_prefix` (`kuryrPool`).
    pub subnetpool_name_prefix: String,
    /// `[neutron] default_subnetpool_v4` / `_v6`: where networks without `--subnet` get one.
    pub default_subnetpool_v4: String,
    pub default_subnetpool_v6: String,
    /// `[neutron] default_router`: the router the subnets kuryr creates are attached to,
    /// unless a network says otherwise (`neutron.router*`).
    pub default_router: Option<options::Named>,
    /// `[neutron] enable_dhcp` for the subnets kuryr creates.
    pub enable_dhcp: bool,
    /// `[binding] veth_dst_prefix`: the container interface is named this plus a number.
    pub veth_dst_prefix: String,
    /// `process_external_connectivity`: whether `--expose` becomes security groups.
    pub process_external_connectivity: bool,
    /// `[neutron] vif_plugging_is_fatal` / `vif_plugging_timeout` (zero: no limit).
    pub vif_plugging_is_fatal: bool,
    pub vif_plugging_timeout: Duration,
    /// `bindir`: where the executables of other `binding:vif_type`s are.
    pub bindir: PathBuf,
    /// ovsdb-server's socket, for ports whose `binding:vif_type` is `ovs`.
    pub ovsdb_socket: PathBuf,
    /// `[DEFAULT] default_port_driver`: bare metal, or containers inside a VM.
    pub port_mode: PortMode,
    /// `[vif_pool]`, when enabled (bare metal only).
    pub pool: Option<pool::PoolConfig>,
    /// Where unfinished teardowns are recorded ([`teardown`]); None: nowhere, so a failed
    /// teardown is not tried again.
    pub teardown_dir: Option<PathBuf>,
    /// The Docker control plane whose networks this daemon maps ([`control_plane`]).
    pub control_plane: control_plane::ControlPlane,
}

/// The driver: one per daemon, shared by all connections.
pub struct Driver {
    neutron: Neutron,
    config: DriverConfig,
    readiness: std::sync::Arc<Readiness>,
    locks: locks::KeyedLocks,
    host: std::sync::Arc<host::Host>,
    plugging: plugging::ActiveWatcher,
    /// Nested modes: the VM's port, found once.
    vm_port: tokio::sync::OnceCell<nested::VmPort>,
    pools: Option<std::sync::Arc<pool::Pools>>,
    /// What does not change in Neutron (the network of a Docker network, its subnets).
    cache: cache::Cache,
    /// The ports the usual path made and bound, so a container's later calls need no lookup.
    ledger: ledger::Ledger,
    journal: Option<teardown::Journal>,
    /// Which endpoints have a floating IP of their own.
    endpoint_fips: floating::EndpointFips,
}

impl Driver {
    pub fn new(neutron: Neutron, config: DriverConfig) -> Driver {
        let host = std::sync::Arc::new(host::Host::new(
            config.ovsdb_socket.clone(),
            config.bindir.clone(),
        ));
        let readiness = std::sync::Arc::new(Readiness::default());
        let pools = match (&config.pool, &config.port_mode) {
            (Some(pool), PortMode::Veth) => Some(pool::Pools::new(
                neutron.clone(),
                host.clone(),
                readiness.clone(),
                config.host_id.clone(),
                pool.clone(),
            )),
            _ => None,
        };
        let journal = config.teardown_dir.as_deref().and_then(|dir| {
            teardown::Journal::open(dir)
                .map_err(|e| {
                    tracing::error!(dir = %dir.display(), "cannot use the folder of unfinished teardowns, so failed teardowns will not be tried again: {e}");
                })
                .ok()
        });
        Driver {
            journal,
            endpoint_fips: floating::EndpointFips::default(),
            pools,
            cache: cache::Cache::default(),
            ledger: ledger::Ledger::default(),
            neutron,
            config,
            readiness,
            locks: locks::KeyedLocks::default(),
            host,
            plugging: plugging::ActiveWatcher::default(),
            vm_port: tokio::sync::OnceCell::new(),
        }
    }

    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    pub fn neutron(&self) -> &Neutron {
        &self.neutron
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Check Neutron's extensions until they answer, with backoff (1 s doubling to 30 s);
    /// meanwhile calls that need Neutron are answered with why it is not usable yet.
    pub async fn wait_for_neutron(&self) {
        readiness::probe_until_ready(&self.neutron, &self.readiness).await;
    }

    /// Answer one plugin call.
    ///
    /// # Errors
    /// [`DriverError`] with the status and message to send to Docker (which shows it after
    /// the call's name, so messages do not repeat it).
    pub async fn handle(&self, call: Call) -> Result<Value> {
        if needs_neutron(&call) {
            self.readiness.ready().await?;
        }
        match call {
            Call::Activate => json(ActivateResponse::network_and_ipam()),
            Call::NetworkCapabilities => json(Capabilities {
                scope: self.config.capability_scope.clone(),
                connectivity_scope: Some(self.config.capability_scope.clone()),
            }),
            // With pools, the port's MAC is set when the pool is filled (Neutron refuses to
            // change a bound port's MAC): Docker then takes it from CreateEndpoint.
            Call::IpamCapabilities => json(IpamCapabilities {
                requires_mac_address: self.pools.is_none(),
                requires_request_replay: false,
            }),
            Call::DefaultAddressSpaces => json(DefaultAddressSpaces {
                local: self.config.local_default_address_space.clone(),
                global: self.config.global_default_address_space.clone(),
            }),
            Call::AllocateNetwork(req) => json(self.allocate_network(&req).await?),
            Call::FreeNetwork(req) => {
                let teardown = Teardown::FreeNetwork {
                    network_id: req.network_id.as_str().to_owned(),
                };
                json(self.finishing(teardown, self.free_network(&req)).await?)
            }
            Call::Leave(_) | Call::DiscoverNew(_) | Call::DiscoverDelete(_) => json(Empty {}),
            Call::RequestPool(req) => json(self.request_pool(&req).await?),
            Call::ReleasePool(req) => json(self.release_pool(&req).await?),
            Call::RequestAddress(req) => json(self.request_address(&req).await?),
            Call::ReleaseAddress(req) => json(self.release_address(&req).await?),
            Call::CreateNetwork(req) => json(self.create_network(&req).await?),
            Call::DeleteNetwork(req) => {
                let teardown = Teardown::DeleteNetwork {
                    network_id: req.network_id.as_str().to_owned(),
                };
                json(self.finishing(teardown, self.delete_network(&req)).await?)
            }
            Call::CreateEndpoint(req) => json(self.create_endpoint(&req).await?),
            Call::EndpointOperInfo(req) => json(self.endpoint_oper_info(&req).await?),
            Call::DeleteEndpoint(req) => {
                let teardown = Teardown::DeleteEndpoint {
                    network_id: req.network_id.as_str().to_owned(),
                    endpoint_id: req.endpoint_id.as_str().to_owned(),
                };
                json(self.finishing(teardown, self.delete_endpoint(&req)).await?)
            }
            Call::Join(req) => json(self.join(&req).await?),
            Call::ProgramExternalConnectivity(req) => json(self.program_external(&req).await?),
            Call::RevokeExternalConnectivity(req) => {
                let teardown = Teardown::RevokeExternalConnectivity {
                    network_id: req.network_id.as_str().to_owned(),
                    endpoint_id: req.endpoint_id.as_str().to_owned(),
                };
                json(self.finishing(teardown, self.revoke_external(&req)).await?)
            }
        }
    }

    /// The host side (netlink and ovsdb-server connections), opened on first use.
    async fn binder(&self) -> Result<&kuryr_binding::Binder> {
        self.host.binder().await.map_err(host_err(
            "connecting to the host's netlink and Open vSwitch",
        ))
    }
}

/// Whether a call waits for Neutron to be usable; the others are answered at once.
fn needs_neutron(call: &Call) -> bool {
    match call {
        Call::Activate
        | Call::NetworkCapabilities
        | Call::IpamCapabilities
        | Call::DefaultAddressSpaces
        | Call::Leave(_)
        | Call::DiscoverNew(_)
        | Call::DiscoverDelete(_) => false,
        Call::AllocateNetwork(_)
        | Call::FreeNetwork(_)
        | Call::RequestPool(_)
        | Call::ReleasePool(_)
        | Call::RequestAddress(_)
        | Call::ReleaseAddress(_)
        | Call::CreateNetwork(_)
        | Call::DeleteNetwork(_)
        | Call::CreateEndpoint(_)
        | Call::EndpointOperInfo(_)
        | Call::DeleteEndpoint(_)
        | Call::Join(_)
        | Call::ProgramExternalConnectivity(_)
        | Call::RevokeExternalConnectivity(_) => true,
    }
}

fn json<T: Serialize>(value: T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| DriverError::bug(format!("encoding the answer: {e}")))
}
