//! How Docker objects are named and tagged in Neutron: the same scheme as the upstream Python
//! kuryr-libnetwork, so that each driver finds what the other created.
//!
//! Neutron tags are at most 60 characters, so a 64-character Docker id is split into two
//! tags (`lh` = first 32, `uh` = last 32 characters).

use ipnet::IpNet;
use kuryr_libnetwork::DockerId;

/// `device_owner` of the ports kuryr binds, and the tag of the ports its IPAM created.
pub const DEVICE_OWNER: &str = "compute:kuryr";
/// Name of a port created by IPAM RequestAddress, before an endpoint adopts it.
pub const UNBOUND_PORT_NAME: &str = "kuryr-unbound-port";
/// Tag of an existing Neutron port a container adopted (reset, not deleted, on release).
pub const EXISTING_PORT_TAG: &str = "kuryr.port.existing";
/// Tag of an existing subnetpool a Docker network uses (never deleted).
pub const EXISTING_POOL_TAG: &str = "kuryr.subnetpool.existing";
/// Prefix of the subnets kuryr creates (the only subnets it deletes).
pub const SUBNET_NAME_PREFIX: &str = "kuryr-subnet-";
/// On a subnet kuryr made for a swarm network: the manager's IPAM takes its addresses for
/// tasks any node may run, so never from this host's port pool.
pub const SWARM_SUBNET_TAG: &str = "kuryr.swarm";

/// Whether a network's Docker id tags hold a swarm network's id.
pub fn serves_swarm(tags: &[String]) -> bool {
    id_of_tags(tags)
        .and_then(|id| id.parse::<kuryr_libnetwork::DockerId>().ok())
        .is_some_and(|id| id.is_swarm())
}
const LOWER_HALF: &str = "kuryr.net.uuid.lh:";
const UPPER_HALF: &str = "kuryr.net.uuid.uh:";
const EXISTING_NET_PREFIX: &str = "kuryr.net.existing:";

/// The two tags that carry a Docker network or endpoint id.
pub fn id_tags(id: &DockerId) -> [String; 2] {
    let (low, high) = id.halves();
    [format!("{LOWER_HALF}{low}"), format!("{UPPER_HALF}{high}")]
}

/// The Docker id that a resource's two id tags carry (on a port: its endpoint's).
pub fn id_of_tags(tags: &[String]) -> Option<String> {
    let low = tags.iter().find_map(|t| t.strip_prefix(LOWER_HALF))?;
    let high = tags.iter().find_map(|t| t.strip_prefix(UPPER_HALF))?;
    Some(format!("{low}{high}"))
}

/// Tag that marks an existing Neutron network as used by this Docker network (one per
/// Docker network, so that two of them can share one Neutron network).
pub fn existing_network_tag(id: &DockerId) -> String {
    let short: String = id.as_str().chars().take(12).collect();
    format!("{EXISTING_NET_PREFIX}{short}")
}

/// Whether a tag marks a network as adopted by some Docker network.
pub fn is_existing_network_tag(tag: &str) -> bool {
    tag.starts_with(EXISTING_NET_PREFIX)
}

/// Whether Docker networks attached the network with these tags by name or id
/// (`-o neutron.net.*`): it then serves them, whoever made it.
pub fn attached_by_some(tags: &[String]) -> bool {
    tags.iter().any(|t| is_existing_network_tag(t))
}

/// Name of a Neutron network kuryr creates.
pub fn network_name(id: &DockerId) -> String {
    let short: String = id.as_str().chars().take(8).collect();
    format!("kuryr-net-{short}")
}

/// Name of a subnet kuryr creates.
pub fn subnet_name(cidr: &IpNet) -> String {
    format!("{SUBNET_NAME_PREFIX}{cidr}")
}

/// Name of a port kuryr creates in CreateEndpoint when IPAM made none.
pub fn endpoint_port_name(endpoint: &DockerId) -> String {
    format!("{}-port", endpoint.as_str())
}

/// Name of a subnetpool kuryr creates for a CIDR.
pub fn subnetpool_name(prefix: &str, cidr: &IpNet) -> String {
    format!("{prefix}-{cidr}")
}

