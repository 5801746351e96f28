//! The `neutron.*` options a user passes with `docker network create -o` (CreateNetwork) and
//! `--ipam-opt` (RequestPool), validated into one typed set.

use std::collections::BTreeMap;

use crate::error::{DriverError, Result};

/// Address family of a pool, subnet or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(net: &ipnet::IpNet) -> Family {
        match net {
            ipnet::IpNet::V4(_) => Family::V4,
            ipnet::IpNet::V6(_) => Family::V6,
        }
    }

    pub fn ip_version(self) -> u8 {
        match self {
            Family::V4 => 4,
            Family::V6 => 6,
        }
    }

    fn infix(self) -> &'static str {
        match self {
            Family::V4 => "",
            Family::V6 => "v6.",
        }
    }
}

/// A Neutron resource named by the user, by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Named {
    Id(String),
    Name(String),
}

impl Named {
    /// A Neutron UUID is an id, anything else a name (as kuryr.conf's router option is read).
    pub fn parse(s: &str) -> Named {
        if crate::mapping::is_uuid(s) {
            Named::Id(s.to_owned())
        } else {
            Named::Name(s.to_owned())
        }
    }
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Named::Id(id) => write!(f, "id {id}"),
            Named::Name(name) => write!(f, "name {name:?}"),
        }
    }
}

/// Which router a network's new subnets are attached to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RouterChoice {
    /// `[neutron] default_router`, if set.
    #[default]
    Default,
    /// `neutron.router=none`: no router, whatever kuryr.conf says.
    None,
    /// `neutron.router.uuid` / `neutron.router.name`.
    Named(Named),
}

/// The options kuryr reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NeutronOptions {
    /// `neutron.net.uuid` / `neutron.net.name`: use this existing network.
    pub network: Option<Named>,
    /// `neutron.net.shared`.
    pub shared: Option<bool>,
    /// `neutron.subnet[.v6].uuid|name`, per family.
    pub subnet_v4: Option<Named>,
    pub subnet_v6: Option<Named>,
    /// `neutron.pool[.v6].uuid|name`, per family.
    pub pool_v4: Option<Named>,
    pub pool_v6: Option<Named>,
    /// `neutron.router`, `neutron.router.uuid|name`.
    pub router: RouterChoice,
    /// `neutron.floatingip=auto`: every container gets a floating IP.
    pub floating_ip: bool,
}

impl NeutronOptions {
    /// Read the options from a map of strings; unknown `neutron.*` keys are refused (a typo
    /// would otherwise silently create new resources instead of using existing ones).
    pub fn parse(options: &BTreeMap<String, String>) -> Result<NeutronOptions> {
        const KNOWN: &[&str] = &[
            "neutron.net.uuid",
            "neutron.net.name",
            "neutron.net.shared",
            "neutron.subnet.uuid",
            "neutron.subnet.name",
            "neutron.subnet.v6.uuid",
            "neutron.subnet.v6.name",
            "neutron.pool.uuid",
            "neutron.pool.name",
            "neutron.pool.v6.uuid",
            "neutron.pool.v6.name",
            "neutron.router",
            "neutron.router.uuid",
            "neutron.router.name",
            "neutron.floatingip",
        ];
        if let Some(unknown) = options
            .keys()
            .find(|k| k.starts_with("neutron.") && !KNOWN.contains(&k.as_str()))
        {
            return Err(DriverError::invalid(format!(
                "unknown option {unknown}; kuryr knows {}",
                KNOWN.join(", ")
            )));
        }
        let shared = match options.get("neutron.net.shared").map(String::as_str) {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(v) => {
                return Err(DriverError::invalid(format!(
                    "neutron.net.shared must be true or false, not {v:?}"
                )))
            }
        };
        let router = match (
            options.get("neutron.router").map(String::as_str),
            named(options, "neutron.router")?,
        ) {
            (None, None) => RouterChoice::Default,
            (None, Some(named)) => RouterChoice::Named(named),
            (Some(v), None) if v.eq_ignore_ascii_case("none") => RouterChoice::None,
            (Some(v), None) => {
                return Err(DriverError::invalid(format!(
                    "neutron.router takes only the value none (no router for this network), \
                     not {v:?}; name a router with neutron.router.uuid or neutron.router.name"
                )))
            }
            (Some(_), Some(_)) => {
                return Err(DriverError::invalid(
                    "neutron.router=none and neutron.router.uuid|name both given; pass one of \
                     them",
                ))
            }
        };
        let floating_ip = match options.get("neutron.floatingip").map(String::as_str) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("auto") => true,
            Some(v) if v.eq_ignore_ascii_case("none") => false,
            Some(v) => {
                return Err(DriverError::invalid(format!(
                    "neutron.floatingip on a network takes auto (every container gets a \
                     floating IP) or none, not {v:?}; a container names its own floating IP \
                     with --driver-opt neutron.floatingip=<address>"
                )))
            }
        };
        Ok(NeutronOptions {
            router,
            floating_ip,
            network: named(options, "neutron.net")?,
            shared,
            subnet_v4: named(options, "neutron.subnet")?,
            subnet_v6: named(options, "neutron.subnet.v6")?,
            pool_v4: named(options, "neutron.pool")?,
            pool_v6: named(options, "neutron.pool.v6")?,
        })
    }

    pub fn subnet(&self, family: Family) -> Option<&Named> {
        match family {
            Family::V4 => self.subnet_v4.as_ref(),
            Family::V6 => self.subnet_v6.as_ref(),
        }
    }

    pub fn pool(&self, family: Family) -> Option<&Named> {
        match family {
            Family::V4 => self.pool_v4.as_ref(),
            Family::V6 => self.pool_v6.as_ref(),
        }
    }

    /// Option name of the subnet option of a family, for messages.
    pub fn subnet_key(family: Family) -> String {
        format!("neutron.subnet.{}uuid|name", family.infix())
    }

    /// Option name of the pool option of a family, for messages.
    pub fn pool_key(family: Family) -> String {
        format!("neutron.pool.{}uuid|name", family.infix())
    }
}

