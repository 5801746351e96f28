//! The host's netlink and ovsdb-server connections, shared by the driver and its port pools
//! and opened on first use: calls that never touch the host, and IPAM-only hosts without
//! CAP_NET_ADMIN, do not need them.

use std::path::PathBuf;

use kuryr_binding::{Binder, Netlink, Ovsdb};
use tokio::sync::OnceCell;

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
