//! How many free ports a pool keeps, and when it gives them back.
//!
//! An operator who sets `ports_pool_min` gets exactly that many free ports in every pool in
//! use. Without it (the default), each pool sizes itself by demand: it is made at its
//! network's first address request on this host (that container's port is made on demand),
//! keeps [`AUTO_START`] free ports, and every container that finds it empty (a miss) raises
//! that by one, up to its bound. A pool no container took a port from for the idle timeout
//! gives its free ports back to Neutron and starts over at its next request, so an idle
//! network holds no addresses of this host.

use std::time::{Duration, Instant};

/// Free ports a self-sizing pool keeps at first.
pub const AUTO_START: usize = 2;
/// At most this many free ports in a self-sizing pool without `ports_pool_max`.
pub const AUTO_MAX: usize = 32;
/// Idle timeout of self-sizing pools unless `ports_pool_idle_timeout` says otherwise.
pub const AUTO_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// One pool's demand: how many free ports it wants and when a container last took one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Below this many free ports the pool is refilled, up to it.
    pub target: usize,
    pub last_take: Instant,
}

/// The sizing rules of the daemon's pools (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// `ports_pool_min`; None: by demand.
    pub fixed_min: Option<usize>,
    /// `ports_pool_batch`; None: a refill makes what the pool lacks, in one request.
    pub batch: Option<usize>,
    /// Zero: pools are never given back for being idle.
    pub idle_timeout: Duration,
}

impl Sizing {
    /// The demand of a pool made now (its first request, or the first after an idle spell).
    pub fn new_demand(&self, now: Instant, bound: usize) -> Demand {
        Demand {
            target: self.fixed_min.unwrap_or(AUTO_START).min(bound),
            last_take: now,
        }
    }

    /// A container took a port from the pool (`hit`) or found it empty. A miss of a pool
    /// in use raises a self-sizing pool's target by one, up to `bound`; the miss that makes
    /// a pool, or wakes an idle one, starts it over.
    pub fn on_take(&self, demand: &mut Demand, now: Instant, hit: bool, bound: usize) {
        if self.is_idle(demand, now) {
            *demand = self.new_demand(now, bound);
            return;
        }
        demand.last_take = now;
        if !hit && self.fixed_min.is_none() {
            demand.target = (demand.target + 1).min(bound);
        }
    }

    /// Whether the pool has served no container for the idle timeout.
    pub fn is_idle(&self, demand: &Demand, now: Instant) -> bool {
        !self.idle_timeout.is_zero()
            && now.saturating_duration_since(demand.last_take) >= self.idle_timeout
    }

    /// How many ports a refill makes in its next request: none while `free` (with the ports
    /// on their way back) reaches the target; else what brings it there, at least a batch
    /// with a fixed batch, never beyond `bound` free ports.
    pub fn shortfall(&self, demand: &Demand, free: usize, bound: usize) -> usize {
        if free >= demand.target {
            return 0;
        }
        let lacking = demand.target - free;
        let wanted = match self.batch {
            Some(batch) if self.fixed_min.is_some() => batch.max(lacking),
            Some(batch) => lacking.min(batch),
            None => lacking,
        };
        wanted.min(bound.saturating_sub(free))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTO: Sizing = Sizing {
        fixed_min: None,
        batch: None,
        idle_timeout: AUTO_IDLE_TIMEOUT,
    };
    const FIXED: Sizing = Sizing {
        fixed_min: Some(5),
        batch: Some(10),
        idle_timeout: Duration::ZERO,
    };

    #[test]
    fn a_new_self_sizing_pool_wants_two_ports() {
        let now = Instant::now();
        let d = AUTO.new_demand(now, 63);
        assert_eq!(d.target, AUTO_START);
        assert_eq!(AUTO.shortfall(&d, 0, 63), 2);
        assert_eq!(AUTO.shortfall(&d, 1, 63), 1);
        assert_eq!(AUTO.shortfall(&d, 2, 63), 0);
        // A /29 pool may hold one port: the bound wins.
        assert_eq!(AUTO.new_demand(now, 1).target, 1);
    }

    #[test]
    fn every_miss_of_a_pool_in_use_adds_one_port_up_to_the_bound() {
        let now = Instant::now();
        let mut d = AUTO.new_demand(now, 4);
        AUTO.on_take(&mut d, now, true, 4);
        assert_eq!(d.target, 2, "a hit changes nothing");
        for expected in [3, 4, 4] {
            AUTO.on_take(&mut d, now, false, 4);
            assert_eq!(d.target, expected);
        }
        assert_eq!(AUTO.shortfall(&d, 1, 4), 3);
    }

    #[test]
    fn fixed_sizes_do_not_move_and_refill_by_batches() {
        let now = Instant::now();
        let mut d = FIXED.new_demand(now, usize::MAX);
        for _ in 0..10 {
            FIXED.on_take(&mut d, now, false, usize::MAX);
        }
        assert_eq!(d.target, 5);
        assert_eq!(FIXED.shortfall(&d, 4, usize::MAX), 10, "at least a batch");
        assert_eq!(FIXED.shortfall(&d, 4, 7), 3, "never beyond the bound");
        assert_eq!(FIXED.shortfall(&d, 5, usize::MAX), 0);
        assert!(!FIXED.is_idle(&d, now + Duration::from_secs(86_400)));
    }

    #[test]
    fn a_batch_without_a_minimum_caps_each_request() {
        let s = Sizing {
            batch: Some(3),
            ..AUTO
        };
        let d = Demand {
            target: 10,
            last_take: Instant::now(),
        };
        assert_eq!(s.shortfall(&d, 0, 63), 3);
    }

    #[test]
    fn an_idle_pool_starts_over_at_its_next_request() {
        let start = Instant::now();
        let mut d = AUTO.new_demand(start, 63);
        for _ in 0..5 {
            AUTO.on_take(&mut d, start, false, 63);
        }
        assert_eq!(d.target, 7);
        let later = start + AUTO_IDLE_TIMEOUT - Duration::from_secs(1);
        assert!(!AUTO.is_idle(&d, later));
        let idle = start + AUTO_IDLE_TIMEOUT;
        assert!(AUTO.is_idle(&d, idle));
        AUTO.on_take(&mut d, idle, false, 63);
        assert_eq!(
            d.target, AUTO_START,
            "the waking miss does not count as demand"
        );
        assert_eq!(d.last_take, idle);
        assert!(!AUTO.is_idle(&d, idle));
    }
}
