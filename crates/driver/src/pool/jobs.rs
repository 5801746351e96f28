//! Work that is off the container's path: marking a taken port's interface, telling
//! Neutron which endpoint owns a port, recycling a released port, deleting one. Jobs of one port run in order (one worker
//! per port, chosen by its id), jobs of different ports in parallel.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kuryr_libnetwork::DockerId;
use kuryr_openstack::neutron::{Port, PortSpec};
use tokio::sync::mpsc;

use super::{PoolKey, Pools, POOL_PORT_NAME};
use crate::mapping::{id_tags, UNBOUND_PORT_NAME};

const WORKERS: usize = 4;
const ATTEMPTS: u32 = 3;

#[derive(Debug)]
pub enum Job {
    /// The interface of a port that waited plugged in, marked the endpoint's (what tells a
    /// restarted daemon which endpoint has it until Neutron does).
    Mark {
        port_id: String,
        endpoint_id: String,
    },
    /// The endpoint's tags and `device_id` on its port (upstream's lookups find it so).
    Own {
        port_id: String,
        endpoint_id: String,
        tags: Vec<String>,
    },
    /// A released port: reset (name, owner, security groups, tags) and back in its pool.
    Recycle {
        port: Box<Port>,
        key: PoolKey,
        /// Its owner may be in Neutron: resetting takes requests.
        owned: bool,
        /// Its holder may have had port forwardings or a floating IP on its address.
        external: bool,
    },
    /// A free port found by a scan: its interface readied, then into its pool.
    Recover {
        port: Box<Port>,
        key: PoolKey,
    },
    Delete {
        port_id: String,
    },
}

impl Job {
    fn port_id(&self) -> &str {
        match self {
            Job::Own { port_id, .. } | Job::Mark { port_id, .. } | Job::Delete { port_id } => {
                port_id
            }
            Job::Recycle { port, .. } | Job::Recover { port, .. } => &port.id,
        }
    }
}

