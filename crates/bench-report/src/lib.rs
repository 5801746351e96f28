//! The statistics and the report of `bench/run`: `kuryr-bench-report DIR` reads the raw data
//! of one run folder (`.cache/bench/<run>/`) and writes `BENCHMARKS.md`, so the report can be
//! made again from raw data alone. `bench/run` only runs containers and daemons and records.
//!
//! # Raw data of a run folder
//!
//! Every file is optional: what is missing is reported as `n/a` (a driver not measured, a
//! daemon without `kuryr stats`, a phase left out). `L` is a driver label (`none`, `bridge`,
//! `userbridge`, `kuryr`, `kuryr-nopool`, `kuryr-pool`, `upstream`), `P` a phase of it
//! (`seq`, `burst`, `flat`).
//!
//! Formats:
//! - *numbers*: one unsigned integer per line (microseconds or KiB); blank lines are
//!   skipped. A file of one number is the same format with one line.
//! - *access log*: the lines Neutron appended to `neutron-access.log` during a slice of
//!   time, unchanged (`<time> <METHOD> <path?query> <status> <ms> <request id>`); one line
//!   is one Neutron request.
//! - *stats*: the output of `kuryr stats --json` (calls with count, errors, Neutron requests,
//!   `total_us`/`own_us`/`cpu_wait_us`/`own_less_cpu_wait_us` percentiles, and
//!   `neutron_requests.on_path`/`background`), taken after `kuryr stats --reset`.
//! - *pool*: the output of `kuryr pool list --json` (`enabled`, `pools[].free`, `counters`).
//! - *cpu*: one line per process, `name ticks_start ticks_end seconds`: the process's
//!   utime + stime (summed over its pids, from `/proc/<pid>/stat`, in clock ticks,
//!   `meta.txt`'s `clk_tck` a second) at the start and the end of a sequence, and the
//!   sequence's wall time in seconds (decimal). `name` is `ovs-vswitchd`,
//!   `neutron-openvswitch-agent`, `dockerd`, `containerd` or `kuryr` (the daemon measured);
//!   a process not found has no line.
//! - `meta.txt`: `key=value` lines, the value up to the end of the line; a later line
//!   overrides an earlier one.
//!
//! Files:
//!
//! | file | format | what |
//! | --- | --- | --- |
//! | `meta.txt` | meta | the run's facts and parameters, see [`meta::Meta`] |
//! | `L.P.us` | numbers | one `docker run --rm` wall time per successful container, µs |
//! | `L.P.fail` | numbers | how many containers of the phase failed |
//! | `L.P.neutron.log` | access log | the phase's Neutron requests (until the log was quiet) |
//! | `L.P.stats.json` | stats | kuryr's counters over the phase |
//! | `L.P.pool0.json`, `L.P.pool1.json` | pool | the pools before and after the phase |
//! | `L.burst.wall_us` | numbers | the burst's wall time, first start to last exit |
//! | `L.burst.rss`, `L.flat.rss` | numbers | the daemon's VmRSS every 100 ms, KiB |
//! | `L.flat.rss0`, `L.flat.rss1` | numbers | VmRSS after the warm-up and after the run |
//! | `L.split<i>.start.neutron.log` | access log | `docker run -d` of split container *i* |
//! | `L.split<i>.run.neutron.log` | access log | while it runs |
//! | `L.split<i>.rm.neutron.log` | access log | `docker rm -f` |
//! | `L.split<i>.start.stats.json` | stats | kuryr's counters until `docker run -d` returned |
//! | `L.split<i>.stats.json` | stats | kuryr's counters over the whole container |
//! | `L.split.pool0.json`, `L.split.pool1.json` | pool | around all split containers |
//! | `L.netcreate.us`, `L.netrm.us` | numbers | `docker network create` / `rm` times, µs |
//! | `L.net.fail` | numbers | failed creates or removals |
//! | `L.net<i>.create.neutron.log`, `L.net<i>.rm.neutron.log` | access log | network *i* |
//! | `L.net<i>.create.stats.json`, `L.net<i>.rm.stats.json` | stats | network *i*, kuryr |
//! | `scale.S.us`, `.fail`, `.neutron.log`, `.stats.json` | as above | the scale phase's sequential runs, `S` = `base`, `ports`, `running` |
//! | `scale.S.none.us`, `.fail` | as above | `--net none` in the same sequence, each of its containers right after one of kuryr's, `S` = `base`, `running` |
//! | `scale.S.cpu` | cpu | the host's daemons and kuryr over the sequence of `S` |
//! | `scale.rss0`, `scale.rss1` | numbers | kuryr's VmRSS with no and with `scale.running.count` containers running |
//! | `scale.running.count`, `scale.extra.ports`, `scale.extra.nets` | numbers | what the scale phase really had running or made |
//!
//! The module layout: [`stats`] numbers, [`raw`] and [`meta`] reading files, [`calls`],
//! [`cpu`], [`pool`] and [`neutron`] one kind of raw data each, [`measure`] one run's measurements,
//! [`report`] the Markdown.

pub mod calls;
pub mod cpu;
pub mod driver;
pub mod error;
pub mod markdown;
pub mod measure;
pub mod meta;
pub mod neutron;
pub mod pool;
pub mod raw;
pub mod report;
pub mod stats;
pub mod summary;

pub use error::Error;
