//! Errors of the binding.
//!
//! Each message names the interface and the operation and, where the cause is known, says what
//! to do: the operator reads it in Docker's answer to `docker run`, not in a debugger.

use std::fmt;
use std::io;

/// What was being done to an interface when the kernel refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    CreateVeth,
    Read,
    Configure,
    Delete,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::CreateVeth => "creating veth pair",
            Op::Read => "reading link",
            Op::Configure => "configuring link",
            Op::Delete => "deleting link",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused before sending: the kernel would not take this name.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// Refused before sending: other parts of a request that cannot work.
    #[error("invalid veth request for {target}: {reason}")]
    InvalidRequest { target: String, reason: String },

    /// The netlink socket could not be opened.
    #[error("opening the netlink socket failed: kuryr needs Linux with rtnetlink")]
    Socket(#[source] io::Error),

    /// [`crate::Netlink::connect`] was called outside a tokio runtime.
    #[error("the netlink connection needs a tokio runtime: connect from within one")]
    NoRuntime,

    /// The kernel answered with an error number.
    #[error("{op} {target}: {}{}", describe_errno(*.errno), hint(*.op, *.errno))]
    Kernel { op: Op, target: String, errno: i32 },

    /// The request did not get an answer from the kernel (connection gone, unparsable reply).
    #[error("{op} {target}: netlink request failed")]
    Transport {
        op: Op,
        target: String,
        #[source]
        source: rtnetlink::Error,
    },

    /// A link has the host end's name but is something else.
    #[error(
        "{name} exists and is not a veth ({}): remove it (it is not kuryr's)",
        kind.as_deref().map_or("no link kind".to_owned(), |k| format!("kind {k}"))
    )]
    NotVeth { name: String, kind: Option<String> },

    /// The host end is a veth, but its other end is not the expected container end here.
    #[error(
        "{host} exists and is a veth, but its peer {found} instead of {expected}: \
         remove {host} if no container uses it"
    )]
    WrongPeer {
        host: String,
        expected: String,
        /// Completes "its peer ...", e.g. `is named veth0` or `is in another network namespace`.
        found: String,
    },

    /// The container end's name is taken while the host end is missing.
    #[error("{name} exists without {host}: remove {name} (a leftover, or not kuryr's)")]
    ContainerNameTaken { name: String, host: String },
}

impl Error {
    /// The kernel's error number (positive, e.g. 1 for `EPERM`), if the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// Turns an rtnetlink failure of `op` on `target` into an error that says which.
    pub(crate) fn netlink(op: Op, target: impl Into<String>, source: rtnetlink::Error) -> Self {
        let target = target.into();
        match errno_of(&source) {
            Some(errno) => Error::Kernel { op, target, errno },
            None => Error::Transport { op, target, source },
        }
    }
}

pub(crate) const EPERM: i32 = 1;
pub(crate) const ENODEV: i32 = 19;
pub(crate) const EEXIST: i32 = 17;
const EBUSY: i32 = 16;
const EACCES: i32 = 13;
const EINVAL: i32 = 22;
const EOPNOTSUPP: i32 = 95;
const EADDRNOTAVAIL: i32 = 99;

/// The positive errno of a kernel NACK, if that is what `err` is.
pub(crate) fn errno_of(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|code| code.get().abs()),
        _ => None,
    }
}

/// `strerror` text without std's " (os error N)" suffix, which reads as noise in a sentence.
fn describe_errno(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// What the operator can do about `errno` during `op`, as a ": ..." suffix (empty if nothing
/// useful can be said).
fn hint(op: Op, errno: i32) -> &'static str {
    match (op, errno) {
        (_, EPERM | EACCES) => ": kuryr needs CAP_NET_ADMIN (run as root)",
        (Op::CreateVeth, EEXIST) => ": a link with one of these names appeared meanwhile; retry",
        (Op::CreateVeth, EOPNOTSUPP) => ": this kernel has no veth support (modprobe veth)",
        (_, EADDRNOTAVAIL) => ": the MAC address is not a usable unicast address",
        (Op::CreateVeth | Op::Configure, EINVAL) => ": the kernel refused the MAC or MTU",
        (_, ENODEV) => ": the link disappeared meanwhile; retry",
        (_, EBUSY) => ": the link is busy; retry",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_message_says_what_to_do() {
        let err = Error::Kernel {
            op: Op::CreateVeth,
            target: "tapX/t_cX".into(),
            errno: EPERM,
        };
        assert_eq!(
            err.to_string(),
            "creating veth pair tapX/t_cX: Operation not permitted: \
             kuryr needs CAP_NET_ADMIN (run as root)"
        );
        assert_eq!(err.errno(), Some(EPERM));
    }

    #[test]
    fn unknown_errno_has_no_hint() {
        let err = Error::Kernel {
            op: Op::Delete,
            target: "tapX".into(),
            errno: 5,
        };
        assert_eq!(err.to_string(), "deleting link tapX: Input/output error");
    }

    #[test]
    fn not_veth_message() {
        let err = Error::NotVeth {
            name: "tapX".into(),
            kind: Some("dummy".into()),
        };
        assert_eq!(
            err.to_string(),
            "tapX exists and is not a veth (kind dummy): remove it (it is not kuryr's)"
        );
    }
}
