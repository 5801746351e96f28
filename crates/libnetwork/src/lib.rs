//! Docker's libnetwork remote-driver protocol, as kuryr serves it: the NetworkDriver and
//! IpamDriver calls (`POST /<Subsystem>.<Method>` with a JSON body), their typed requests and
//! answers with Docker's exact field names, and the validation of every request before any
//! work is done. No IO: the server and the Neutron mapping use these types.
//!
//! ```
//! use kuryr_libnetwork::{parse, Call};
//! let call = parse("/IpamDriver.ReleasePool", br#"{"PoolID": "p1"}"#).unwrap();
//! assert!(matches!(call, Call::ReleasePool(_)));
//! let err = parse("/NetworkDriver.Join", br#"{"NetworkID": "x"}"#).unwrap_err();
//! assert_eq!(err.status(), 400);
//! assert!(err.to_string().contains("NetworkID"));
//! ```

pub mod call;
pub mod ipam;
pub mod network;
pub mod plugin;
pub mod values;

pub use call::{parse, Call, RequestError, MAX_BODY_BYTES, PATHS};
pub use values::{DockerId, MacAddress, PoolId};
