//! "Flat as the cloud grows": the default kuryr's sequential containers with the project as
//! it is, with many more ports and networks in Neutron, and with many containers running.

use super::targets::ScaleCase;
use crate::cpu::{self, ProcCpu};
use crate::markdown::{int, mib, num, Table};
use crate::measure::{Lifecycles, Run, Scale};
use crate::stats;

/// Medians (ms) and requests on Docker's path per container, as it is and grown, with
/// their growth; `--net none`'s in the same states; kuryr's own time per container.
pub struct Growths {
    pub median: (Option<f64>, Option<f64>),
    pub median_growth: Option<f64>,
    pub on_path: (Option<f64>, Option<f64>),
    pub on_path_growth: Option<f64>,
    /// `--net none` medians as it is and grown, when it was measured grown.
    pub none: Option<(Option<f64>, Option<f64>)>,
    pub none_growth: Option<f64>,
    /// kuryr's growth over the host's own: its median growth / `--net none`'s.
    pub relative_growth: Option<f64>,
    /// kuryr's own time per lifecycle (without Neutron), ms, as it is and grown.
    pub own: (Option<f64>, Option<f64>),
}

pub fn growths(run: &Run, case: ScaleCase) -> Option<Growths> {
    let s = run.scale.as_ref()?;
    let base = s.base.as_ref()?;
    let (grown, grown_none) = match case {
        ScaleCase::Ports => (s.ports.as_ref()?, s.ports_none.as_ref()),
        ScaleCase::Running => (s.running.as_ref()?, s.running_none.as_ref()),
    };
    let median = (base.p50_ms(), grown.p50_ms());
    let median_growth = stats::ratio(median.1, median.0);
    let on_path = (base.on_path_per(), grown.on_path_per());
    let none = grown_none.map(|g| {
        (
            s.base_none.as_ref().and_then(Lifecycles::p50_ms),
            g.p50_ms(),
        )
    });
    let none_growth = none.and_then(|(b, g)| stats::ratio(g, b));
    Some(Growths {
        median,
        median_growth,
        on_path,
        on_path_growth: stats::growth(on_path.0, on_path.1),
        none,
        none_growth,
        relative_growth: stats::ratio(median_growth, none_growth),
        own: (base.own_per_ms(), grown.own_per_ms()),
    })
}

/// A state of the scale phase as the report names it.
fn state_names(s: &Scale) -> [String; 3] {
    [
        "as it is".to_owned(),
        format!(
            "{} more ports on {} more networks",
            int(s.extra_ports),
            int(s.extra_nets)
        ),
        format!("{} containers running", int(s.running_count)),
    ]
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
            "kuryr's own ms per lifecycle",
            "failures",
        ],
        &[false, true, true, true, true, true, true, true, true, true],
    );
    let [as_it_is, ports, running] = state_names(s);
    // Each row with the row it is compared to.
    let rows: [(String, Option<&Lifecycles>, Option<&Lifecycles>); 6] = [
        (as_it_is.clone(), s.base.as_ref(), s.base.as_ref()),
        (ports.clone(), s.ports.as_ref(), s.base.as_ref()),
        (running.clone(), s.running.as_ref(), s.base.as_ref()),
        (
            format!("`--net none`, {as_it_is}"),
            s.base_none.as_ref(),
            s.base_none.as_ref(),
        ),
        (
            format!("`--net none`, {ports}"),
            s.ports_none.as_ref(),
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
            num(r.own_per_ms(), 2),
            r.fails.to_string(),
        ]);
    }
    let none_how = if m.flag("scale_paired") {
        "`--net none` ran in the same sequences, one of its containers right after each of
kuryr's, so that both met the host in the same state"
    } else {
        "`--net none` ran after kuryr's sequence in each state (this run did not interleave
them)"
    };
    let mut out = format!(
        "## Flat as the cloud grows

kuryr with the default configuration, {n} sequential `docker run --rm` on its network each
(after the other phases, so its pool has been in use): with the project as it is; with
{ports} more ports on {nets} more networks (a small subnet each) in Neutron, made in bulk
through Neutron's API ({per} ports per request, {asked} asked for: as many as Neutron made
within the phase's time bound) and deleted before the next state; then with {running_n}
containers running on this host on the same network (`docker run -d ... sleep`, started {par}
at a time, removed one at a time afterwards). Requests on Docker's path from `kuryr stats`, all
requests from Neutron's access log; kuryr's own time per lifecycle is the sum over its calls
of count × own p50 (without Neutron), divided by the containers.
{none_how}: how much slower the host itself got.

{table}",
        n = m.count("scale_seq_n"),
        ports = int(s.extra_ports),
        nets = int(s.extra_nets),
        asked = m.count("scale_ports"),
        per = m.count("scale_ports_per_request"),
        running_n = int(s.running_count),
        par = m.count("scale_par"),
        table = t.finish(),
    );
    if let Some(text) = running_growth(run, &running) {
        out.push_str(&format!("\n{text}"));
    }
    if let Some(text) = cpu_table(run, s) {
        out.push_str(&format!("\n{text}"));
    }
    if let Some(text) = quiet_line(run, s) {
        out.push_str(&format!("\n{text}\n"));
    }
    out.push_str(&format!("\n{}\n", memory_line(s)));
    out
}

