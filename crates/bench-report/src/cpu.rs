//! The CPU time of the host's daemons over one of the scale phase's sequences
//! (`scale.S.cpu`): how loaded the host itself was while the containers were timed.

use crate::error::{Error, Result};
use crate::raw::RunDir;

/// The daemons in the order the report lists them; others follow in the file's order.
pub const ORDER: [&str; 5] = [
    "ovs-vswitchd",
    "neutron-openvswitch-agent",
    "dockerd",
    "containerd",
    "kuryr",
];

/// One process (all its pids) over one sequence: utime + stime in clock ticks at its start
/// and end, and the sequence's wall time.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcCpu {
    pub name: String,
    pub ticks_start: u64,
    pub ticks_end: u64,
    pub seconds: f64,
}

impl ProcCpu {
    /// Its CPU use over the sequence, % of one CPU, with `clk_tck` ticks a second; `None`
    /// when it counted fewer ticks at the end (it restarted meanwhile) or no time passed.
    pub fn percent(&self, clk_tck: u64) -> Option<f64> {
        let ticks = self.ticks_end.checked_sub(self.ticks_start)?;
        if clk_tck == 0 || self.seconds <= 0.0 || !self.seconds.is_finite() {
            return None;
        }
        Some(ticks as f64 * 100.0 / (clk_tck as f64 * self.seconds))
    }
}

/// The processes of a sequence, `None` when the file is not there (a run from before the
/// file, or a state not measured).
pub fn read(dir: &RunDir, name: &str) -> Result<Option<Vec<ProcCpu>>> {
    let Some(text) = dir.text(name)? else {
        return Ok(None);
    };
    parse(&text)
        .map(Some)
        .map_err(|(line, message)| Error::Parse {
            path: dir.file(name),
            line,
            message,
        })
}

/// Lines `name ticks_start ticks_end seconds`; blank lines are skipped. The error is the
/// 1-based line that is not one.
pub fn parse(text: &str) -> std::result::Result<Vec<ProcCpu>, (usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let bad = || {
                (
                    i + 1,
                    format!("{:?} is not `name ticks_start ticks_end seconds`", l.trim()),
                )
            };
            let f: Vec<&str> = l.split_whitespace().collect();
            let [name, start, end, seconds] = f[..] else {
                return Err(bad());
            };
            Ok(ProcCpu {
                name: name.to_owned(),
                ticks_start: start.parse().map_err(|_| bad())?,
                ticks_end: end.parse().map_err(|_| bad())?,
                seconds: seconds.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// The names of the processes over all `sequences`, known daemons first.
pub fn names<'a>(sequences: impl IntoIterator<Item = &'a [ProcCpu]>) -> Vec<String> {
    let mut others: Vec<String> = Vec::new();
    let mut known = [false; ORDER.len()];
    for p in sequences.into_iter().flatten() {
        match ORDER.iter().position(|n| *n == p.name) {
            Some(i) => known[i] = true,
            None if !others.contains(&p.name) => others.push(p.name.clone()),
            None => {}
        }
    }
    ORDER
        .iter()
        .zip(known)
        .filter(|(_, k)| *k)
        .map(|(n, _)| (*n).to_owned())
        .chain(others)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_a_sequence() {
        let v = parse("ovs-vswitchd 1000 1280 10.000000\n\nkuryr 5 7 10.5\n").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[1],
            ProcCpu {
                name: "kuryr".into(),
                ticks_start: 5,
                ticks_end: 7,
                seconds: 10.5
            }
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("dockerd 1 2\n").map_err(|e| e.0), Err(1));
        assert_eq!(parse("a 1 2 3\ndockerd x 2 3\n").map_err(|e| e.0), Err(2));
    }

    #[test]
    fn percent_of_one_cpu() {
        let p = |start, end, seconds| ProcCpu {
            name: "ovs-vswitchd".into(),
            ticks_start: start,
            ticks_end: end,
            seconds,
        };
        // 280 ticks of 1/100 s over 10 s: 28 % of a CPU.
        assert_eq!(p(1000, 1280, 10.0).percent(100), Some(28.0));
        // Two CPUs' worth.
        assert_eq!(p(0, 400, 2.0).percent(100), Some(200.0));
        assert_eq!(p(1000, 1000, 10.0).percent(100), Some(0.0));
        // Restarted meanwhile, no time, no clock rate: unknown.
        assert_eq!(p(1000, 10, 10.0).percent(100), None);
        assert_eq!(p(0, 10, 0.0).percent(100), None);
        assert_eq!(p(0, 10, 1.0).percent(0), None);
    }

    #[test]
    fn known_daemons_first() {
        let p = |name: &str| ProcCpu {
            name: name.into(),
            ticks_start: 0,
            ticks_end: 0,
            seconds: 1.0,
        };
        let a = [p("kuryr"), p("other"), p("ovs-vswitchd")];
        let b = [p("dockerd"), p("other")];
        assert_eq!(
            names([&a[..], &b[..]]),
            ["ovs-vswitchd", "dockerd", "kuryr", "other"]
        );
    }
}
