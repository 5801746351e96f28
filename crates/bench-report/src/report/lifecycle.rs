//! Container lifecycles: sequential medians and the burst, per network.

use crate::driver::Driver;
use crate::markdown::{num, Table};
use crate::measure::Run;
use crate::stats::ratio;

pub fn render(run: &Run) -> String {
    let m = &run.meta;
    let mut t = Table::new(
        &[
            "network",
            "median ms",
            "p90 ms",
            "overhead ms",
            "× user bridge",
            "× upstream",
            "burst total s",
            "burst × user bridge",
            "burst × upstream",
            "burst median / p90 ms",
            "failures",
        ],
        &[
            false, true, true, true, true, true, true, true, true, true, true,
        ],
    );
    let ub = run.seq_p50(Driver::UserBridge);
    let up = run.seq_p50(Driver::Upstream);
    let ub_burst = run.burst_total_s(Driver::UserBridge);
    let up_burst = run.burst_total_s(Driver::Upstream);
    for (&d, r) in &run.drivers {
        let p50 = run.seq_p50(d);
        let total = run.burst_total_s(d);
        let burst = r.burst.as_ref().map(|b| &b.runs);
        let fails = r.seq.as_ref().map_or(0, |s| s.fails) + burst.map_or(0, |b| b.fails);
        t.row(&[
            d.name(m),
            num(p50, 1),
            num(r.seq.as_ref().and_then(|s| s.p90_ms()), 1),
            num(run.overhead(d), 1),
            num(ratio(p50, ub), 2),
            num(ratio(p50, up), 2),
            num(total, 2),
            num(ratio(total, ub_burst), 2),
            num(ratio(total, up_burst), 2),
            format!(
                "{} / {}",
                num(burst.and_then(|b| b.p50_ms()), 1),
                num(burst.and_then(|b| b.p90_ms()), 1)
            ),
            fails.to_string(),
        ]);
    }
    format!(
        "## Container lifecycle: `docker run --rm --net <network> kuryr/busybox true`

Sequential: {seq} one after the other, after {pre} unmeasured ones. Burst: {burst}, {par} at a time
(`xargs -P {par}`), wall time from the first start to the last exit. Network overhead = the
median minus the `--net none` median of the same run. kuryr's default configuration has no
pool filled beforehand: the measured containers are a network's second and later ones.

{table}",
        seq = m.count("seq_n"),
        pre = m.count("pre_n"),
        burst = m.count("burst_n"),
        par = m.count("burst_par"),
        table = t.finish(),
    )
}
