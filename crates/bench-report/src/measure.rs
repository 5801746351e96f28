//! One run's measurements, read from its folder: per driver its phases (sequential, burst,
//! split, network create, flatness), and the scale phase of the default kuryr.

use std::collections::BTreeMap;

use crate::calls::Stats;
use crate::cpu::{self, ProcCpu};
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::pool::{Counters, PoolList};
use crate::raw::RunDir;
use crate::stats;

/// A run folder read.
#[derive(Debug)]
pub struct Run {
    pub dir: RunDir,
    pub meta: Meta,
    pub drivers: BTreeMap<Driver, DriverRun>,
    pub scale: Option<Scale>,
}

/// What was measured of one driver.
#[derive(Debug, Default)]
pub struct DriverRun {
    pub seq: Option<Lifecycles>,
    pub burst: Option<Burst>,
    pub split: Option<Split>,
    pub net: Option<NetCreate>,
    pub flat: Option<Flat>,
}

/// Containers started one after the other (or in a burst): their times and what they
/// cost Neutron.
#[derive(Debug, Default)]
pub struct Lifecycles {
    /// Wall time of each successful `docker run`, µs.
    pub us: Vec<u64>,
    pub fails: u64,
    /// How many containers the phase started: what requests are divided by.
    pub containers: u64,
    /// Lines of Neutron's access log during the phase.
    pub neutron: Option<u64>,
    pub stats: Option<Stats>,
    /// The pools' work over the phase, when the daemon has pools.
    pub pool: Option<Counters>,
}

#[derive(Debug, Default)]
pub struct Burst {
    pub runs: Lifecycles,
    pub wall_us: Option<u64>,
    /// The daemon's VmRSS samples, KiB.
    pub rss: Vec<u64>,
}

/// `docker run -d`, a few seconds, `docker rm -f`, container by container; sums over the
/// containers that ran.
#[derive(Debug, Default)]
pub struct Split {
    pub containers: u64,
    pub before: u64,
    pub during: u64,
    pub removal: u64,
    /// Of them, the containers with kuryr's stats, and from those stats: on Docker's path
    /// until `docker run -d` returned, over the whole container, and in the background.
    pub with_stats: u64,
    pub on_path_start: Option<u64>,
    pub on_path_total: Option<u64>,
    pub background: Option<u64>,
    pub pool: Option<Counters>,
}

/// `docker network create` + `rm`.
#[derive(Debug, Default)]
pub struct NetCreate {
    pub create_us: Vec<u64>,
    pub rm_us: Vec<u64>,
    pub fails: u64,
    /// Neutron requests (access log) per create and per rm, over the networks logged.
    pub create_requests: Option<f64>,
    pub rm_requests: Option<f64>,
    /// Of them on Docker's path (kuryr's stats).
    pub create_on_path: Option<f64>,
    pub rm_on_path: Option<f64>,
}

/// VmRSS after a warm-up and after many more lifecycles.
#[derive(Debug, Default)]
pub struct Flat {
    pub runs: Lifecycles,
    pub rss0: Option<u64>,
    pub rss1: Option<u64>,
    pub rss: Vec<u64>,
}

/// The default kuryr as the cloud grows: as it is, with many more ports and networks in
/// Neutron, and with many containers running on this host.
#[derive(Debug, Default)]
pub struct Scale {
    pub base: Option<Lifecycles>,
    pub ports: Option<Lifecycles>,
    pub running: Option<Lifecycles>,
    /// `--net none` in the same states, each of its containers right after one of kuryr's:
    /// the host's own slowdown (`bench/run` does not run it with the extra ports).
    pub base_none: Option<Lifecycles>,
    pub ports_none: Option<Lifecycles>,
    pub running_none: Option<Lifecycles>,
    /// The host's daemons' CPU time over each state's sequence.
    pub base_cpu: Option<Vec<ProcCpu>>,
    pub ports_cpu: Option<Vec<ProcCpu>>,
    pub running_cpu: Option<Vec<ProcCpu>>,
    pub rss0: Option<u64>,
    pub rss1: Option<u64>,
    pub running_count: Option<u64>,
    pub extra_ports: Option<u64>,
    pub extra_nets: Option<u64>,
}

impl Run {
    pub fn read(dir: RunDir) -> Result<Run> {
        let meta = Meta::read(&dir)?.ok_or_else(|| Error::NotARun(dir.path().to_owned()))?;
        let mut drivers = BTreeMap::new();
        for d in Driver::ALL {
            let r = DriverRun::read(&dir, &meta, d)?;
            if r.seq.is_some() {
                drivers.insert(d, r);
            }
        }
        let scale = Scale::read(&dir, &meta)?;
        Ok(Run {
            dir,
            meta,
            drivers,
            scale,
        })
    }

    pub fn driver(&self, d: Driver) -> Option<&DriverRun> {
        self.drivers.get(&d)
    }

    /// The sequential median of `d`, ms.
    pub fn seq_p50(&self, d: Driver) -> Option<f64> {
        self.driver(d)?.seq.as_ref()?.p50_ms()
    }