/// `<base>.uuid` or `<base>.name`, not both, neither empty.
fn named(options: &BTreeMap<String, String>, base: &str) -> Result<Option<Named>> {
    let uuid = options.get(&format!("{base}.uuid"));
    let name = options.get(&format!("{base}.name"));
    match (uuid, name) {
        (Some(_), Some(_)) => Err(DriverError::invalid(format!(
            "{base}.uuid and {base}.name both given; pass one of them"
        ))),
        (Some(id), None) if crate::mapping::is_uuid(id) => Ok(Some(Named::Id(id.clone()))),
        (Some(id), None) => Err(DriverError::invalid(format!(
            "{base}.uuid must be a Neutron UUID (8-4-4-4-12 hex digits), not {id:?}"
        ))),
        (None, Some(n)) if n.is_empty() || n.len() > 255 => Err(DriverError::invalid(format!(
            "{base}.name must be 1 to 255 characters"
        ))),
        (None, Some(n)) => Ok(Some(Named::Name(n.clone()))),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_every_option() {
        let o = NeutronOptions::parse(&map(&[
            ("neutron.net.name", "ext"),
            ("neutron.net.shared", "True"),
            (
                "neutron.subnet.v6.uuid",
                "9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60",
            ),
            ("neutron.pool.name", "p"),
            ("com.example.other", "ignored"),
        ]))
        .unwrap();
        assert_eq!(o.network, Some(Named::Name("ext".into())));
        assert_eq!(o.shared, Some(true));
        assert_eq!(
            o.subnet(Family::V6),
            Some(&Named::Id("9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60".into()))
        );
        assert_eq!(o.pool(Family::V4), Some(&Named::Name("p".into())));
        assert_eq!(o.subnet(Family::V4), None);
        assert_eq!(o.router, RouterChoice::Default);
        let none = NeutronOptions::parse(&map(&[("neutron.router", "None")])).unwrap();
        assert_eq!(none.router, RouterChoice::None);
        let named = NeutronOptions::parse(&map(&[("neutron.router.name", "r1")])).unwrap();
        assert_eq!(named.router, RouterChoice::Named(Named::Name("r1".into())));
    }

    #[test]
    fn refuses_bad_options_with_the_key() {
        for (pairs, needle) in [
            (
                vec![("neutron.net.uuid", "x")],
                "neutron.net.uuid must be a Neutron UUID",
            ),
            (vec![("neutron.net.shared", "yes")], "neutron.net.shared"),
            (
                vec![("neutron.nett.name", "x")],
                "unknown option neutron.nett.name",
            ),
            (
                vec![
                    ("neutron.pool.name", "a"),
                    ("neutron.pool.uuid", "9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60"),
                ],
                "both given",
            ),
            (vec![("neutron.subnet.name", "")], "1 to 255"),
            (vec![("neutron.router", "off")], "only the value none"),
            (
                vec![("neutron.router", "none"), ("neutron.router.name", "r")],
                "both given",
            ),
        ] {
            let err = NeutronOptions::parse(&map(&pairs)).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.report().contains(needle), "{}", err.report());
        }
    }
}