/// The description of the subnetpools RequestPool makes on a host: it finds a pool whose
/// answer was lost, and tells the reconciler which pools are this host's.
pub fn pool_description(host_id: &str) -> String {
    format!("Docker address pool, {}", host_tag(host_id))
}

/// Name of the security group of an endpoint's exposed ports.
pub fn exposed_ports_group_name(port_id: &str) -> String {
    format!("{port_id}-exposed_ports")
}

/// Description of that security group (as upstream writes it).
pub const EXPOSED_PORTS_GROUP_DESCRIPTION: &str = "Docker exposed ports created by Kuryr.";

/// Whether a tag is one half of a Docker id (a network's, on a floating IP).
pub fn is_id_tag(tag: &str) -> bool {
    tag.starts_with(LOWER_HALF) || tag.starts_with(UPPER_HALF)
}

/// Tag of a user's floating IP that kuryr forwards published ports on.
pub const USER_FIP_TAG: &str = "kuryr.fip.user";

const PUBLISHED_FIP_PREFIX: &str = "Published ports of Docker network ";

/// Description of the floating IP a Docker network's published ports use on a host: how a
/// lost answer to its creation is found, and how the user sees what it is for.
pub fn published_fip_description(network: &DockerId, host_id: &str) -> String {
    format!(
        "{PUBLISHED_FIP_PREFIX}{} on {}",
        network.as_str(),
        host_tag(host_id)
    )
}

/// Whether a floating IP is one kuryr allocated for a network's published ports.
pub fn is_published_fip_description(description: &str) -> bool {
    description.starts_with(PUBLISHED_FIP_PREFIX)
}

const FORWARDING_PREFIX: &str = "Docker endpoint ";
const FORWARDING_SUFFIX: &str = ", published by kuryr";

/// Description of a port forwarding kuryr makes: it names the endpoint that holds it.
pub fn forwarding_description(endpoint: &DockerId) -> String {
    format!(
        "{FORWARDING_PREFIX}{}{FORWARDING_SUFFIX}",
        endpoint.as_str()
    )
}

/// The endpoint a forwarding kuryr made is for.
pub fn endpoint_of_forwarding(description: &str) -> Option<&str> {
    description
        .strip_prefix(FORWARDING_PREFIX)?
        .strip_suffix(FORWARDING_SUFFIX)
}

const ENDPOINT_FIP_PREFIX: &str = "Floating IP of Docker endpoint ";

/// Description of a floating IP kuryr allocates for one endpoint (`neutron.floatingip=auto`)
/// on a host.
pub fn endpoint_fip_description(endpoint: &DockerId, host_id: &str) -> String {
    format!(
        "{ENDPOINT_FIP_PREFIX}{} on {}",
        endpoint.as_str(),
        host_tag(host_id)
    )
}

/// The endpoint and host tag of a floating IP kuryr allocated for an endpoint.
pub fn endpoint_of_fip_description(description: &str) -> Option<(&str, &str)> {
    description
        .strip_prefix(ENDPOINT_FIP_PREFIX)?
        .split_once(" on ")
}

/// The Docker network and host tag of a network's floating IP for published ports.
pub fn network_of_published_fip(description: &str) -> Option<(&str, &str)> {
    description
        .strip_prefix(PUBLISHED_FIP_PREFIX)?
        .split_once(" on ")
}

/// Tag of a Neutron network whose Docker network gives every container a floating IP
/// (`-o neutron.floatingip=auto`); per Docker network, as several may share one network.
pub fn fip_auto_tag(network: &DockerId) -> String {
    let short: String = network.as_str().chars().take(12).collect();
    format!("{FIP_AUTO_PREFIX}{short}")
}

const FIP_AUTO_PREFIX: &str = "kuryr.floatingip.auto:";

const ROUTER_PREFIX: &str = "kuryr.router:";

/// Tag of a subnet kuryr attached to a router: the router's id.
pub fn router_tag(router_id: &str) -> String {
    format!("{ROUTER_PREFIX}{router_id}")
}

