//! Validated values that Docker puts in requests: network and endpoint ids, pool ids, MAC
//! addresses, bare IPs and CIDRs. Each deserializes only from a well-formed string, with an
//! error that says what the value should look like.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Docker network or endpoint id: 64 lowercase hex digits, or 25 `[0-9a-z]` (swarm).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DockerId(String);

impl DockerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a swarm network's id (25 characters of `[0-9a-z]`): its manager
    /// calls AllocateNetwork and FreeNetwork, each node CreateNetwork and DeleteNetwork.
    pub fn is_swarm(&self) -> bool {
        self.0.len() == 25
    }

    /// The first 32 and the last characters: upstream kuryr's tags hold an id in two halves
    /// (`kuryr.net.uuid.lh:` / `uh:`) because Neutron once capped tags at 60 characters.
    pub fn halves(&self) -> (&str, &str) {
        self.0.split_at(self.0.len().min(32))
    }
}

impl FromStr for DockerId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let hex64 = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let swarm25 = s.len() == 25 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'z'));
        if hex64 || swarm25 {
            Ok(DockerId(s.to_owned()))
        } else {
            Err(format!(
                "{:?} is not a Docker id (64 lowercase hex digits, or 25 [0-9a-z] for swarm)",
                shorten(s)
            ))
        }
    }
}

/// An IPAM pool id as this driver hands them out: 1 to 255 of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId(String);

impl PoolId {
    pub fn new(id: impl Into<String>) -> Result<Self, String> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 255
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(PoolId(id))
        } else {
            Err(format!(
                "{:?} is not a pool id this driver handed out",
                shorten(&id)
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PoolId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        PoolId::new(s)
    }
}

/// A MAC address, kept in lowercase colon notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl FromStr for MacAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{:?} is not a MAC address like 02:42:ac:11:00:02",
                shorten(s)
            )
        };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            // from_str_radix would also take a sign ("+f").
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddress(out))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// At most 80 characters of a value, for error messages (a body may be huge).
fn shorten(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s.to_owned()
    }
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    IpNet::from_str(s).map_err(|_| {
        format!(
            "{:?} is not an address with prefix like 10.0.0.0/24",
            shorten(s)
        )
    })
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    IpAddr::from_str(s).map_err(|_| format!("{:?} is not an IP address", shorten(s)))
}

/// Deserialize through `FromStr`, turning its message into a serde error.
fn from_str_de<'de, D: Deserializer<'de>, T: FromStr<Err = String>>(d: D) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

macro_rules! string_serde {
    ($ty:ty, $to_string:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                from_str_de(d)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let f: fn(&$ty) -> String = $to_string;
                s.serialize_str(&f(self))
            }
        }
    };
}

string_serde!(DockerId, |v| v.0.clone());
string_serde!(PoolId, |v| v.0.clone());
string_serde!(MacAddress, |v| v.to_string());

/// Serde helpers for fields where Docker sends `""` for "none".
pub mod optional {
    use super::*;

    /// `""` or absent -> `None`; otherwise a CIDR.
    pub fn cidr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => parse_cidr(&s).map(Some).map_err(serde::de::Error::custom),
        }
    }

    /// A CIDR that must be there.
    pub fn required_cidr<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(d)?;
        parse_cidr(&s).map_err(serde::de::Error::custom)
    }

    /// `""` or absent -> `None`; otherwise a bare IP (no prefix).
    pub fn ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => parse_ip(&s).map(Some).map_err(serde::de::Error::custom),
        }
    }

    /// `""` or absent -> `None`; otherwise a MAC.
    pub fn mac<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MacAddress>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }

    /// `""` or absent -> `None`; otherwise a pool id.
    pub fn pool_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PoolId>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => PoolId::new(s).map(Some).map_err(serde::de::Error::custom),
        }
    }

    /// Writes `None` as `""`, as Docker expects.
    pub fn to_string_or_empty<S: Serializer, T: ToString>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_str(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_byte_is_two_hex_digits_without_a_sign() {
        assert!("02:42:ac:11:00:0f".parse::<MacAddress>().is_ok());
        assert!("+2:42:ac:11:00:+f".parse::<MacAddress>().is_err());
        assert!("-2:42:ac:11:00:0f".parse::<MacAddress>().is_err());
    }

    #[test]
    fn docker_ids() {
        let id: DockerId = "491ee57776dafe4e722448fb7ce70efb8641ac2ced6b4431cbd3dba4e1fad8c2"
            .parse()
            .unwrap();
        assert_eq!(
            id.halves(),
            (
                "491ee57776dafe4e722448fb7ce70efb",
                "8641ac2ced6b4431cbd3dba4e1fad8c2"
            )
        );
        let swarm: DockerId = "5xj1h2k3l4m5n6p7q8r9s0t1u".parse().unwrap();
        assert_eq!(swarm.halves(), ("5xj1h2k3l4m5n6p7q8r9s0t1u", ""));
        for bad in [
            "",
            "ABC",
            &"g".repeat(64),
            &"a".repeat(63),
            &"A".repeat(25),
            "../../etc",
        ] {
            assert!(bad.parse::<DockerId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn macs_are_normalised() {
        let mac: MacAddress = "02:42:AC:11:00:02".parse().unwrap();
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
        for bad in [
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "2:42:ac:11:00:02",
            "zz:42:ac:11:00:02",
            "",
        ] {
            assert!(bad.parse::<MacAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pool_ids() {
        assert!(PoolId::new("0b4e3f5c-1d2a-4b3c-9d8e-7f6a5b4c3d2e").is_ok());
        assert!(PoolId::new("").is_err());
        assert!(PoolId::new("a/b").is_err());
        assert!(PoolId::new("x".repeat(256)).is_err());
    }

    #[test]
    fn long_values_are_shortened_in_errors() {
        let err = "x".repeat(10_000).parse::<DockerId>().unwrap_err();
        assert!(err.len() < 200, "{err}");
    }
}
