//! kuryr: the courier between container engines and OpenStack Neutron.
//!
//! This library holds what the `kuryr` binary and its tests share: configuration loading and
//! the construction of the Neutron client from it.

pub mod config;
pub mod openstack;
