//! The driver's error: what Docker shows the user, and the HTTP status that carries it.
//!
//! Every message says what was being done, what went wrong and what to do about it; Docker
//! prints it after `Error response from daemon:`.

use kuryr_openstack::error::chain;

/// A failed plugin call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DriverError {
    /// HTTP status of the answer (always non-2xx, so both subsystems see an error).
    pub status: u16,
    pub message: String,
}

pub type Result<T, E = DriverError> = std::result::Result<T, E>;

impl DriverError {
    /// The request is valid JSON but asks for something impossible or contradictory.
    pub fn invalid(message: impl Into<String>) -> Self {
        DriverError {
            status: 400,
            message: message.into(),
        }
    }

    /// Something the request names does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        DriverError {
            status: 404,
            message: message.into(),
        }
    }

    /// The request conflicts with what exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        DriverError {
            status: 409,
            message: message.into(),
        }
    }

    /// Neutron cannot be used yet (down, or lacking an extension kuryr needs).
    pub fn unavailable(message: impl Into<String>) -> Self {
        DriverError {
            status: 503,
            message: message.into(),
        }
    }

    /// The host could not do its part (interfaces).
    pub fn host(message: impl Into<String>) -> Self {
        DriverError {
            status: 500,
            message: message.into(),
        }
    }

    /// A Neutron call failed while `doing` something; keeps Neutron's status for 4xx
    /// answers, says 503 when Neutron could not be reached, 502 for its own failures.
    pub fn neutron(doing: impl std::fmt::Display, err: &kuryr_openstack::Error) -> Self {
        let status = match err.status() {
            Some(s @ 400..=499) => s,
            Some(_) => 502,
            None if err.is_retryable() => 503,
            None => 500,
        };
        let reachable = if err.is_retryable() && err.status().is_none() {
            "Neutron not reachable: "
        } else {
            ""
        };
        DriverError {
            status,
            message: format!("{doing}: {reachable}{}; {}", chain(err), err.hint()),
        }
    }
}

/// Shorthand: `neutron_call.await.map_err(neutron_err("creating the network"))`.
pub fn neutron_err<D: std::fmt::Display>(
    doing: D,
) -> impl FnOnce(kuryr_openstack::Error) -> DriverError {
    move |e| DriverError::neutron(doing, &e)
}
