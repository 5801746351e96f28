//! The networks `bench/run` measures, by their label in file names.

use crate::meta::Meta;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Driver {
    /// `docker run --net none`: the baseline.
    None,
    /// Docker's default bridge.
    Bridge,
    /// A user-defined bridge network.
    UserBridge,
    /// kuryr with the default configuration (no `[vif_pool]` section).
    Kuryr,
    /// kuryr with `[vif_pool] enabled = false`: every container a pool miss.
    KuryrNoPool,
    /// kuryr with a warm pool, filled beforehand.
    KuryrPool,
    /// The upstream Python kuryr-libnetwork.
    Upstream,
}

impl Driver {
    /// Every driver, in the report's order.
    pub const ALL: [Driver; 7] = [
        Driver::None,
        Driver::Bridge,
        Driver::UserBridge,
        Driver::Kuryr,
        Driver::KuryrNoPool,
        Driver::KuryrPool,
        Driver::Upstream,
    ];

    /// The kuryr daemons of this repository.
    pub const KURYR: [Driver; 3] = [Driver::Kuryr, Driver::KuryrNoPool, Driver::KuryrPool];

    /// The label in file names and `bench/run --drivers`.
    pub fn label(self) -> &'static str {
        match self {
            Driver::None => "none",
            Driver::Bridge => "bridge",
            Driver::UserBridge => "userbridge",
            Driver::Kuryr => "kuryr",
            Driver::KuryrNoPool => "kuryr-nopool",
            Driver::KuryrPool => "kuryr-pool",
            Driver::Upstream => "upstream",
        }
    }

    pub fn from_label(label: &str) -> Option<Driver> {
        Driver::ALL.into_iter().find(|d| d.label() == label)
    }

    /// Its name in the report's tables.
    pub fn name(self, meta: &Meta) -> String {
        match self {
            Driver::None => "`--net none` (baseline)".to_owned(),
            Driver::Bridge => "Docker's default bridge".to_owned(),
            Driver::UserBridge => "user-defined bridge".to_owned(),
            Driver::Kuryr => "kuryr, default configuration".to_owned(),
            Driver::KuryrNoPool => "kuryr, no pool".to_owned(),
            Driver::KuryrPool => "kuryr, warm pool".to_owned(),
            Driver::Upstream => format!("upstream kuryr-libnetwork {}", meta.show("upstream")),
        }
    }

    pub fn is_kuryr(self) -> bool {
        Driver::KURYR.contains(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for d in Driver::ALL {
            assert_eq!(Driver::from_label(d.label()), Some(d));
        }
        assert!(Driver::KuryrNoPool.is_kuryr());
        assert!(!Driver::Upstream.is_kuryr());
        let meta = Meta::parse("upstream=18.0.0\n");
        assert_eq!(
            Driver::Upstream.name(&meta),
            "upstream kuryr-libnetwork 18.0.0"
        );
    }
}