/// The routers a subnet's tags say kuryr attached it to.
pub fn router_of_tags(tags: &[String]) -> impl Iterator<Item = &str> {
    tags.iter().filter_map(|t| t.strip_prefix(ROUTER_PREFIX))
}

const HOST_PREFIX: &str = "kuryr.host:";
const ADOPTED_BY_PREFIX: &str = "kuryr.adopted.mac:";
const ADOPTED_FOR_PREFIX: &str = "kuryr.adopted.ipv";
const REQUEST_PREFIX: &str = "kuryr.req:";
/// Neutron's limit on a tag's length.
const TAG_MAX: usize = 60;

/// Tag of the ports this host's kuryr creates, so that its reconciler knows them from other
/// hosts' (an unbound port says nothing else about where it was made). A host name too long
/// for a tag is replaced by a stable hash of it.
pub fn host_tag(host_id: &str) -> String {
    bounded_tag(HOST_PREFIX, host_id)
}

/// Whether a tag is some host's [`host_tag`].
pub fn is_host_tag(tag: &str) -> bool {
    tag.starts_with(HOST_PREFIX)
}

/// `prefix` + `value`, or, when that is too long for a tag, the value's head and a stable
/// hash of all of it.
fn bounded_tag(prefix: &str, value: &str) -> String {
    if prefix.len() + value.len() <= TAG_MAX {
        return format!("{prefix}{value}");
    }
    // FNV-1a: stable across builds and Rust releases, unlike std's hasher.
    let hash = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let keep = TAG_MAX - prefix.len() - 17;
    let head: String = value.chars().take(keep).collect();
    format!("{prefix}{head}~{hash:016x}")
}

