//! A Keystone v3 and Neutron v2.0 client, async on tokio, TLS by rustls.
//!
//! It knows nothing about kuryr: it authenticates, finds endpoints in the service catalog,
//! sends requests with retries and typed errors, and maps Neutron resources to Rust types.
//!
//! ```no_run
//! use kuryr_openstack::{auth::*, neutron::*, HttpOptions, Session, AuthMethod};
//! # async fn demo() -> kuryr_openstack::Result<()> {
//! let creds = Credentials::Password {
//!     user: NamedRef::Name { name: "kuryr".into(), domain: DomainRef::Name("Default".into()) },
//!     password: "secret".to_string().into(),
//! };
//! let scope = Scope::Project(NamedRef::Name {
//!     name: "service".into(),
//!     domain: DomainRef::Name("Default".into()),
//! });
//! let auth = KeystoneAuth::new("http://127.0.0.1:5000/v3", creds, scope)?;
//! let session = Session::new(AuthMethod::Keystone(auth), HttpOptions::default())?;
//! let neutron = Neutron::new(session, EndpointFilter::new("network"));
//! let ports = neutron.ports().list(&Filters::new().eq("device_owner", "compute:kuryr")).await?;
//! # Ok(()) }
//! ```

pub mod accounting;
pub mod auth;
pub mod error;
pub mod neutron;
pub mod session;
mod transport;

pub use error::{ApiError, Error, Result, Service};
pub use session::{AuthMethod, Session};
pub use transport::{HttpOptions, TlsOptions, RETRIABLE_STATUSES};