    /// The network overhead of `d`: its sequential median minus `--net none`'s, ms.
    pub fn overhead(&self, d: Driver) -> Option<f64> {
        stats::minus(self.seq_p50(d), self.seq_p50(Driver::None))
    }

    pub fn burst_total_s(&self, d: Driver) -> Option<f64> {
        self.driver(d)?.burst.as_ref()?.total_s()
    }
}

impl DriverRun {
    fn read(dir: &RunDir, meta: &Meta, d: Driver) -> Result<DriverRun> {
        let l = d.label();
        let seq = Lifecycles::read(dir, &format!("{l}.seq"), meta.count("seq_n"))?;
        let burst = match Lifecycles::read(dir, &format!("{l}.burst"), meta.count("burst_n"))? {
            Some(runs) => Some(Burst {
                runs,
                wall_us: dir.number(&format!("{l}.burst.wall_us"))?,
                rss: dir.numbers(&format!("{l}.burst.rss"))?.unwrap_or_default(),
            }),
            None => None,
        };
        let flat = match Lifecycles::read(dir, &format!("{l}.flat"), meta.count("flat_n"))? {
            Some(runs) => Some(Flat {
                runs,
                rss0: dir.number(&format!("{l}.flat.rss0"))?,
                rss1: dir.number(&format!("{l}.flat.rss1"))?,
                rss: dir.numbers(&format!("{l}.flat.rss"))?.unwrap_or_default(),
            }),
            None => None,
        };
        Ok(DriverRun {
            seq,
            burst,
            split: Split::read(dir, l, meta.count("split_n"))?,
            net: NetCreate::read(dir, l, meta.count("net_n"))?,
            flat,
        })
    }
}

impl Lifecycles {
    /// The phase whose files start with `prefix` (`kuryr.seq`), if it ran; `containers` it
    /// started.
    pub fn read(dir: &RunDir, prefix: &str, containers: u64) -> Result<Option<Lifecycles>> {
        let Some(us) = dir.numbers(&format!("{prefix}.us"))? else {
            return Ok(None);
        };
        Ok(Some(Lifecycles {
            us,
            fails: dir.number(&format!("{prefix}.fail"))?.unwrap_or(0),
            containers,
            neutron: dir.lines(&format!("{prefix}.neutron.log"))?,
            stats: dir.json(&format!("{prefix}.stats.json"))?,
            pool: pool_work(dir, prefix)?,
        }))
    }

    pub fn p50_ms(&self) -> Option<f64> {
        stats::ms(stats::median(&self.us))
    }

    pub fn p90_ms(&self) -> Option<f64> {
        stats::ms(stats::percentile(&self.us, 0.9))
    }

    /// Neutron requests per container (access log).
    pub fn neutron_per(&self) -> Option<f64> {
        stats::per(self.neutron, self.containers)
    }

    /// Neutron requests on Docker's path per container (kuryr's stats).
    pub fn on_path_per(&self) -> Option<f64> {
        stats::per(self.stats.as_ref()?.on_path(), self.containers)
    }

    pub fn background_per(&self) -> Option<f64> {
        stats::per(self.stats.as_ref()?.background(), self.containers)
    }

    /// kuryr's own time per container (without Neutron), ms: count × own p50 summed over
    /// its calls, divided by the containers started.
    pub fn own_per_ms(&self) -> Option<f64> {
        stats::ms(stats::per(
            self.stats.as_ref()?.own_p50_sum_us(),
            self.containers,
        ))
    }
}

impl Burst {
    pub fn total_s(&self) -> Option<f64> {
        self.wall_us.map(|us| us as f64 / 1e6)
    }

    pub fn rss_peak(&self) -> Option<u64> {
        stats::max(&self.rss)
    }
}

impl Flat {
    /// VmRSS growth over the run, KiB.
    pub fn growth(&self) -> Option<i64> {
        Some(kib(self.rss1?) - kib(self.rss0?))
    }

    pub fn rss_peak(&self) -> Option<u64> {
        stats::max(&self.rss)
    }
}

