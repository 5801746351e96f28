//! kuryr's time per plugin call, per daemon and phase, from `kuryr stats --json`.

use crate::driver::Driver;
use crate::markdown::{int, num, Table};
use crate::measure::{Lifecycles, Run};

pub fn render(run: &Run) -> String {
    let mut t = Table::new(
        &[
            "daemon",
            "phase",
            "call",
            "count",
            "errors",
            "Neutron requests per call",
            "total p50",
            "total p99",
            "own p50",
            "own p99",
            "waiting for a CPU p99 / max",
            "own without that wait p99",
        ],
        &[
            false, false, false, true, true, true, true, true, true, true, true, true,
        ],
    );
    let mut any = false;
    for d in Driver::KURYR {
        let Some(r) = run.driver(d) else { continue };
        let phases: [(&str, Option<&Lifecycles>); 3] = [
            ("seq", r.seq.as_ref()),
            ("burst", r.burst.as_ref().map(|b| &b.runs)),
            ("flat", r.flat.as_ref().map(|f| &f.runs)),
        ];
        for (phase, runs) in phases {
            let Some(stats) = runs.and_then(|r| r.stats.as_ref()) else {
                continue;
            };
            for c in &stats.calls {
                any = true;
                t.row(&[
                    d.name(&run.meta),
                    super::phase_name(run, phase),
                    c.call.clone(),
                    c.count.to_string(),
                    c.errors.to_string(),
                    c.requests_per_call()
                        .map_or_else(String::new, |v| num(Some(v), 1)),
                    int(c.total_us.p50),
                    int(c.total_us.p99),
                    int(c.own_us.p50),
                    int(c.own_us.p99),
                    format!("{} / {}", int(c.cpu_wait_us.p99), int(c.cpu_wait_us.max)),
                    int(c.own_less_cpu_wait_us.p99),
                ]);
            }
        }
    }
    let table = if any {
        t.finish()
    } else {
        "Not measured: this kuryr build has no `kuryr stats`.\n".to_owned()
    };
    format!(
        "## kuryr's time per plugin call

From `kuryr stats --json`: the call's whole time in kuryr, and its own time (without the time it
waited for Keystone and Neutron, but with the host's side: netlink, Open vSwitch), in µs.
Percentiles over the calls of one phase; the targets use the sequential phases. *Waiting for a
CPU* is the part of the own time the call's thread was ready to run and the kernel ran something
else (its run delay, `/proc/thread-self/schedstat`, read before and after the call; 0 when a
call moved between threads); *own without that wait* is what is left.

{table}"
    )
}
