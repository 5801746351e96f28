//! Neutron requests per container lifecycle, the pools' counters, and what a lifecycle asks
//! Neutron.

use crate::driver::Driver;
use crate::markdown::{num, Table};
use crate::measure::{Lifecycles, Run};
use crate::neutron::request_mix;

pub fn render(run: &Run) -> String {
    let m = &run.meta;
    let mut t = Table::new(
        &[
            "network",
            "per lifecycle (sequential)",
            "on Docker's path",
            "background",
            "per lifecycle (burst)",
            "before it runs",
            "on Docker's path at start",
            "while it runs",
            "at removal",
            "on Docker's path at removal",
        ],
        &[false, true, true, true, true, true, true, true, true, true],
    );
    for (&d, r) in &run.drivers {
        let seq = r.seq.as_ref();
        let split = r.split.as_ref();
        let (on_path, background, start, removal) = if d == Driver::Upstream {
            (
                "all (synchronous)".to_owned(),
                "0".to_owned(),
                num(split.and_then(|s| s.before_per()), 1),
                num(split.and_then(|s| s.removal_per()), 1),
            )
        } else {
            (
                num(seq.and_then(Lifecycles::on_path_per), 1),
                num(seq.and_then(Lifecycles::background_per), 1),
                num(split.and_then(|s| s.on_path_start_per()), 1),
                num(split.and_then(|s| s.on_path_removal_per()), 1),
            )
        };
        t.row(&[
            d.name(m),
            num(seq.and_then(Lifecycles::neutron_per), 1),
            on_path,
            background,
            num(r.burst.as_ref().and_then(|b| b.runs.neutron_per()), 1),
            num(split.and_then(|s| s.before_per()), 1),
            start,
            num(split.and_then(|s| s.during_per()), 1),
            num(split.and_then(|s| s.removal_per()), 1),
            removal,
        ]);
    }
    let mut out = format!(
        "## Neutron API requests per container lifecycle

Counted on Neutron's side (lines of `neutron-access.log`, divided by the containers); for kuryr
also split by `kuryr stats` into those Docker waits for (on its path) and those kuryr makes in
the background (pool refills, deletions). \"Before it runs\": `docker run -d ... sleep 600`,
counted until it returns; \"while it runs\": the next {hold} s (a pool port's owner is written
once its container has held it for `[vif_pool] owner_write_delay`, 2 s: a container gone
sooner costs Neutron nothing); \"at removal\": then `docker rm -f` ({split} containers).
Docker's own networks show what else reached Neutron meanwhile (other users of the shared
stack).

{table}",
        hold = m.count("split_hold"),
        split = m.count("split_n"),
        table = t.finish(),
    );
    out.push_str(&pool_counters(run));
    out
}

/// The pools' counters over each phase, for the daemons with pools.
fn pool_counters(run: &Run) -> String {
    let m = &run.meta;
    let mut t = Table::new(
        &[
            "daemon",
            "phase",
            "containers",
            "hits",
            "misses",
            "ports created",
            "ports recycled",
        ],
        &[false, false, true, true, true, true, true],
    );
    let mut any = false;
    for d in Driver::KURYR {
        let Some(r) = run.driver(d) else { continue };
        let phases = [
            ("seq", r.seq.as_ref().and_then(|p| p.pool), m.count("seq_n")),
            (
                "burst",
                r.burst.as_ref().and_then(|b| b.runs.pool),
                m.count("burst_n"),
            ),
            (
                "split",
                r.split.as_ref().and_then(|s| s.pool),
                m.count("split_n"),
            ),
            (
                "flat",
                r.flat.as_ref().and_then(|f| f.runs.pool),
                m.count("flat_n"),
            ),
        ];
        for (phase, pool, containers) in phases {
            let Some(c) = pool else { continue };
            any = true;
            let phase = match phase {
                "seq" => "sequential",
                "split" => "run -d / rm -f",
                "flat" => "RSS flatness",
                other => other,
            };
            t.row(&[
                d.name(m),
                phase.to_owned(),
                containers.to_string(),
                c.hits.to_string(),
                c.misses.to_string(),
                c.created.to_string(),
                c.recycled.to_string(),
            ]);
        }
    }
    if !any {
        return String::new();
    }
    format!(
        "
The pools' counters (`kuryr pool list --json`) over each phase: a hit takes a free pool
port, a miss makes a port on Docker's path; created and recycled ports are the pool's own work.

{}",
        t.finish()
    )
}

/// Requests per container of the sequential phase, by method and path.
pub fn render_mix(run: &Run) -> String {
    let mut out = String::from(
        "## What a lifecycle asks Neutron

Requests per container in the sequential phase, by method and path (ids, tags and query values
blanked), from Neutron's access log; rarer than one in 20 containers left out. Requests of
other users of the stack during the phase are in there too.

",
    );
    for d in [
        Driver::Kuryr,
        Driver::KuryrNoPool,
        Driver::KuryrPool,
        Driver::Upstream,
    ] {
        // A log that cannot be read failed `Run::read` already, which counted its lines.
        let Ok(Some(log)) = run.dir.text(&format!("{}.seq.neutron.log", d.label())) else {
            continue;
        };
        let mix = request_mix(&log, run.meta.count("seq_n"));
        if mix.is_empty() {
            continue;
        }
        out.push_str(&format!("{}:\n\n```\n", d.name(&run.meta)));
        for (per, kind) in mix {
            out.push_str(&format!("{:>5}  {kind}\n", format!("{per:.1}")));
        }
        out.push_str("```\n\n");
    }
    // The next section follows after one blank line.
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}
