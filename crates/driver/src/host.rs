//! The host's netlink and ovsdb-server connections, shared by the driver and its port pools
//! and opened on first use: calls that never touch the host, and IPAM-only hosts without
//! CAP_NET_ADMIN, do not need them.

use std::path::PathBuf;

use kuryr_binding::{veth_names, Binder, Netlink, Ovsdb, PlugRequest, VethSpec};
use kuryr_libnetwork::MacAddress;
use kuryr_openstack::neutron::Port;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::error::{host_err, DriverError, Result};

#[derive(Debug)]
pub(crate) struct Host {
    binder: OnceCell<Binder>,
    ovsdb_socket: PathBuf,
    bindir: PathBuf,
}

impl Host {
    pub(crate) fn new(ovsdb_socket: PathBuf, bindir: PathBuf) -> Host {
        Host {
            binder: OnceCell::new(),
            ovsdb_socket,
            bindir,
        }
    }

    pub(crate) async fn binder(&self) -> Result<&Binder, kuryr_binding::Error> {
        self.binder
            .get_or_try_init(|| async {
                let netlink = Netlink::connect().await?;
                let mut binder = Binder::new(netlink, Ovsdb::new(&self.ovsdb_socket));
                binder.bindir = self.bindir.clone();
                Ok(binder)
            })
            .await
    }
}

/// What plugging a port into the host needs besides the port.
pub(crate) struct Plug<'a> {
    /// The endpoint (`vm-uuid` in Open vSwitch); empty for a free pool port.
    pub endpoint_id: &'a str,
    pub mtu: u32,
    /// This host's `binding:host_id`.
    pub host: &'a str,
    /// Set on the host end before it is plugged (a free pool port's mark).
    pub alias: Option<&'a str>,
}

/// The port's veth pair, with its MAC and the network's MTU, and its host end plugged in as
/// the port's `binding:vif_type` says: CreateEndpoint's and a free pool port's one way.
pub(crate) async fn plug_port(binder: &Binder, port: &Port, plug: &Plug<'_>) -> Result<()> {
    let mac: MacAddress = port
        .mac_address
        .parse()
        .map_err(|e| DriverError::unusable(format!("port {} has an unusable MAC: {e}", port.id)))?;
    let names = veth_names(&port.id);
    binder
        .netlink
        .ensure_veth(&VethSpec {
            names: &names,
            mac: mac.0,
            mtu: plug.mtu,
        })
        .await
        .map_err(host_err(format!(
            "making the veth pair of port {}",
            port.id
        )))?;
    if let Some(alias) = plug.alias {
        // Marked before it is plugged: a crash in between leaves a port a scan recognises.
        binder
            .netlink
            .set_alias(&names.host, alias)
            .await
            .map_err(host_err(format!("marking {} as {alias}", names.host)))?;
    }
    binder
        .plug(&PlugRequest {
            port_id: port.id.clone(),
            endpoint_id: plug.endpoint_id.to_owned(),
            mac: mac.0,
            host_ifname: names.host,
            network_id: port.network_id.clone(),
            project_id: port.project_id.clone(),
            mtu: plug.mtu,
            host: plug.host.to_owned(),
            vif_type: port.binding_vif_type.clone(),
            vif_details: Value::Object(port.binding_vif_details.clone()),
        })
        .await
        .map_err(host_err(format!("plugging port {} into the host", port.id)))
}
