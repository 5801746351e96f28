//! `kuryr stats --json`: the Neutron requests on Docker's path and in the background, and
//! kuryr's time per plugin call.

use serde::Deserialize;

/// One dump of `kuryr stats --json` (fields the report uses; missing ones are `None`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Stats {
    #[serde(default)]
    pub calls: Vec<Call>,
    #[serde(default)]
    pub neutron_requests: Option<NeutronRequests>,
    #[serde(default)]
    pub rss_kib: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NeutronRequests {
    pub on_path: Option<u64>,
    pub background: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Call {
    pub call: String,
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub neutron_requests: u64,
    #[serde(default)]
    pub total_us: Percentiles,
    #[serde(default)]
    pub own_us: Percentiles,
    #[serde(default)]
    pub cpu_wait_us: Percentiles,
    #[serde(default)]
    pub own_less_cpu_wait_us: Percentiles,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Percentiles {
    pub p50: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

/// The slowest call of a phase by one measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Worst {
    pub call: String,
    pub p99_us: u64,
    /// That call's p99 waiting for a CPU.
    pub cpu_wait_p99_us: Option<u64>,
}

impl Stats {
    pub fn on_path(&self) -> Option<u64> {
        self.neutron_requests.as_ref()?.on_path
    }

    pub fn background(&self) -> Option<u64> {
        self.neutron_requests.as_ref()?.background
    }

    /// The call with the largest own-time p99 (the first of equals).
    pub fn worst_own(&self) -> Option<Worst> {
        self.worst_by(|c| c.own_us.p99)
    }

    /// The call with the largest p99 of its own time without waiting for a CPU.
    pub fn worst_own_less_wait(&self) -> Option<Worst> {
        self.worst_by(|c| c.own_less_cpu_wait_us.p99)
    }

    fn worst_by(&self, p99: impl Fn(&Call) -> Option<u64>) -> Option<Worst> {
        let mut worst: Option<Worst> = None;
        for c in self.calls.iter().filter(|c| c.count > 0) {
            let Some(v) = p99(c) else { continue };
            if worst.as_ref().is_none_or(|w| v > w.p99_us) {
                worst = Some(Worst {
                    call: c.call.clone(),
                    p99_us: v,
                    cpu_wait_p99_us: c.cpu_wait_us.p99,
                });
            }
        }
        worst
    }

    pub fn call(&self, name: &str) -> Option<&Call> {
        self.calls.iter().find(|c| c.call == name)
    }

    /// kuryr's own time over the phase, estimated as the sum over its calls of count × own
    /// p50, µs; `None` when no call with an own p50 was made.
    pub fn own_p50_sum_us(&self) -> Option<u64> {
        let mut calls = self
            .calls
            .iter()
            .filter(|c| c.count > 0)
            .filter_map(|c| Some(c.count * c.own_us.p50?))
            .peekable();
        calls.peek()?;
        Some(calls.sum())
    }
}

impl Call {
    /// Neutron requests per call.
    pub fn requests_per_call(&self) -> Option<f64> {
        crate::stats::per(Some(self.neutron_requests), self.count)
    }
}

/// Of two worst calls, the worse (the first of equals).
pub fn worse(a: Option<(Worst, String)>, b: Option<(Worst, String)>) -> Option<(Worst, String)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0.p99_us > a.0.p99_us { b } else { a }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = r#"{
      "calls": [
        {"call": "IpamDriver.RequestAddress", "count": 30, "errors": 0, "neutron_requests": 150,
         "total_us": {"p50": 290577, "p99": 460802, "max": 500000},
         "own_us": {"p50": 616, "p99": 2125, "max": 3000},
         "cpu_wait_us": {"p50": 0, "p99": 780, "max": 780},
         "own_less_cpu_wait_us": {"p50": 600, "p99": 2125, "max": 2500}},
        {"call": "NetworkDriver.CreateEndpoint", "count": 30, "errors": 1, "neutron_requests": 180,
         "total_us": {"p50": 438378, "p99": 826382, "max": 900000},
         "own_us": {"p50": 7175, "p99": 10350, "max": 12000},
         "cpu_wait_us": {"p50": 10, "p99": 3603, "max": 3603},
         "own_less_cpu_wait_us": {"p50": 7000, "p99": 9989, "max": 11000}},
        {"call": "NetworkDriver.Leave", "count": 0, "errors": 0, "neutron_requests": 0,
         "total_us": {"p50": 0, "p99": 99999, "max": 0},
         "own_us": {"p50": 0, "p99": 99999, "max": 0},
         "cpu_wait_us": {"p50": 0, "p99": 0, "max": 0},
         "own_less_cpu_wait_us": {"p50": 0, "p99": 99999, "max": 0}}
      ],
      "neutron_requests": {"on_path": 720, "background": 3},
      "rss_kib": 14400, "peak_rss_kib": 15000
    }"#;

    #[test]
    fn requests_and_worst_calls() {
        let s: Stats = serde_json::from_str(STATS).unwrap();
        assert_eq!(
            (s.on_path(), s.background(), s.rss_kib),
            (Some(720), Some(3), Some(14400))
        );
        let w = s.worst_own().unwrap();
        assert_eq!(
            (w.call.as_str(), w.p99_us, w.cpu_wait_p99_us),
            ("NetworkDriver.CreateEndpoint", 10350, Some(3603))
        );
        let l = s.worst_own_less_wait().unwrap();
        assert_eq!(
            (l.call.as_str(), l.p99_us),
            ("NetworkDriver.CreateEndpoint", 9989)
        );
        // 30 × 616 + 30 × 7175; the call never made counts nothing.
        assert_eq!(s.own_p50_sum_us(), Some(233_730));
        let c = s.call("IpamDriver.RequestAddress").unwrap();
        assert_eq!(c.requests_per_call(), Some(5.0));
        assert_eq!(
            s.call("NetworkDriver.Leave").unwrap().requests_per_call(),
            None
        );
    }

    #[test]
    fn an_older_kuryr_without_the_split() {
        let s: Stats = serde_json::from_str(r#"{"calls": []}"#).unwrap();
        assert_eq!((s.on_path(), s.worst_own()), (None, None));
        assert_eq!(s.own_p50_sum_us(), None);
    }

    #[test]
    fn the_worse_of_two() {
        let w = |p| Worst {
            call: "X".into(),
            p99_us: p,
            cpu_wait_p99_us: None,
        };
        let a = Some((w(5), "a".to_owned()));
        let b = Some((w(5), "b".to_owned()));
        assert_eq!(worse(a.clone(), b).unwrap().1, "a");
        assert_eq!(worse(a, Some((w(6), "c".to_owned()))).unwrap().1, "c");
        assert_eq!(worse(None, None), None);
    }
}
