//! Per-call timings and Neutron requests, for `kuryr stats` and the benchmark: how long each
//! plugin call took, how much of it was kuryr's own work (the call's time minus the time it
//! waited for Keystone and Neutron), how much of that own time its thread waited for a CPU
//! (see [`super::cpu_wait`]), and how many Neutron requests were on Docker's path versus in
//! the background.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use kuryr_openstack::accounting::{self, Tally};
use serde::Serialize;

/// Samples kept per call for the percentiles (the most recent ones).
const SAMPLES: usize = 8192;

#[derive(Debug, Default)]
pub struct Metrics {
    /// The same calls, and more, for Prometheus.
    pub exporter: super::prometheus::Exporter,
    calls: Mutex<BTreeMap<&'static str, Samples>>,
    on_path: AtomicU64,
    /// Background requests counted before the last reset.
    background_base: AtomicU64,
}

#[derive(Debug, Default)]
struct Samples {
    count: u64,
    errors: u64,
    neutron_requests: u64,
    total_us: VecDeque<u64>,
    own_us: VecDeque<u64>,
    cpu_wait_us: VecDeque<u64>,
    own_less_cpu_wait_us: VecDeque<u64>,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

#[derive(Debug, Serialize)]
pub struct CallStats {
    pub call: &'static str,
    pub count: u64,
    pub errors: u64,
    pub neutron_requests: u64,
    pub total_us: Percentiles,
    pub own_us: Percentiles,
    /// Of the own time, how long the call's thread was ready to run but had no CPU (0 where
    /// the kernel cannot say, or the call moved between threads).
    pub cpu_wait_us: Percentiles,
    /// The own time without that wait: what kuryr itself took.
    pub own_less_cpu_wait_us: Percentiles,
}

#[derive(Debug, Serialize)]
pub struct NeutronRequests {
    pub on_path: u64,
    pub background: u64,
}

#[derive(Debug, Serialize)]
pub struct StatsReport {
    pub calls: Vec<CallStats>,
    pub neutron_requests: NeutronRequests,
    /// Resident memory now and its peak (VmRSS, VmHWM), in KiB.
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

impl Metrics {
    /// One call: its duration, what it sent (`tally`), and how long its thread waited for a
    /// CPU meanwhile (when known).
    pub fn record(
        &self,
        call: &'static str,
        took: Duration,
        tally: &Tally,
        cpu_wait: Option<Duration>,
        ok: bool,
    ) {
        self.exporter.call(call, took, tally.waited(), ok);
        let total = micros(took);
        let own = total.saturating_sub(micros(tally.waited()));
        let cpu_wait = cpu_wait.map_or(0, micros).min(own);
        self.on_path
            .fetch_add(tally.neutron_requests(), Ordering::Relaxed);
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let s = calls.entry(call).or_default();
        s.count += 1;
        if !ok {
            s.errors += 1;
        }
        s.neutron_requests += tally.neutron_requests();
        push(&mut s.total_us, total);
        push(&mut s.own_us, own);
        push(&mut s.cpu_wait_us, cpu_wait);
        push(&mut s.own_less_cpu_wait_us, own - cpu_wait);
    }

    pub fn reset(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.on_path.store(0, Ordering::Relaxed);
        self.background_base.store(
            accounting::background().neutron_requests(),
            Ordering::Relaxed,
        );
    }

    pub fn report(&self) -> StatsReport {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let (rss_kib, peak_rss_kib) = memory();
        StatsReport {
            calls: calls
                .iter()
                .map(|(call, s)| CallStats {
                    call,
                    count: s.count,
                    errors: s.errors,
                    neutron_requests: s.neutron_requests,
                    total_us: percentiles(&s.total_us),
                    own_us: percentiles(&s.own_us),
                    cpu_wait_us: percentiles(&s.cpu_wait_us),
                    own_less_cpu_wait_us: percentiles(&s.own_less_cpu_wait_us),
                })
                .collect(),
            neutron_requests: NeutronRequests {
                on_path: self.on_path.load(Ordering::Relaxed),
                background: accounting::background()
                    .neutron_requests()
                    .saturating_sub(self.background_base.load(Ordering::Relaxed)),
            },
            rss_kib,
            peak_rss_kib,
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn push(samples: &mut VecDeque<u64>, v: u64) {
    if samples.len() == SAMPLES {
        samples.pop_front();
    }
    samples.push_back(v);
}

/// Nearest-rank percentiles.
fn percentiles(samples: &VecDeque<u64>) -> Percentiles {
    let mut sorted: Vec<u64> = samples.iter().copied().collect();
    sorted.sort_unstable();
    let at = |p: usize| -> u64 {
        if sorted.is_empty() {
            return 0;
        }
        let rank = (p * sorted.len()).div_ceil(100).max(1);
        sorted[rank.min(sorted.len()) - 1]
    };
    Percentiles {
        p50: at(50),
        p99: at(99),
        max: sorted.last().copied().unwrap_or(0),
    }
}

/// VmRSS and VmHWM of this process, in KiB (0 when /proc cannot say).
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: VecDeque<u64> = (1..=100).collect();
        let p = percentiles(&samples);
        assert_eq!((p.p50, p.p99, p.max), (50, 99, 100));
        let one: VecDeque<u64> = [7].into_iter().collect();
        assert_eq!(percentiles(&one).p99, 7);
        assert_eq!(percentiles(&VecDeque::new()).p50, 0);
    }

    #[test]
    fn own_time_excludes_waiting() {
        let m = Metrics::default();
        let tally = Tally::default();
        m.record("X", Duration::from_millis(5), &tally, None, true);
        m.record(
            "X",
            Duration::from_millis(5),
            &tally,
            Some(Duration::from_millis(4)),
            true,
        );
        let r = m.report();
        assert_eq!(r.calls[0].own_us.p50, 5000);
        assert_eq!(r.calls[0].cpu_wait_us.max, 4000);
        assert_eq!(r.calls[0].own_less_cpu_wait_us.p50, 1000);
        assert_eq!(r.calls[0].own_less_cpu_wait_us.max, 5000);
        assert!(r.rss_kib > 0);
    }
}
