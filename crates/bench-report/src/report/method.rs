//! How the run measured: the containers, the daemons and their configurations, the counts.

use crate::measure::Run;

pub fn render(run: &Run) -> String {
    let m = &run.meta;
    format!(
        "## Method

- Every container is `kuryr/busybox` (made by `scripts/docker` from Debian's busybox-static)
  running `true`; a time is the wall time of the `docker run` client, from its start to its exit.
- kuryr runs from `target/release/kuryr`, one daemon at a time, each with the stack's
  `kuryr.conf` and a plugin name of its own: the default configuration
  (`--plugin-name kuryr-bench-<run>`, no `[vif_pool]` section: whatever kuryr does by default,
  nothing filled beforehand), no pool (`kuryr-bench-nopool-<run>`, `[vif_pool] enabled = false`:
  every container a miss) and the warm pool (`kuryr-bench-pool-<run>`, pools on:
  `ports_pool_min = 5`, `ports_pool_batch = 10`, `ports_pool_update_frequency = 20`,
  `populate_on_network_create = false`); before each phase of the warm pool,
  `kuryr pool populate` tops the pool up to at least as many free ports as the phase starts
  containers, so that every start can be a pool hit (the pool's counters tell).
- Upstream is kuryr-libnetwork {upstream} with its own `kuryr.conf` made from the stack's
  (`scripts/upstream`). Keystone issues {tokens} s tokens during the run: keystoneauth1
  renews a token that expires within 120 s before every use, so with the stack's default 60 s
  tokens upstream would authenticate several times per Neutron request.
- Neutron requests: lines appended to `.cache/stack/logs/neutron-access.log` during a phase,
  counted once the log has been quiet for 2 s. The stack is shared: requests of anyone else
  using it at the same time are counted too (Docker's own networks make none, so their
  column shows that noise).
- RSS: `VmRSS` of the daemon's process (`kuryr serve`, upstream's `kuryr-server`) from
  `/proc/<pid>/status` every 100 ms.
- The numbers and this report are computed from the run folder's raw data by
  `kuryr-bench-report` (`crates/bench-report`, which documents the raw files).
",
        upstream = m.show("upstream"),
        tokens = m.show("tokens"),
    )
}