impl Pools {
    pub(crate) fn enqueue(self: &Arc<Self>, job: Job) {
        let workers = self.workers.get_or_init(|| {
            (0..WORKERS)
                .map(|_| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(work(Arc::downgrade(self), rx));
                    tx
                })
                .collect()
        });
        let mut h = DefaultHasher::new();
        job.port_id().hash(&mut h);
        let worker = usize::try_from(h.finish() % WORKERS as u64).unwrap_or(0);
        if let Some(tx) = workers.get(worker) {
            if tx.send(job).is_err() {
                tracing::warn!("pool worker gone; a port is left for the next scan");
            }
        }
    }

    async fn run(self: &Arc<Self>, job: Job) {
        match job {
            Job::Mark {
                port_id,
                endpoint_id,
            } => {
                if self.held_by(&port_id, &endpoint_id) && self.is_plugged(&port_id) {
                    if let Err(e) = self.mark_taken(&port_id, &endpoint_id).await {
                        tracing::warn!(port = %port_id, "marking the interface of a taken pool port: {}", e.report());
                    }
                }
            }
            Job::Own {
                port_id,
                endpoint_id,
                tags,
            } => {
                if let Err(e) = self.own(&port_id, &endpoint_id, tags).await {
                    tracing::warn!(port = %port_id, endpoint = %endpoint_id, "recording the endpoint on its port: {e}");
                }
            }
            Job::Recycle {
                port,
                key,
                owned,
                external,
            } => {
                let id = port.id.clone();
                match self.reset_and_pool(*port, key, owned, external).await {
                    Ok(pooled) => {
                        if pooled {
                            self.state().counters.recycled += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(port = %id, "recycling: {e}; deleting it");
                        self.delete(&id).await;
                    }
                }
            }
            Job::Recover { port, key } => {
                self.ready_interface(&port).await;
                if self.put_free(key, *port) {
                    self.state().counters.recovered += 1;
                }
            }
            Job::Delete { port_id } => self.delete(&port_id).await,
        }
    }

    async fn own(
        &self,
        port_id: &str,
        endpoint_id: &str,
        mut tags: Vec<String>,
    ) -> Result<(), kuryr_openstack::Error> {
        let endpoint = DockerId::from_str(endpoint_id)
            .map_err(|e| kuryr_openstack::Error::InvalidRequest(e.to_string()))?;
        // A container already gone (a burst left this job queued behind others): its port
        // never left the pool's state in Neutron, and recycling has nothing to reset.
        if !self.state().book.own(port_id, endpoint_id) {
            return Ok(());
        }
        for tag in id_tags(&endpoint) {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let api = self.neutron.ports();
        // The owner first: from then on Neutron alone tells the port is taken.
        let spec = PortSpec {
            name: Some(UNBOUND_PORT_NAME.into()),
            device_id: Some(endpoint_id.to_owned()),
            ..Default::default()
        };
        retry(|| api.update(port_id, &spec)).await?;
        retry(|| api.replace_tags(port_id, &tags)).await?;
        Ok(())
    }

    /// Whether the endpoint still holds the port.
    fn held_by(&self, port_id: &str, endpoint_id: &str) -> bool {
        self.state().book.held_by(port_id, endpoint_id)
    }

    /// Returns whether the port went back into its pool (or was deleted, the pool full).
    async fn reset_and_pool(
        self: &Arc<Self>,
        port: Port,
        key: PoolKey,
        owned: bool,
        external: bool,
    ) -> Result<bool, kuryr_openstack::Error> {
        let full_or_closing = {
            let st = self.state();
            st.closing.contains(&key.network_id)
                || st.book.free_count(&key) >= self.max_free(&st, &key)
        };
        // Port forwardings and floating IPs follow the address, which a recycled port keeps:
        // deleting the port removes them with it (an exposed-ports group still on the port
        // tells the same after a restart).
        let exposed_group = port
            .security_groups
            .iter()
            .any(|g| !key.security_groups.contains(g));
        if full_or_closing || external || exposed_group {
            self.delete(&port.id).await;
            return Ok(false);
        }
        let mut groups = port.security_groups.clone();
        groups.sort();
        if !owned
            && groups == key.security_groups
            && port.name == POOL_PORT_NAME
            && port.device_id.is_empty()
        {
            // Released before its owner was written: Neutron still has it as a free port.
            self.ready_interface(&port).await;
            return Ok(self.put_free(key, port));
        }
        let api = self.neutron.ports();
        // The endpoint's tags go first and the owner last, the reverse of taking it: a port
        // that looks free in Neutron (pool name, no device_id) is free in every field.
        let tags = self.free_tags();
        retry(|| api.replace_tags(&port.id, &tags)).await?;
        let spec = PortSpec {
            name: Some(POOL_PORT_NAME.into()),
            device_id: Some(String::new()),
            security_groups: Some(key.security_groups.clone()),
            ..Default::default()
        };
        let updated = retry(|| api.update(&port.id, &spec)).await?;
        let port = Port { tags, ..updated };
        self.ready_interface(&port).await;
        Ok(self.put_free(key, port))
    }

    pub(crate) async fn delete(&self, port_id: &str) {
        self.remove_interface(port_id).await;
        let api = self.neutron.ports();
        match retry(|| api.delete(port_id)).await {
            Ok(_) => self.state().counters.deleted += 1,
            Err(e) => {
                tracing::warn!(port = %port_id, "deleting a pool port: {e}; the next scan retries")
            }
        }
        self.forget_port(port_id);
    }
}

async fn work(pools: Weak<Pools>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = jobs.recv().await {
        let Some(pools) = pools.upgrade() else { return };
        pools.run(job).await;
    }
}

/// A few attempts with a pause: off the path there is time, and a Neutron hiccup must not
/// leave a port half recycled. A port that is gone is not retried.
async fn retry<T, F, Fut>(mut op: F) -> Result<T, kuryr_openstack::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kuryr_openstack::Error>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= ATTEMPTS || e.is_not_found() => return Err(e),
            Err(e) => {
                tracing::debug!("pool job attempt {attempt} failed: {e}");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                attempt += 1;
            }
        }
    }
}
