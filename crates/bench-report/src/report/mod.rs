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