/// Whether a tag's value (after its prefix) is [`bounded_tag`]'s head and hash of a value
/// too long for a tag, rather than the value itself.
pub fn is_hashed_tag_value(value: &str) -> bool {
    value.len() > 17
        && value.as_bytes()[value.len() - 17] == b'~'
        && value[value.len() - 16..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
        && value.len() + CONTROL_PLANE_PREFIX.len() == TAG_MAX
}

const CONTROL_PLANE_PREFIX: &str = "kuryr.cp:";

/// Tag of a shared resource (a subnetpool several Docker control planes map) saying that
/// this control plane uses it; the resource is given back when the last such tag goes.
pub fn control_plane_tag(control_plane: &str) -> String {
    bounded_tag(CONTROL_PLANE_PREFIX, control_plane)
}

/// Whether a tag is some control plane's [`control_plane_tag`].
pub fn is_control_plane_tag(tag: &str) -> bool {
    tag.starts_with(CONTROL_PLANE_PREFIX)
}

const NETWORK_SCOPE_PREFIX: &str = "kuryr.cp.net:";

/// Tag of an existing network saying which control plane the Docker network that attached
/// it belongs to, so that a control plane that is gone for good (a Docker engine wiped with
/// its id) can have its mappings removed by another ([`mappings_of`]). It holds the first
/// 12 characters of each of the id's halves and the control plane's id (hashed when long).
pub fn network_scope_tag(id: &DockerId, control_plane: &str) -> String {
    bounded_tag(
        NETWORK_SCOPE_PREFIX,
        &format!("{}:{control_plane}", scope_key(id)),
    )
}

/// What every [`network_scope_tag`] of this Docker network starts with.
pub fn network_scope_prefix(id: &DockerId) -> String {
    format!("{NETWORK_SCOPE_PREFIX}{}:", scope_key(id))
}

fn scope_key(id: &DockerId) -> String {
    let (low, high) = id.halves();
    let head = |s: &str| s.chars().take(12).collect::<String>();
    format!("{}.{}", head(low), head(high))
}

/// The Docker networks of `control_plane` that attached the network with these tags: for
/// each, the tags that map it (scope, id halves, `kuryr.net.existing:`, floating IPs).
pub fn mappings_of(tags: &[String], control_plane: &str) -> Vec<Vec<String>> {
    let half = |prefix: &str, head: &str| {
        tags.iter()
            .find(|t| {
                t.strip_prefix(prefix).is_some_and(|v| {
                    // A shorter head is the whole half (a swarm id's upper half is empty).
                    if head.len() == 12 {
                        v.starts_with(head)
                    } else {
                        v == head
                    }
                })
            })
            .cloned()
    };
    tags.iter()
        .filter_map(|tag| {
            let (key, _) = tag.strip_prefix(NETWORK_SCOPE_PREFIX)?.split_once(':')?;
            let ours = bounded_tag(NETWORK_SCOPE_PREFIX, &format!("{key}:{control_plane}"));
            if ours != *tag {
                return None;
            }
            let (low, high) = key.split_once('.')?;
            // The scope tag last: removed one at a time, a cut-short removal leaves the
            // mapping still findable.
            let mut mapping = Vec::new();
            mapping.extend(half(LOWER_HALF, low));
            mapping.extend(half(UPPER_HALF, high));
            let short: String = low.chars().take(12).collect();
            for t in [
                format!("{EXISTING_NET_PREFIX}{short}"),
                format!("{FIP_AUTO_PREFIX}{short}"),
            ] {
                if tags.contains(&t) {
                    mapping.push(t);
                }
            }
            mapping.push(tag.clone());
            Some(mapping)
        })
        .collect()
}

/// Tag of an adopted port naming the MAC Docker gave the endpoint that asked for it, so that
/// the same endpoint's request for its other address family (`--ip` and `--ip6` on one
/// dual-stack port) is told from another endpoint's.
pub fn adopted_by_tag(mac: &kuryr_libnetwork::values::MacAddress) -> String {
    format!("{ADOPTED_BY_PREFIX}{mac}")
}

/// The tag of an adopted port saying which address family a request took, when Docker sent
/// no MAC (port pools on): a dual-stack port then serves one request of each family, the
/// `--ip` and `--ip6` of one endpoint, which Docker sends one after the other.
pub fn adopted_for_tag(ip: std::net::IpAddr) -> String {
    format!("{ADOPTED_FOR_PREFIX}{}", if ip.is_ipv4() { 4 } else { 6 })
}

/// Whether `tag` is an [`adopted_for_tag`].
pub fn is_adopted_for_tag(tag: &str) -> bool {
    tag.starts_with(ADOPTED_FOR_PREFIX)
}

/// Whether `tag` is one of kuryr's tags on a port it adopted (given back on release).
pub fn is_adoption_tag(tag: &str) -> bool {
    tag == EXISTING_PORT_TAG
        || tag.starts_with(ADOPTED_BY_PREFIX)
        || is_adopted_for_tag(tag)
        || is_host_tag(tag)
}

/// A tag that no other create request carries, so that a create whose answer was lost can
/// be looked up instead of sent blindly again.
pub fn request_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // Each RandomState has keys drawn from the OS's randomness.
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{REQUEST_PREFIX}{:016x}{:016x}", word(), word())
}

/// Whether a tag is one of [`request_tag`]'s.
pub fn is_request_tag(tag: &str) -> bool {
    tag.starts_with(REQUEST_PREFIX)
}

