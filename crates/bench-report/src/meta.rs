//! `meta.txt`: the run's facts (machine, versions, date, duration) and parameters
//! (repetitions), as `key=value` lines.
//!
//! Keys `bench/run` writes: `date`, `nproc`, `cpu`, `memory_kib`, `kernel`, `loadavg`,
//! `docker`, `neutron`, `keystone`, `upstream`, `kuryr`, `tokens`, `duration_s`, `quick`
//! (0/1), `drivers` (space-separated labels), `have_stats`, `have_pool` (0/1), the
//! repetitions `seq_n`, `pre_n`, `burst_n`, `burst_par`, `split_n`, `split_hold`, `net_n`,
//! `warm_n`, `flat_n`, the scale phase's `scale_seq_n`, `scale_ports`, `scale_nets`,
//! `scale_ports_per_request`, `scale_containers`, `scale_par`, `scale_paired` (1: each of
//! the scale phase's kuryr containers was followed by one on `--net none`; older runs ran
//! `--net none` after kuryr's sequence), the quiet host the scale phase waits for before each
//! sequence (`quiet_agent_pct`, `quiet_ovs_delta`, `quiet_max_s`) and per state `S` how long
//! it waited (`scale.S.quiet_s`) or what was still busy at the deadline (`scale.S.not_quiet`,
//! free text), `clk_tck` (clock ticks a second of `/proc/<pid>/stat`), and why a phase was
//! left out: `upstream.flat.skipped` (`quick`, or `budget <estimated s> <budget s>`) and
//! `scale.skipped` (free text).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::raw::RunDir;

pub const FILE: &str = "meta.txt";

#[derive(Debug, Clone, Default)]
pub struct Meta {
    values: BTreeMap<String, String>,
}

impl Meta {
    pub fn read(run: &RunDir) -> Result<Option<Meta>> {
        Ok(run.text(FILE)?.map(|t| Meta::parse(&t)))
    }

    pub fn parse(text: &str) -> Meta {
        let values = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
            .collect();
        Meta { values }
    }

    /// A value, `None` when missing or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A value as shown in the report: `?` when missing.
    pub fn show(&self, key: &str) -> &str {
        self.get(key).unwrap_or("?")
    }

    pub fn num(&self, key: &str) -> Option<u64> {
        self.get(key)?.trim().parse().ok()
    }

    pub fn flag(&self, key: &str) -> bool {
        self.num(key) == Some(1)
    }

    /// A repetition count, with the full run's value when the run did not say.
    pub fn count(&self, key: &str) -> u64 {
        self.num(key).unwrap_or_else(|| full_run_default(key))
    }
}

/// The repetitions of a full run (`bench/run` without `--quick`).
fn full_run_default(key: &str) -> u64 {
    match key {
        "seq_n" | "scale_seq_n" => 30,
        "pre_n" => 3,
        "burst_n" => 100,
        "burst_par" | "scale_par" => 10,
        "split_n" | "net_n" => 5,
        "split_hold" => 4,
        "warm_n" => 20,
        "flat_n" | "scale_containers" => 200,
        "scale_ports" => 2000,
        "scale_nets" | "scale_ports_per_request" => 100,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_lines_win_and_values_keep_their_equals() {
        let m = Meta::parse("a=1\nkuryr=commit x=y\na=2\nempty=\nnoise\n");
        assert_eq!(m.num("a"), Some(2));
        assert_eq!(m.get("kuryr"), Some("commit x=y"));
        assert_eq!(m.get("empty"), None);
        assert_eq!(m.show("missing"), "?");
        assert_eq!(m.count("seq_n"), 30);
        assert!(!m.flag("quick"));
    }
}
