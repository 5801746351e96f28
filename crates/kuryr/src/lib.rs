//! kuryr: the courier between container engines and OpenStack Neutron.
//!
//! This library holds what the `kuryr` binary and its tests share: configuration loading,
//! the construction of the Neutron client and of the driver from it, and the plugin's
//! HTTP server.

pub mod admin;
pub mod config;
pub mod docker_api;
pub mod driver;
pub mod openstack;
pub mod reconciler;
pub mod server;
pub mod unix_http;