fn kib(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The pools' counters over the phase `prefix`: the dumps before and after it, when the
/// daemon's pools are on.
fn pool_work(dir: &RunDir, prefix: &str) -> Result<Option<Counters>> {
    let before: Option<PoolList> = dir.json(&format!("{prefix}.pool0.json"))?;
    let after: Option<PoolList> = dir.json(&format!("{prefix}.pool1.json"))?;
    Ok(match (before, after) {
        (Some(b), Some(a)) if a.enabled => Some(b.counters.delta(&a.counters)),
        _ => None,
    })
}

impl Split {
    fn read(dir: &RunDir, label: &str, n: u64) -> Result<Option<Split>> {
        let mut s = Split::default();
        let (mut start, mut total, mut bg, mut with_stats) = (0, 0, 0, 0);
        for i in 1..=n {
            let p = format!("{label}.split{i}");
            let Some(before) = dir.lines(&format!("{p}.start.neutron.log"))? else {
                continue;
            };
            s.containers += 1;
            s.before += before;
            s.during += dir.lines(&format!("{p}.run.neutron.log"))?.unwrap_or(0);
            s.removal += dir.lines(&format!("{p}.rm.neutron.log"))?.unwrap_or(0);
            let at_start: Option<Stats> = dir.json(&format!("{p}.start.stats.json"))?;
            let whole: Option<Stats> = dir.json(&format!("{p}.stats.json"))?;
            if let (Some(a), Some(w)) = (at_start, whole) {
                if let (Some(a_on), Some(w_on)) = (a.on_path(), w.on_path()) {
                    start += a_on;
                    total += w_on;
                    bg += w.background().unwrap_or(0);
                    with_stats += 1;
                }
            }
        }
        if s.containers == 0 {
            return Ok(None);
        }
        if with_stats > 0 {
            s.with_stats = with_stats;
            s.on_path_start = Some(start);
            s.on_path_total = Some(total);
            s.background = Some(bg);
        }
        s.pool = pool_work(dir, &format!("{label}.split"))?;
        Ok(Some(s))
    }

    pub fn before_per(&self) -> Option<f64> {
        stats::per(Some(self.before), self.containers)
    }

    pub fn during_per(&self) -> Option<f64> {
        stats::per(Some(self.during), self.containers)
    }

    pub fn removal_per(&self) -> Option<f64> {
        stats::per(Some(self.removal), self.containers)
    }

    pub fn on_path_start_per(&self) -> Option<f64> {
        stats::per(self.on_path_start, self.with_stats)
    }

    /// On Docker's path from `docker rm -f` on: the whole container's less its start's.
    pub fn on_path_removal_per(&self) -> Option<f64> {
        let removal = self.on_path_total?.checked_sub(self.on_path_start?)?;
        stats::per(Some(removal), self.with_stats)
    }

    pub fn on_path_per(&self) -> Option<f64> {
        stats::per(self.on_path_total, self.with_stats)
    }

    pub fn background_per(&self) -> Option<f64> {
        stats::per(self.background, self.with_stats)
    }
}

impl NetCreate {
    fn read(dir: &RunDir, label: &str, n: u64) -> Result<Option<NetCreate>> {
        let Some(create_us) = dir.numbers(&format!("{label}.netcreate.us"))? else {
            return Ok(None);
        };
        let mut requests = [Vec::new(), Vec::new()];
        let mut on_path = [Vec::new(), Vec::new()];
        for i in 1..=n {
            for (k, what) in ["create", "rm"].iter().enumerate() {
                let p = format!("{label}.net{i}.{what}");
                if let Some(lines) = dir.lines(&format!("{p}.neutron.log"))? {
                    requests[k].push(lines);
                }
                let s: Option<Stats> = dir.json(&format!("{p}.stats.json"))?;
                if let Some(on) = s.and_then(|s| s.on_path()) {
                    on_path[k].push(on);
                }
            }
        }
        let mean = |v: &Vec<u64>| stats::per(Some(v.iter().sum()), v.len() as u64);
        Ok(Some(NetCreate {
            create_us,
            rm_us: dir
                .numbers(&format!("{label}.netrm.us"))?
                .unwrap_or_default(),
            fails: dir.number(&format!("{label}.net.fail"))?.unwrap_or(0),
            create_requests: mean(&requests[0]),
            rm_requests: mean(&requests[1]),
            create_on_path: mean(&on_path[0]),
            rm_on_path: mean(&on_path[1]),
        }))
    }

    pub fn create_p50_ms(&self) -> Option<f64> {
        stats::ms(stats::median(&self.create_us))
    }

    pub fn rm_p50_ms(&self) -> Option<f64> {
        stats::ms(stats::median(&self.rm_us))
    }
}

impl Scale {
    fn read(dir: &RunDir, meta: &Meta) -> Result<Option<Scale>> {
        let n = meta.count("scale_seq_n");
        let s = Scale {
            base: Lifecycles::read(dir, "scale.base", n)?,
            ports: Lifecycles::read(dir, "scale.ports", n)?,
            running: Lifecycles::read(dir, "scale.running", n)?,
            base_none: Lifecycles::read(dir, "scale.base.none", n)?,
            ports_none: Lifecycles::read(dir, "scale.ports.none", n)?,
            running_none: Lifecycles::read(dir, "scale.running.none", n)?,
            base_cpu: cpu::read(dir, "scale.base.cpu")?,
            ports_cpu: cpu::read(dir, "scale.ports.cpu")?,
            running_cpu: cpu::read(dir, "scale.running.cpu")?,
            rss0: dir.number("scale.rss0")?,
            rss1: dir.number("scale.rss1")?,
            running_count: dir.number("scale.running.count")?,
            extra_ports: dir.number("scale.extra.ports")?,
            extra_nets: dir.number("scale.extra.nets")?,
        };
        Ok(s.base.is_some().then_some(s))
    }

    /// kuryr's VmRSS per running container, KiB: with them minus without, divided by them.
    pub fn rss_per_container_kib(&self) -> Option<f64> {
        let n = self.running_count.filter(|n| *n > 0)?;
        Some((kib(self.rss1?) - kib(self.rss0?)) as f64 / n as f64)
    }
}
