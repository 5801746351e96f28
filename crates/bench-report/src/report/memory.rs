//! The daemons' resident memory: the burst's peak and the flatness run.

use crate::driver::Driver;
use crate::markdown::{mib, Table};
use crate::measure::Run;

pub fn render(run: &Run) -> String {
    let m = &run.meta;
    let mut t = Table::new(
        &[
            "daemon",
            "peak during the burst",
            &format!("after a warm-up ({} lifecycles)", m.count("warm_n")),
            &format!("after {} more", m.count("flat_n")),
            "growth",
            "peak meanwhile",
        ],
        &[false, true, true, true, true, true],
    );
    for d in [
        Driver::Kuryr,
        Driver::KuryrNoPool,
        Driver::KuryrPool,
        Driver::Upstream,
    ] {
        let Some(r) = run.driver(d) else { continue };
        let Some(peak) = r.burst.as_ref().and_then(|b| b.rss_peak()) else {
            continue;
        };
        let flat = r.flat.as_ref();
        t.row(&[
            d.name(m),
            mib(Some(peak)),
            mib(flat.and_then(|f| f.rss0)),
            mib(flat.and_then(|f| f.rss1)),
            flat.and_then(|f| f.growth())
                .map_or_else(|| "n/a".to_owned(), |g| format!("{g} KiB")),
            mib(flat.and_then(|f| f.rss_peak())),
        ]);
    }
    let mut out = format!(
        "## Daemon memory (VmRSS, sampled every 100 ms)\n\n{}",
        t.finish()
    );
    if let Some(why) = upstream_flat_skipped(run) {
        out.push_str(&format!(
            "\nUpstream's {} more lifecycles were left out: {why}.\n",
            m.count("flat_n")
        ));
    }
    out
}

/// Why upstream's flatness run was left out, from `upstream.flat.skipped` (`quick`, or
/// `budget <estimated s> <budget s>`).
fn upstream_flat_skipped(run: &Run) -> Option<String> {
    let v = run.meta.get("upstream.flat.skipped")?;
    let mut words = v.split_whitespace();
    Some(match words.next() {
        Some("quick") => "not in a --quick run".to_owned(),
        Some("budget") => {
            let mut n = || words.next().and_then(|w| w.parse::<u64>().ok());
            match (n(), n()) {
                (Some(est), Some(budget)) => format!(
                    "it would have taken about {} more minutes, beyond the run's {}-minute budget",
                    est / 60,
                    budget / 60
                ),
                _ => "beyond the run's time budget".to_owned(),
            }
        }
        _ => v.to_owned(),
    })
}
