//! Interface names: derived from the Neutron port id as upstream kuryr-lib does, and checked
//! against the kernel's rules before anything is sent.

use crate::Error;

/// Longest interface name the kernel takes (`IFNAMSIZ` 16 minus the NUL).
pub const IFNAME_MAX: usize = 15;

/// kuryr-lib's `VETH_PREFIX`.
const HOST_PREFIX: &str = "tap";
/// kuryr-lib's `CONTAINER_VETH_PREFIX`.
const CONTAINER_PREFIX: &str = "t_c";
/// kuryr-lib's `NIC_NAME_LEN`: names are cut to this many characters.
const NAME_LEN: usize = 14;
/// The ovs_hybrid_plug names, as in kuryr-lib's `ovs` script and os-vif / Nova.
const HYBRID_BRIDGE_PREFIX: &str = "qbr";
const HYBRID_BRIDGE_END_PREFIX: &str = "qvb";
const HYBRID_OVS_END_PREFIX: &str = "qvo";
/// The Linux bridge agent's per-network bridge.
const LINUX_BRIDGE_PREFIX: &str = "brq";

/// `prefix` + `id`, cut to [`NAME_LEN`] characters (not bytes, as Python's slicing).
fn prefixed(prefix: &str, id: &str) -> String {
    prefix.chars().chain(id.chars()).take(NAME_LEN).collect()
}

/// The two ends of a port's veth pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethNames {
    /// Stays in the host namespace, plugged into the agent's bridge.
    pub host: String,
    /// Moved into the container by Docker (which renames it there).
    pub container: String,
}

/// Names of the veth pair of Neutron port `port_id`, exactly as kuryr-lib's
/// `get_veth_pair_names`: prefix + port id, cut to 14 characters (so the first 11 of the id),
/// so interfaces made by the upstream Python driver are recognised.
pub fn veth_names(port_id: &str) -> VethNames {
    VethNames {
        host: prefixed(HOST_PREFIX, port_id),
        container: prefixed(CONTAINER_PREFIX, port_id),
    }
}

/// The links of the ovs_hybrid_plug arrangement of one port: the container's tap goes into a
/// Linux bridge (where the iptables firewall filters it), which a veth pair joins to OVS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HybridNames {
    /// `qbr<port[:11]>`, the per-port Linux bridge.
    pub bridge: String,
    /// `qvb<port[:11]>`, the veth end in the Linux bridge.
    pub bridge_end: String,
    /// `qvo<port[:11]>`, the veth end plugged into OVS.
    pub ovs_end: String,
}

/// Names of port `port_id`'s hybrid arrangement, cut as [`veth_names`] cuts, so that the
/// Neutron agent's iptables firewall (which derives them the same way) finds them.
pub fn hybrid_names(port_id: &str) -> HybridNames {
    HybridNames {
        bridge: prefixed(HYBRID_BRIDGE_PREFIX, port_id),
        bridge_end: prefixed(HYBRID_BRIDGE_END_PREFIX, port_id),
        ovs_end: prefixed(HYBRID_OVS_END_PREFIX, port_id),
    }
}

/// `brq<network_id[:11]>`: the bridge the Neutron Linux bridge agent uses for a network.
pub fn linux_bridge_name(network_id: &str) -> String {
    prefixed(LINUX_BRIDGE_PREFIX, network_id)
}

/// Checks `name` by the kernel's `dev_valid_name` rules (1..=15 bytes, not `.` or `..`, no `/`,
/// `:`, NUL or whitespace), so a bad name is refused here with a clear message rather than by
/// the kernel with a bare `EINVAL`, or worse, matched against a different link.
pub fn validate_ifname(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > IFNAME_MAX {
        Some("it is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are reserved")
    } else if name.contains(['/', ':', '\0']) {
        Some("it contains `/`, `:` or NUL")
    } else if name.chars().any(char::is_whitespace) {
        Some("it contains whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kuryr_lib() {
        let names = veth_names("9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60");
        assert_eq!(names.host, "tap9a7c1f0e-3b");
        assert_eq!(names.container, "t_c9a7c1f0e-3b");
        assert!(validate_ifname(&names.host).is_ok());
        assert!(validate_ifname(&names.container).is_ok());
    }

    #[test]
    fn hybrid_and_bridge_names_follow_upstream() {
        let names = hybrid_names("9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60");
        assert_eq!(names.bridge, "qbr9a7c1f0e-3b");
        assert_eq!(names.bridge_end, "qvb9a7c1f0e-3b");
        assert_eq!(names.ovs_end, "qvo9a7c1f0e-3b");
        assert_eq!(
            linux_bridge_name("5c1f0e9a-3b2d-4c5e-8f6a-1b2c3d4e5f60"),
            "brq5c1f0e9a-3b"
        );
    }

    #[test]
    fn short_port_id_is_not_padded() {
        let names = veth_names("abc");
        assert_eq!(names.host, "tapabc");
        assert_eq!(names.container, "t_cabc");
    }

    #[test]
    fn cut_counts_characters_like_python() {
        let names = veth_names("ééééééééééééé");
        assert_eq!(names.host.chars().count(), 14);
        // 3 + 11 two-byte characters: too long for the kernel, refused before sending.
        assert!(validate_ifname(&names.host).is_err());
    }

    #[test]
    fn kernel_name_rules() {
        for good in ["a", "eth0", "tap9a7c1f0e-3b", "123456789012345", "t_c-x.y"] {
            assert!(validate_ifname(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\nb",
            "a\0b",
            "1234567890123456",
        ] {
            let err = validate_ifname(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}");
            assert!(err.to_string().contains("invalid interface name"), "{err}");
        }
    }
}