/// kuryr's growth with the containers running against the host's, and why that is what the
/// target judges.
fn running_growth(run: &Run, running: &str) -> Option<String> {
    let g = growths(run, ScaleCase::Running)?;
    g.none?;
    let when = if run.meta.flag("scale_paired") {
        "in the same sequences"
    } else {
        "after it"
    };
    Some(format!(
        "With {running}, kuryr's median grew {k} × and `--net none`'s {n} × {when}:
kuryr grew {r} × as much as the host did; its own time per lifecycle went {o0} → {o1} ms.
The target judges kuryr's growth against the host's: with many containers running, the host
itself gets slower for every container, networked or not (Open vSwitch's userspace datapath
with a port per container, the Open vSwitch agent, dockerd and containerd with a shim each),
so kuryr is judged on what it adds.
",
        k = num(g.median_growth, 2),
        n = num(g.none_growth, 2),
        r = num(g.relative_growth, 2),
        o0 = num(g.own.0, 2),
        o1 = num(g.own.1, 2),
    ))
}

/// The host's daemons' CPU use during each state's sequence, when recorded.
fn cpu_table(run: &Run, s: &Scale) -> Option<String> {
    let names = state_names(s);
    let states: Vec<(&String, &[ProcCpu])> = names
        .iter()
        .zip([&s.base_cpu, &s.ports_cpu, &s.running_cpu])
        .filter_map(|(n, c)| Some((n, c.as_deref()?)))
        .collect();
    if states.is_empty() {
        return None;
    }
    let clk_tck = run.meta.num("clk_tck");
    let mut header = vec!["process".to_owned()];
    header.extend(states.iter().map(|(n, _)| (*n).clone()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let right: Vec<bool> = (0..header.len()).map(|i| i > 0).collect();
    let mut t = Table::new(&header, &right);
    for name in cpu::names(states.iter().map(|(_, c)| *c)) {
        let mut row = vec![name.clone()];
        for (_, procs) in &states {
            let p = procs.iter().find(|p| p.name == name);
            row.push(num(p.and_then(|p| p.percent(clk_tck?)), 1));
        }
        t.row(&row);
    }
    Some(format!(
        "CPU use of the host's daemons and kuryr during each sequence, % of one CPU ({nproc} CPUs;
utime + stime of each process from `/proc/<pid>/stat` over the sequence's wall time):

{table}",
        nproc = run.meta.show("nproc"),
        table = t.finish(),
    ))
}

/// How long each state waited for a quiet host, or what was still busy.
fn quiet_line(run: &Run, s: &Scale) -> Option<String> {
    let m = &run.meta;
    let names = state_names(s);
    let mut parts = Vec::new();
    for (key, name) in ["base", "ports", "running"].iter().zip(&names) {
        if let Some(busy) = m.get(&format!("scale.{key}.not_quiet")) {
            parts.push(format!("{name}: {busy}"));
        } else if let Some(secs) = m.num(&format!("scale.{key}.quiet_s")) {
            parts.push(format!("{name} {secs} s"));
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "Each sequence started once the host was quiet: the Open vSwitch agent below {agent} % of
a CPU in two 2 s windows in a row and ovs-vswitchd's use steady (within {delta} points),
waited for at most {max} s.
Waited: {parts}.",
        agent = m.show("quiet_agent_pct"),
        delta = m.show("quiet_ovs_delta"),
        max = m.show("quiet_max_s"),
        parts = parts.join("; "),
    ))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::report::test_run::{lifecycles, run};

    fn cpu(name: &str, start: u64, end: u64) -> ProcCpu {
        ProcCpu {
            name: name.into(),
            ticks_start: start,
            ticks_end: end,
            seconds: 2.0,
        }
    }

    #[test]
    fn growth_relative_to_the_hosts() {
        let r = run(
            "",
            Scale {
                base: Some(lifecycles(&[300, 340], None)),
                running: Some(lifecycles(&[640, 720], None)),
                base_none: Some(lifecycles(&[200], None)),
                running_none: Some(lifecycles(&[400], None)),
                ..Scale::default()
            },
        );
        let g = growths(&r, ScaleCase::Running).unwrap();
        assert_eq!(g.median, (Some(320.0), Some(680.0)));
        assert_eq!(g.none, Some((Some(200.0), Some(400.0))));
        assert_eq!(g.none_growth, Some(2.0));
        assert_eq!(g.relative_growth, Some(680.0 / 320.0 / 2.0));
        // No `--net none` with the extra ports: nothing to compare with.
        assert!(growths(&r, ScaleCase::Ports).is_none());
    }

    #[test]
    fn cpu_per_state_and_what_is_missing() {
        let mut s = Scale {
            base: Some(lifecycles(&[300], None)),
            running_count: Some(200),
            base_cpu: Some(vec![cpu("ovs-vswitchd", 0, 40), cpu("kuryr", 5, 6)]),
            // The agent restarted meanwhile; kuryr not found.
            running_cpu: Some(vec![
                cpu("ovs-vswitchd", 100, 156),
                cpu("neutron-openvswitch-agent", 90, 10),
            ]),
            ..Scale::default()
        };
        let t = cpu_table(&run("clk_tck=100\nnproc=2\n", Scale::default()), &s).unwrap();
        assert!(t.contains("| process | as it is | 200 containers running |\n"));
        assert!(t.contains("| ovs-vswitchd | 20.0 | 28.0 |\n"));
        assert!(t.contains("| neutron-openvswitch-agent | n/a | n/a |\n"));
        assert!(t.contains("| kuryr | 0.5 | n/a |\n"));
        // Without the clock rate, no percentages.
        let t = cpu_table(&run("", Scale::default()), &s).unwrap();
        assert!(t.contains("| ovs-vswitchd | n/a | n/a |\n"));
        // A run from before the CPU files: no table.
        s.base_cpu = None;
        s.running_cpu = None;
        assert!(cpu_table(&run("clk_tck=100\n", Scale::default()), &s).is_none());
    }

    #[test]
    fn quiet_waits_and_deadlines() {
        let s = Scale {
            running_count: Some(200),
            ..Scale::default()
        };
        let meta = "quiet_agent_pct=10\nquiet_ovs_delta=5\nquiet_max_s=120\n\
            scale.base.quiet_s=4\n\
            scale.running.not_quiet=still busy after 120 s: the agent at 15 % of a CPU\n";
        let line = quiet_line(&run(meta, Scale::default()), &s).unwrap();
        assert!(line.ends_with(
            "Waited: as it is 4 s; 200 containers running: still busy after 120 s: the agent at 15 % of a CPU."
        ));
        assert!(quiet_line(&run("", Scale::default()), &s).is_none());
    }
}
