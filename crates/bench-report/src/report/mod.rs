//! `BENCHMARKS.md` from one run's measurements: each section in a module of its own, in the
//! report's order.

mod calls;
mod intro;
mod lifecycle;
mod memory;
mod method;
mod network;
mod requests;
mod scale;
mod targets;

use crate::measure::Run;

/// The whole report.
pub fn render(run: &Run) -> String {
    [
        intro::render(run),
        targets::render(run),
        lifecycle::render(run),
        requests::render(run),
        network::render(run),
        memory::render(run),
        scale::render(run),
        calls::render(run),
        requests::render_mix(run),
        method::render(run),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join("\n")
}

/// The phase names of the tables: `sequential 30`.
fn phase_name(run: &Run, phase: &str) -> String {
    let m = &run.meta;
    match phase {
        "seq" => format!("sequential {}", m.count("seq_n")),
        "burst" => format!("burst {}", m.count("burst_n")),
        "split" => "run -d / rm -f".to_owned(),
        "flat" => format!("sequential {}", m.count("flat_n")),
        other => other.to_owned(),
    }
}

/// Runs made up for the sections' unit tests.
#[cfg(test)]
mod test_run {
    use std::collections::BTreeMap;

    use crate::calls::{NeutronRequests, Stats};
    use crate::measure::{Lifecycles, Run, Scale};
    use crate::meta::Meta;
    use crate::raw::RunDir;

    pub fn run(meta: &str, scale: Scale) -> Run {
        Run {
            dir: RunDir::new("run"),
            meta: Meta::parse(meta),
            drivers: BTreeMap::new(),
            scale: Some(scale),
        }
    }

    /// Containers of these times (ms), with `on_path` Neutron requests on Docker's path
    /// over them.
    pub fn lifecycles(ms: &[u64], on_path: Option<u64>) -> Lifecycles {
        Lifecycles {
            us: ms.iter().map(|m| m * 1000).collect(),
            containers: ms.len() as u64,
            stats: on_path.map(|n| Stats {
                neutron_requests: Some(NeutronRequests {
                    on_path: Some(n),
                    background: Some(0),
                }),
                ..Stats::default()
            }),
            ..Lifecycles::default()
        }
    }
}
