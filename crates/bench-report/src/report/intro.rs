//! The title, what was run where and when, and the machine.

use crate::measure::Run;

pub fn render(run: &Run) -> String {
    let m = &run.meta;
    let minutes = m.num("duration_s").map(|s| (s + 30) / 60);
    let took = crate::markdown::int(minutes);
    let quick = if m.flag("quick") {
        " (**--quick**: fewer repetitions)"
    } else {
        ""
    };
    let folder = run
        .dir
        .path()
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let memory = m.num("memory_kib").map_or_else(
        || "?".to_owned(),
        |k| format!("{:.1} GiB", k as f64 / 1_048_576.0),
    );
    format!(
        "# Benchmarks

kuryr (`kuryr serve`, this repository) against Docker's own networks and the upstream Python
kuryr-libnetwork, measured side by side in one run of `bench/run` on one machine: the local
OpenStack of `scripts/stack` (Keystone, Neutron with ML2/Open vSwitch and its agent), the
Docker 20.10 engine of `scripts/docker` and upstream's daemon of `scripts/upstream`. One
network is measured at a time.

Run {date}, {kuryr}; took {took} min{quick}.
Reproduce with `bench/run` (about {took} minutes; `bench/run --quick` for a short check);
raw data of every measurement in `.cache/bench/{folder}/`, from which
`bench/run --report .cache/bench/{folder}` writes this report again.

## Machine

| | |
| --- | --- |
| CPUs (nproc) | {nproc} × {cpu} |
| memory | {memory} |
| kernel | {kernel} |
| load average at the start | {loadavg} |
| Docker | {docker} |
| Neutron | {neutron} (ML2/OVS, userspace datapath, openvswitch firewall), Keystone {keystone} with {tokens} s tokens |
| upstream | kuryr-libnetwork {upstream} (`scripts/upstream`) |
",
        date = m.show("date"),
        kuryr = m.show("kuryr"),
        nproc = m.show("nproc"),
        cpu = m.show("cpu"),
        kernel = m.show("kernel"),
        loadavg = m.show("loadavg"),
        docker = m.show("docker"),
        neutron = m.show("neutron"),
        keystone = m.show("keystone"),
        tokens = m.show("tokens"),
        upstream = m.show("upstream"),
    )
}
