//! "Flat as the cloud grows": the default kuryr's sequential containers with the project as
//! it is, with many more ports and networks in Neutron, and with many containers running.

use super::targets::ScaleCase;
use crate::markdown::{int, mib, num, Table};
use crate::measure::{Lifecycles, Run, Scale};
use crate::stats;

/// Medians (ms) and requests on Docker's path per container, as it is and grown, with
/// their growth.
pub struct Growths {
    pub median: (Option<f64>, Option<f64>),
    pub median_growth: Option<f64>,
    pub on_path: (Option<f64>, Option<f64>),
    pub on_path_growth: Option<f64>,
    /// `--net none` medians as it is and grown (with the containers running only).
    pub none: Option<(Option<f64>, Option<f64>)>,
}

pub fn growths(run: &Run, case: ScaleCase) -> Option<Growths> {
    let s = run.scale.as_ref()?;
    let base = s.base.as_ref()?;
    let grown = match case {
        ScaleCase::Ports => s.ports.as_ref()?,
        ScaleCase::Running => s.running.as_ref()?,
    };
    let median = (base.p50_ms(), grown.p50_ms());
    let on_path = (base.on_path_per(), grown.on_path_per());
    Some(Growths {
        median,
        median_growth: stats::ratio(median.1, median.0),
        on_path,
        on_path_growth: stats::growth(on_path.0, on_path.1),
        none: match case {
            ScaleCase::Ports => None,
            ScaleCase::Running => Some((
                s.base_none.as_ref().and_then(Lifecycles::p50_ms),
                s.running_none.as_ref().and_then(Lifecycles::p50_ms),
            )),
        },
    })
}

pub fn render(run: &Run) -> String {
    let Some(s) = run.scale.as_ref() else {
        return match run.meta.get("scale.skipped") {
            Some(why) => {
                format!("## Flat as the cloud grows\n\nNot measured in this run: {why}.\n")
            }
            None => String::new(),
        };
    };
    let m = &run.meta;
    let mut t = Table::new(
        &[
            "Neutron and this host",
            "containers",
            "median ms",
            "p90 ms",
            "× as it is",
            "Neutron requests per lifecycle",
            "on Docker's path",
            "× as it is",
            "failures",
        ],
        &[false, true, true, true, true, true, true, true, true],
    );
    let running = format!("{} containers running", int(s.running_count));
    // Each row with the row it is compared to.
    let rows: [(String, Option<&Lifecycles>, Option<&Lifecycles>); 5] = [
        ("as it is".to_owned(), s.base.as_ref(), s.base.as_ref()),
        (
            format!(
                "{} more ports on {} more networks",
                int(s.extra_ports),
                int(s.extra_nets)
            ),
            s.ports.as_ref(),
            s.base.as_ref(),
        ),
        (running.clone(), s.running.as_ref(), s.base.as_ref()),
        (
            "`--net none`, as it is".to_owned(),
            s.base_none.as_ref(),
            s.base_none.as_ref(),
        ),
        (
            format!("`--net none`, {running}"),
            s.running_none.as_ref(),
            s.base_none.as_ref(),
        ),
    ];
    for (what, runs, base) in rows {
        let Some(r) = runs else { continue };
        t.row(&[
            what,
            r.containers.to_string(),
            num(r.p50_ms(), 1),
            num(r.p90_ms(), 1),
            num(
                stats::ratio(r.p50_ms(), base.and_then(Lifecycles::p50_ms)),
                2,
            ),
            num(r.neutron_per(), 1),
            num(r.on_path_per(), 1),
            num(
                stats::growth(base.and_then(Lifecycles::on_path_per), r.on_path_per()),
                2,
            ),
            r.fails.to_string(),
        ]);
    }
    format!(
        "## Flat as the cloud grows

kuryr with the default configuration, {n} sequential `docker run --rm` on its network each
(after the other phases, so its pool has been in use): with the project as it is; with
{ports} more ports on {nets} more networks (a small subnet each) in Neutron, made in bulk
through Neutron's API ({per} ports per request, {asked} asked for: as many as Neutron made
within the phase's time bound) and deleted afterwards; and with {running} containers running
on this host on the same network (`docker run -d ... sleep`, started {par} at a time, removed
one at a time afterwards). Requests on Docker's path from `kuryr stats`, all requests from
Neutron's access log. `--net none` in the same states shows how much slower the host itself
(dockerd, containerd, the shims of the running containers) got.

{table}
{memory}
",
        n = m.count("scale_seq_n"),
        ports = int(s.extra_ports),
        nets = int(s.extra_nets),
        asked = m.count("scale_ports"),
        per = m.count("scale_ports_per_request"),
        running = int(s.running_count),
        par = m.count("scale_par"),
        table = t.finish(),
        memory = memory_line(s),
    )
}

fn memory_line(s: &Scale) -> String {
    format!(
        "kuryr's VmRSS with no container running: {}, with {} running: {}; {} KiB per running container.",
        mib(s.rss0),
        int(s.running_count),
        mib(s.rss1),
        num(s.rss_per_container_kib(), 1)
    )
}
