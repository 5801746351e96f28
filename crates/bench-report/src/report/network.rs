//! `docker network create` + `docker network rm`: times and Neutron requests.

use crate::driver::Driver;
use crate::markdown::{num, Table};
use crate::measure::Run;
use crate::stats::ratio;

pub fn render(run: &Run) -> String {
    let m = &run.meta;
    let mut t = Table::new(
        &[
            "driver",
            "create ms",
            "rm ms",
            "create × upstream",
            "Neutron requests per create",
            "per rm",
            "on Docker's path per create / rm",
            "failures",
        ],
        &[false, true, true, true, true, true, true, true],
    );
    let net = |d| run.driver(d).and_then(|r| r.net.as_ref());
    let up = net(Driver::Upstream).and_then(|n| n.create_p50_ms());
    for d in [
        Driver::UserBridge,
        Driver::Kuryr,
        Driver::KuryrNoPool,
        Driver::KuryrPool,
        Driver::Upstream,
    ] {
        let Some(n) = net(d) else { continue };
        let on_path = if d.is_kuryr() {
            format!("{} / {}", num(n.create_on_path, 1), num(n.rm_on_path, 1))
        } else {
            "n/a".to_owned()
        };
        t.row(&[
            d.name(m),
            num(n.create_p50_ms(), 1),
            num(n.rm_p50_ms(), 1),
            num(ratio(n.create_p50_ms(), up), 2),
            num(n.create_requests, 1),
            num(n.rm_requests, 1),
            on_path,
            n.fails.to_string(),
        ]);
    }
    format!(
        "## `docker network create` + `docker network rm`

Median of {n}, each on its own 10.205.x.0/24 (`docker network create -d <plugin> --ipam-driver <plugin>
--subnet 10.205.x.0/24 --gateway 10.205.x.1 <name>`; the user-defined bridge without `-d`). Every
network of the bench has `--gateway`: upstream needs it (kuryr does not). Neutron requests:
the access-log lines from the start of `docker network create` until the log was quiet, then
likewise from `docker network rm` on, averaged over the networks (the times are measured
with that wait in between).

{table}",
        n = m.count("net_n"),
        table = t.finish(),
    )
}