/// Whether a string looks like a Neutron UUID (subnet ids tag subnetpools, pool ids tag subnets).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_planes_mappings_are_told_from_anothers() {
        let a = id(&"ab".repeat(32));
        let b = id(&"cd".repeat(32));
        let swarm = id("0123456789abcdefghijklmno");
        let long = "ABCD:EFGH:IJKL:MNOP:QRST:UVWX:YZ01:2345:6789:ABCD:EFGH:IJKL";
        let mut tags: Vec<String> = Vec::new();
        for (net, cp) in [(&a, long), (&b, "cp-b"), (&swarm, long)] {
            tags.extend(id_tags(net));
            tags.push(existing_network_tag(net));
            tags.push(network_scope_tag(net, cp));
        }
        tags.push(fip_auto_tag(&a));
        for t in &tags {
            assert!(t.len() <= TAG_MAX, "{t}");
        }
        let mut of_long = mappings_of(&tags, long);
        of_long.sort();
        let mut want_a = id_tags(&a).to_vec();
        want_a.push(existing_network_tag(&a));
        want_a.push(fip_auto_tag(&a));
        want_a.push(network_scope_tag(&a, long));
        let mut want_swarm = id_tags(&swarm).to_vec();
        want_swarm.push(existing_network_tag(&swarm));
        want_swarm.push(network_scope_tag(&swarm, long));
        let mut want = vec![want_a, want_swarm];
        want.sort();
        assert_eq!(of_long, want);
        assert_eq!(mappings_of(&tags, "cp-b").len(), 1);
        assert!(mappings_of(&tags, "cp-c").is_empty());
        assert!(network_scope_tag(&b, "cp-b").starts_with(&network_scope_prefix(&b)));
        let mark = control_plane_tag(long);
        assert!(is_hashed_tag_value(mark.strip_prefix("kuryr.cp:").unwrap()));
        assert!(!is_hashed_tag_value("cp-b"));
    }

    fn id(s: &str) -> DockerId {
        s.parse().unwrap()
    }

    #[test]
    fn names_and_tags_match_upstream() {
        let net = id("491ee57776dafe4e722448fb7ce70efb8641ac2ced6b4431cbd3dba4e1fad8c2");
        assert_eq!(network_name(&net), "kuryr-net-491ee577");
        assert_eq!(
            id_tags(&net),
            [
                "kuryr.net.uuid.lh:491ee57776dafe4e722448fb7ce70efb".to_string(),
                "kuryr.net.uuid.uh:8641ac2ced6b4431cbd3dba4e1fad8c2".to_string()
            ]
        );
        assert_eq!(
            existing_network_tag(&net),
            "kuryr.net.existing:491ee57776da"
        );
        assert_eq!(
            subnet_name(&"10.99.0.0/24".parse().unwrap()),
            "kuryr-subnet-10.99.0.0/24"
        );
        assert_eq!(
            subnetpool_name("kuryrPool", &"fd00::/64".parse().unwrap()),
            "kuryrPool-fd00::/64"
        );
        assert_eq!(endpoint_port_name(&net), format!("{}-port", net.as_str()));
    }

    #[test]
    fn host_and_request_tags_fit_a_tag() {
        assert_eq!(host_tag("compute-1"), "kuryr.host:compute-1");
        let long = "a".repeat(80);
        let t = host_tag(&long);
        assert_eq!(t.len(), 60, "{t}");
        assert_eq!(t, host_tag(&long), "stable");
        assert_ne!(t, host_tag(&format!("{long}b")));
        let (a, b) = (request_tag(), request_tag());
        assert_ne!(a, b);
        assert!(a.len() <= 60 && is_request_tag(&a), "{a}");
    }

    #[test]
    fn control_plane_tags_fit_a_tag() {
        assert_eq!(control_plane_tag("swarm-a"), "kuryr.cp:swarm-a");
        // A Docker engine id is 59 characters: hashed into the tag.
        let engine = "ABCD:EFGH:IJKL:MNOP:QRST:UVWX:YZ01:2345:6789:ABCD:EFGH:IJKL";
        let t = control_plane_tag(engine);
        assert_eq!(t.len(), 60, "{t}");
        assert!(is_control_plane_tag(&t));
        assert_ne!(t, control_plane_tag(&engine.replace('A', "B")));
        assert!(!is_control_plane_tag("kuryr.host:compute-1"));
    }

    #[test]
    fn descriptions_name_what_they_are_for() {
        let ep = id("491ee57776dafe4e722448fb7ce70efb8641ac2ced6b4431cbd3dba4e1fad8c2");
        let d = forwarding_description(&ep);
        assert_eq!(endpoint_of_forwarding(&d), Some(ep.as_str()));
        assert_eq!(endpoint_of_forwarding("the user's"), None);
        let f = endpoint_fip_description(&ep, "compute-1");
        assert_eq!(
            endpoint_of_fip_description(&f),
            Some((ep.as_str(), "kuryr.host:compute-1"))
        );
        let p = published_fip_description(&ep, "compute-1");
        assert!(is_published_fip_description(&p));
        assert_eq!(
            network_of_published_fip(&p),
            Some((ep.as_str(), "kuryr.host:compute-1"))
        );
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60"));
        assert!(!is_uuid("kuryr.subnetpool.existing"));
    }
}
