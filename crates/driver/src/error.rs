//! The driver's error: what Docker shows the user, and the HTTP status that carries it.
//!
//! One variant per kind of failing step; a step that failed because something else did keeps
//! that failure as its `source`, so the errno of a refused netlink request or the status of a
//! Neutron answer is still there for the log and for callers that decide by it. [`report`]
//! writes the whole chain with what to do, as Docker prints it after `Error response from
//! daemon:`; [`status`] is the one place that maps an error to its HTTP status.
//!
//! [`report`]: DriverError::report
//! [`status`]: DriverError::status

use kuryr_openstack::error::chain;

/// A failed plugin call.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The request is valid JSON but asks for something impossible or contradictory.
    #[error("{0}")]
    Invalid(String),

    /// Something the request names does not exist.
    #[error("{0}")]
    NotFound(String),

    /// The request conflicts with what exists.
    #[error("{0}")]
    Conflict(String),

    /// Neutron cannot be used yet (lacking an extension kuryr needs, still starting).
    #[error("{0}")]
    Unavailable(String),

    /// A Neutron request failed while doing `step`.
    #[error("{step}{}", unreachable_note(source))]
    Neutron {
        step: String,
        #[source]
        source: Box<kuryr_openstack::Error>,
    },

    /// The host refused `step` (netlink, Open vSwitch, a binding script).
    #[error("{step}")]
    Host {
        step: String,
        #[source]
        source: Box<kuryr_binding::Error>,
    },

    /// Neutron answered with something kuryr cannot use (an unreadable MAC or CIDR, a port
    /// without the address it was created for).
    #[error("{0}")]
    Unusable(String),

    /// kuryr itself got something wrong.
    #[error("{0}; this is a bug in kuryr")]
    Bug(String),

    /// What the caller was doing when `source` failed, with what to do about it.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<DriverError>,
    },
}

pub type Result<T, E = DriverError> = std::result::Result<T, E>;

fn unreachable_note(err: &kuryr_openstack::Error) -> &'static str {
    if err.is_retryable() && err.status().is_none() {
        ": Neutron not reachable"
    } else {
        ""
    }
}

impl DriverError {
    pub fn invalid(message: impl Into<String>) -> Self {
        DriverError::Invalid(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        DriverError::NotFound(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        DriverError::Conflict(message.into())
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        DriverError::Unavailable(message.into())
    }

    pub fn unusable(message: impl Into<String>) -> Self {
        DriverError::Unusable(message.into())
    }

    pub fn bug(message: impl Into<String>) -> Self {
        DriverError::Bug(message.into())
    }

    /// A Neutron request failed while doing `step`.
    pub fn neutron(step: impl std::fmt::Display, err: &kuryr_openstack::Error) -> Self {
        DriverError::Neutron {
            step: step.to_string(),
            source: Box::new(err.clone()),
        }
    }

    /// The host refused `step`.
    pub fn host(step: impl std::fmt::Display, err: impl Into<kuryr_binding::Error>) -> Self {
        DriverError::Host {
            step: step.to_string(),
            source: Box::new(err.into()),
        }
    }

    /// This error as the cause of `context`.
    pub fn context(self, context: impl Into<String>) -> Self {
        DriverError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// The HTTP status of the answer: always non-2xx, so both of Docker's subsystems see an
    /// error. Neutron's own 4xx is kept (a 404 stays a 404); its failures are a 502, and a
    /// Neutron that could not be reached a 503.
    pub fn status(&self) -> u16 {
        match self {
            DriverError::Invalid(_) => 400,
            DriverError::NotFound(_) => 404,
            DriverError::Conflict(_) => 409,
            DriverError::Unavailable(_) => 503,
            DriverError::Neutron { source, .. } => match source.status() {
                Some(s @ 400..=499) => s,
                Some(_) => 502,
                None if source.is_retryable() => 503,
                None => 500,
            },
            DriverError::Host { .. } | DriverError::Unusable(_) | DriverError::Bug(_) => 500,
            DriverError::Context { source, .. } => source.status(),
        }
    }

    /// The Neutron failure at the root of this error, if that is what it is.
    pub fn neutron_cause(&self) -> Option<&kuryr_openstack::Error> {
        match self {
            DriverError::Neutron { source, .. } => Some(source),
            DriverError::Context { source, .. } => source.neutron_cause(),
            _ => None,
        }
    }

    /// The host failure at the root of this error, if that is what it is.
    pub fn host_cause(&self) -> Option<&kuryr_binding::Error> {
        match self {
            DriverError::Host { source, .. } => Some(source),
            DriverError::Context { source, .. } => source.host_cause(),
            _ => None,
        }
    }

    /// The kernel's error number, when a netlink request was refused.
    pub fn errno(&self) -> Option<i32> {
        match self.host_cause()? {
            kuryr_binding::Error::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The whole chain, each step with its cause, ending with what to do when Neutron failed:
    /// what Docker shows and the log records.
    pub fn report(&self) -> String {
        let mut out = chain(self);
        if let Some(err) = self.neutron_cause() {
            out.push_str("; ");
            out.push_str(&err.hint());
        }
        out
    }
}

/// Shorthand: `neutron_call.await.map_err(neutron_err("creating the network"))`.
pub fn neutron_err<D: std::fmt::Display>(
    step: D,
) -> impl FnOnce(kuryr_openstack::Error) -> DriverError {
    move |e| DriverError::Neutron {
        step: step.to_string(),
        source: Box::new(e),
    }
}

/// Shorthand: `netlink_call.await.map_err(host_err("deleting veth tap1234"))`.
pub fn host_err<D: std::fmt::Display, E: Into<kuryr_binding::Error>>(
    step: D,
) -> impl FnOnce(E) -> DriverError {
    move |e| DriverError::host(step, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_failure_keeps_its_errno_and_reports_its_chain() {
        let err = DriverError::host(
            "plugging port 1234 into the host",
            kuryr_binding::Error::Kernel {
                op: kuryr_binding::error::Op::CreateVeth,
                target: "tap1234".into(),
                errno: 17,
            },
        )
        .context("creating endpoint e1");
        assert_eq!(err.status(), 500);
        assert_eq!(err.errno(), Some(17), "the errno is lost: {err:?}");
        let report = err.report();
        assert!(
            report.starts_with("creating endpoint e1: plugging port 1234 into the host: creating veth pair tap1234"),
            "{report}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn statuses_are_mapped_in_one_place() {
        assert_eq!(DriverError::invalid("x").status(), 400);
        assert_eq!(DriverError::not_found("x").status(), 404);
        assert_eq!(DriverError::conflict("x").status(), 409);
        assert_eq!(DriverError::unavailable("x").status(), 503);
        assert_eq!(DriverError::bug("x").status(), 500);
        assert_eq!(DriverError::conflict("x").context("y").status(), 409);
        assert!(DriverError::bug("x")
            .report()
            .ends_with("this is a bug in kuryr"));
    }
}
