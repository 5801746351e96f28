//! The Docker control plane this daemon serves: one Docker engine, or one Swarm, whose
//! networks kuryr maps. Several control planes may map the same existing Neutron subnet or
//! subnetpool; each marks what it shares with its own tag ([`mapping::control_plane_tag`]),
//! so that one giving a resource back leaves it to the others.
//!
//! Its id is `[DEFAULT] control_plane_id`, or by default the id of the Docker engine that
//! calls this plugin (stable across restarts, different on every engine), learnt from
//! Docker's API when first needed: Docker may start its plugins before it answers its API.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::error::{DriverError, Result};
use crate::mapping;

/// Whether `id` can name a control plane: it goes into Neutron tags and URL paths, so at
/// most 255 letters, digits and `.:_-~`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:_-~".contains(&b))
}

/// Asks Docker for its engine id.
pub type EngineId = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = std::result::Result<String, String>> + Send>>
        + Send
        + Sync,
>;

/// Where the control plane's id comes from (what `kuryr doctor` shows).
#[derive(Clone)]
pub enum Source {
    /// `[DEFAULT] control_plane_id`.
    Configured(String),
    /// The Docker engine's id, read from its API socket (named for messages).
    DockerEngine { socket: String, ask: EngineId },
    /// No Docker API socket configured: this host's name.
    Host(String),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Configured(id) => write!(f, "Configured({id:?})"),
            Source::DockerEngine { socket, .. } => write!(f, "DockerEngine({socket:?})"),
            Source::Host(host) => write!(f, "Host({host:?})"),
        }
    }
}

/// This daemon's control plane, its id learnt once.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    source: Source,
    id: Arc<OnceCell<String>>,
}

impl ControlPlane {
    pub fn new(source: Source) -> ControlPlane {
        ControlPlane {
            source,
            id: Arc::new(OnceCell::new()),
        }
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The id; asking Docker the first time when it comes from the engine.
    pub async fn id(&self) -> Result<String> {
        self.id
            .get_or_try_init(|| async {
                match &self.source {
                    Source::Configured(id) | Source::Host(id) => Ok(id.clone()),
                    Source::DockerEngine { socket, ask } => ask().await.map_err(|e| {
                        DriverError::unavailable(format!(
                            "kuryr tags the Neutron resources Docker engines share with the \
                             engine's id, and cannot read it from Docker's API at {socket}: \
                             {e}; check [DEFAULT] docker_socket, or set [DEFAULT] \
                             control_plane_id"
                        ))
                    }),
                }
            })
            .await
            .cloned()
    }

    /// The tag this control plane puts on what it shares.
    pub async fn tag(&self) -> Result<String> {
        Ok(mapping::control_plane_tag(&self.id().await?))
    }
}
