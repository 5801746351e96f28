//! One line per phase for `bench/run`'s progress messages, from the same raw data as the
//! report.

use crate::driver::Driver;
use crate::markdown::{int, num};
use crate::measure::{Lifecycles, Run};

/// What phase `phase` of `label` (or of the scale phase: label `scale`, phase `base`,
/// `ports`, `running`, `rss`) measured; `None` when it has no data.
pub fn line(run: &Run, label: &str, phase: &str) -> Option<String> {
    if label == "scale" {
        return scale(run, phase);
    }
    let d = Driver::from_label(label)?;
    let r = run.driver(d);
    let m = &run.meta;
    let text = match phase {
        "seq" => lifecycles("sequential", r?.seq.as_ref()?),
        "burst" => {
            let b = r?.burst.as_ref()?;
            let mut s = format!(
                "burst of {} ({} at a time) in {} s, {} failures",
                m.count("burst_n"),
                m.count("burst_par"),
                num(b.total_s(), 2),
                b.runs.fails
            );
            if let Some(peak) = b.rss_peak() {
                s.push_str(&format!(", daemon peak RSS {peak} KiB"));
            }
            s
        }
        "split" => {
            let s = r?.split.as_ref()?;
            let mut t = format!(
                "Neutron requests before the container runs {}, while it runs {}, at its removal {}",
                num(s.before_per(), 1),
                num(s.during_per(), 1),
                num(s.removal_per(), 1)
            );
            if s.with_stats > 0 {
                t.push_str(&format!(
                    "; on Docker's path at start {}, at removal {}",
                    num(s.on_path_start_per(), 1),
                    num(s.on_path_removal_per(), 1)
                ));
            }
            t
        }
        "net" => {
            let n = r?.net.as_ref()?;
            format!(
                "network create median {} ms, rm {} ms; Neutron requests per create {}, per rm {}; {} failures",
                num(n.create_p50_ms(), 1),
                num(n.rm_p50_ms(), 1),
                num(n.create_requests, 1),
                num(n.rm_requests, 1),
                n.fails
            )
        }
        "flat" => {
            let f = r?.flat.as_ref()?;
            format!(
                "RSS {} KiB after a warm-up, {} KiB after {} more lifecycles",
                int(f.rss0),
                int(f.rss1),
                m.count("flat_n")
            )
        }
        _ => return None,
    };
    Some(format!("{label}: {text}"))
}

fn lifecycles(what: &str, l: &Lifecycles) -> String {
    let mut s = format!(
        "{what} median {} ms, p90 {} ms, {} Neutron requests per container",
        num(l.p50_ms(), 1),
        num(l.p90_ms(), 1),
        num(l.neutron_per(), 1)
    );
    if let Some(on) = l.on_path_per() {
        s.push_str(&format!(" ({} on Docker's path)", num(Some(on), 1)));
    }
    s.push_str(&format!(", {} failures", l.fails));
    s
}

/// A scale state's line with its `--net none` containers (in between kuryr's, or after
/// them in older runs).
fn with_none(run: &Run, mut line: String, none: Option<&Lifecycles>) -> String {
    if let Some(n) = none {
        let when = if run.meta.flag("scale_paired") {
            " in between"
        } else {
            ""
        };
        line.push_str(&format!(
            "; --net none{when}: median {} ms, {} failures",
            num(n.p50_ms(), 1),
            n.fails
        ));
    }
    line
}

fn scale(run: &Run, phase: &str) -> Option<String> {
    let s = run.scale.as_ref()?;
    let text = match phase {
        "base" => with_none(
            run,
            lifecycles("as it is: sequential", s.base.as_ref()?),
            s.base_none.as_ref(),
        ),
        "ports" => lifecycles(
            &format!(
                "{} more ports on {} more networks: sequential",
                int(s.extra_ports),
                int(s.extra_nets)
            ),
            s.ports.as_ref()?,
        ),
        "running" => with_none(
            run,
            lifecycles(
                &format!("{} containers running: sequential", int(s.running_count)),
                s.running.as_ref()?,
            ),
            s.running_none.as_ref(),
        ),
        "rss" => format!(
            "kuryr's RSS {} KiB with no container running, {} KiB with {}: {} KiB per container",
            int(s.rss0),
            int(s.rss1),
            int(s.running_count),
            num(s.rss_per_container_kib(), 1)
        ),
        _ => return None,
    };
    Some(format!("scale: {text}"))
}
