//! The chaos suite: containers churned through the real Docker engine on a kuryr network
//! while Neutron misbehaves and the daemon is killed. Between `kuryr serve` and the real
//! Neutron sits the fault-injecting proxy (`kuryr-faultproxy`, a test tool: Neutron cannot
//! be made to fail on cue): port requests answered 500 or acted on with the answer lost, and
//! one outage of the whole API; the real Neutron API server is restarted once; the daemon gets SIGKILL at random moments and is started
//! again at once. Then every container and the network are removed through Docker and the
//! suite checks that nothing of kuryr's is left in Neutron, on the host or in Open vSwitch,
//! that no address was handed out twice, that every running container's interface matched
//! its port, and that the daemon never panicked. Each run prints one summary line.
//!
//! It restarts the shared Neutron, so it runs alone: `#[ignore]`d, and run by `scripts/test`
//! after the other tests (`cargo test -p kuryr --test chaos -- --ignored --nocapture`).
//!
//! Sized for CI by default; `KURYR_CHAOS_LIFECYCLES` and `KURYR_CHAOS_KILLS` make it longer
//! (`scripts/soak`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use docker_harness::{
    host_link_exists, random_below, stack_config_with, with_kuryr_unstarted, Kuryr,
};
use kuryr_faultproxy::{Action, FaultProxy, Rule};
use kuryr_openstack::neutron::Filters;
use serde_json::Value;

/// Containers started at once.
const WORKERS: usize = 4;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The port faults of the whole run: 5xx and lost answers on every kind of port request.
fn port_faults() -> Vec<Rule> {
    vec![
        Rule::new("POST", "/v2.0/ports", Action::Status { status: 500 }).sometimes(0.08),
        Rule::new("POST", "/v2.0/ports", Action::Lost).sometimes(0.05),
        Rule::new("PUT", "/v2.0/ports/", Action::Status { status: 503 }).sometimes(0.08),
        Rule::new("DELETE", "/v2.0/ports/", Action::Status { status: 500 }).sometimes(0.1),
        Rule::new("DELETE", "/v2.0/ports/", Action::Lost).sometimes(0.05),
        Rule::new("GET", "/v2.0/ports", Action::Status { status: 502 }).sometimes(0.03),
    ]
}

/// The runs share the host's Neutron and Docker engine: one at a time.
fn one_at_a_time() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// What a run saw; every count but the first five must be zero.
#[derive(Debug, Default)]
struct Tally {
    lifecycles: AtomicUsize,
    started: AtomicUsize,
    failed: AtomicUsize,
    kills: AtomicUsize,
    outages: AtomicUsize,
    neutron_restarts: AtomicUsize,
    duplicates: Mutex<Vec<String>>,
    mismatches: Mutex<Vec<String>>,
    lost: Mutex<Vec<String>>,
}

/// The state of the churn: running containers by address, every port seen.
#[derive(Default)]
struct Seen {
    live: Mutex<HashMap<String, String>>,
    ports: Mutex<HashSet<String>>,
}

fn kuryr_conf(k: &Kuryr, proxy: &FaultProxy, pools: bool) -> PathBuf {
    let mut conf = format!(
        "[neutron]\nendpoint_override = {}\nretry_timeout = 8\n\
         [DEFAULT]\nreconcile_interval = 10\norphan_min_age = 30\n",
        proxy.url()
    );
    if pools {
        conf.push_str(
            "[vif_pool]\nenabled = true\nports_pool_min = 2\nports_pool_batch = 4\n\
             ports_pool_update_frequency = 2\n",
        );
    } else {
        conf.push_str("[vif_pool]\nenabled = false\n");
    }
    stack_config_with(&k.plugin, &conf)
}

fn plugin_socket(k: &Kuryr) -> PathBuf {
    PathBuf::from(format!("/run/docker/plugins/{}.sock", k.plugin))
}

/// The ports of `network_id` holding `ip`, asked of the real Neutron until it answers (it
/// may be restarting).
async fn ports_holding(
    k: &Kuryr,
    network_id: &str,
    ip: &str,
) -> Vec<kuryr_openstack::neutron::Port> {
    let filters = Filters::new()
        .eq("network_id", network_id)
        .eq("fixed_ips", format!("ip_address={ip}"));
    let started = Instant::now();
    loop {
        match k.neutron.ports().list(&filters).await {
            Ok(ports) => return ports,
            Err(_) if started.elapsed() < NEUTRON_BACK_WITHIN => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("Neutron did not answer within {NEUTRON_BACK_WITHIN:?}: {e}"),
        }
    }
}

/// How long the real Neutron may take to come back from a restart on this machine.
const NEUTRON_BACK_WITHIN: Duration = Duration::from_secs(180);

/// The real Neutron API server stopped and started again (`scripts/stack`), while kuryr
/// keeps serving: its connections are refused, then answered by a new process.
async fn restart_neutron() {
    let stack = docker_harness::repo_root().join("scripts/stack");
    tokio::task::spawn_blocking(move || {
        for action in ["stop", "start"] {
            let status = std::process::Command::new(&stack)
                .args([action, "neutron"])
                .stdin(std::process::Stdio::null())
                .status()
                .expect("run scripts/stack");
            assert!(status.success(), "scripts/stack {action} neutron failed");
        }
    })
    .await
    .unwrap();
}

/// One container's life: started, checked against Neutron, removed.
async fn lifecycle(k: &Kuryr, net: &str, network_id: &str, i: usize, tally: &Tally, seen: &Seen) {
    let name = k.name(&format!("c{i}"));
    let image = docker_harness::image();
    let out = k
        .docker(&[
            "run", "-d", "--name", &name, "--net", net, &image, "sleep", "600",
        ])
        .await;
    tally.lifecycles.fetch_add(1, Ordering::SeqCst);
    if !out.status.success() {
        tally.failed.fetch_add(1, Ordering::SeqCst);
        let _ = k.docker(&["rm", "-f", &name]).await;
        return;
    }
    tally.started.fetch_add(1, Ordering::SeqCst);
    let inspect = k
        .docker(&["inspect", "--format", "{{json .}}", &name])
        .await;
    let info: Value = serde_json::from_slice(&inspect.stdout).unwrap_or_default();
    let attached = &info["NetworkSettings"]["Networks"][net];
    let ip = attached["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mac = attached["MacAddress"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let endpoint = attached["EndpointID"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if info["State"]["Running"] != true || ip.is_empty() {
        tally.lost.lock().unwrap().push(format!(
            "{name}: started but not running on {net}: {attached}"
        ));
    } else {
        if let Some(other) = seen.live.lock().unwrap().insert(ip.clone(), name.clone()) {
            tally
                .duplicates
                .lock()
                .unwrap()
                .push(format!("{ip} held by {other} and {name}"));
        }
        // The container's interface is its Neutron port (found by address: a pool port
        // carries its endpoint's tags only after owner_write_delay).
        let ports = ports_holding(k, network_id, &ip).await;
        match ports.as_slice() {
            [port] => {
                seen.ports.lock().unwrap().insert(port.id.clone());
                let same_ip = port.fixed_ips.iter().any(|f| f.ip_address == ip);
                if !same_ip || !port.mac_address.eq_ignore_ascii_case(&mac) {
                    tally.mismatches.lock().unwrap().push(format!(
                        "{name}: {ip} {mac} in Docker, port {} has {:?} {}",
                        port.id, port.fixed_ips, port.mac_address
                    ));
                }
            }
            other => tally.mismatches.lock().unwrap().push(format!(
                "{name} (endpoint {endpoint}): {} Neutron ports hold {ip}",
                other.len()
            )),
        }
    }
    let _ = k.docker(&["rm", "-f", &name]).await;
    let mut live = seen.live.lock().unwrap();
    if live.get(&ip) == Some(&name) {
        live.remove(&ip);
    }
}

/// SIGKILL of the daemon, and a new one at once.
async fn kill_and_restart(k: &Kuryr, conf: &std::path::Path) {
    {
        let mut daemon = k.daemon.lock().unwrap();
        if let Some(d) = daemon.as_mut() {
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
    }
    k.serve_with(conf, &plugin_socket(k), false).await;
}

/// Poll until `f` holds, for at most `within`; whether it did.
async fn settles<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if f().await {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn chaos(test: &'static str, cidr: &'static str, pools: bool) {
    let _alone = one_at_a_time().lock().await;
    let lifecycles = setting("KURYR_CHAOS_LIFECYCLES", 100);
    let kills = setting("KURYR_CHAOS_KILLS", 5);
    with_kuryr_unstarted(test, &[cidr], move |k| async move {
        let neutron_url: url::Url = std::env::var("KURYR_STACK_NEUTRON_URL")
            .expect("KURYR_STACK_NEUTRON_URL: run eval \"$(scripts/stack env)\"")
            .parse()
            .unwrap();
        let proxy = FaultProxy::start(neutron_url).await.unwrap();
        let conf = kuryr_conf(&k, &proxy, pools);
        k.serve_with(&conf, &plugin_socket(&k), false).await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network_id = k.network_of(&docker_id).await.id;

        let tally = Arc::new(Tally::default());
        let seen = Arc::new(Seen::default());
        let next = Arc::new(AtomicUsize::new(0));
        proxy.set_rules(port_faults());
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..WORKERS {
            let (k, net, network_id, tally, seen, next) = (
                k.clone(),
                net.clone(),
                network_id.clone(),
                tally.clone(),
                seen.clone(),
                next.clone(),
            );
            workers.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= lifecycles {
                        return;
                    }
                    lifecycle(&k, &net, &network_id, i, &tally, &seen).await;
                }
            });
        }
        // Kills spread over the run, each at a random moment of its stretch; the outage
        // half-way.
        let mut outage_done = false;
        for n in 1..=kills {
            let due = n * lifecycles / (kills + 1);
            while tally.lifecycles.load(Ordering::SeqCst) < due {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(random_below(1500))).await;
            kill_and_restart(&k, &conf).await;
            tally.kills.fetch_add(1, Ordering::SeqCst);
            if n == 1 {
                restart_neutron().await;
                tally.neutron_restarts.fetch_add(1, Ordering::SeqCst);
            }
            if !outage_done && n * 2 >= kills {
                outage_done = true;
                let mut rules = vec![Rule::new("", "/v2.0/", Action::Down)];
                rules.extend(port_faults());
                proxy.set_rules(rules);
                tokio::time::sleep(Duration::from_secs(6)).await;
                proxy.set_rules(port_faults());
                tally.outages.fetch_add(1, Ordering::SeqCst);
            }
        }
        while let Some(done) = workers.join_next().await {
            done.unwrap();
        }
        let churn = started.elapsed();

        // Everything goes through Docker, with the faults still on.
        k.remove_network(&net).await;
        let faults = proxy.stats().total_faults();
        proxy.clear();

        let mut leaks = Vec::new();
        let gone = settles(Duration::from_secs(120), || async {
            k.networks_of(&docker_id).await.is_empty() && k.ports_on(&network_id).await.is_empty()
        })
        .await;
        if !gone {
            leaks.push(format!(
                "Neutron network {network_id} or its ports: {:#?}",
                k.ports_on(&network_id).await
            ));
        }
        let ports: Vec<String> = seen.ports.lock().unwrap().iter().cloned().collect();
        for id in &ports {
            if k.neutron.ports().get_opt(id).await.unwrap().is_some() {
                leaks.push(format!("port {id}"));
            }
        }
        let ports_ref = &ports;
        let host_clean = settles(Duration::from_secs(30), || async move {
            ports_ref
                .iter()
                .all(|id| !host_link_exists(&format!("tap{}", &id[..11])))
        })
        .await;
        if !host_clean {
            for id in &ports {
                let tap = format!("tap{}", &id[..11]);
                if host_link_exists(&tap) {
                    leaks.push(format!("veth {tap}"));
                }
            }
        }
        let ovs = std::process::Command::new("ovs-vsctl")
            .args(["--bare", "--columns=external_ids", "find", "Interface", "external_ids:owner=kuryr"])
            .output()
            .expect("ovs-vsctl");
        let ovs = String::from_utf8_lossy(&ovs.stdout);
        for id in &ports {
            if ovs.contains(id.as_str()) {
                leaks.push(format!("Open vSwitch interface of port {id}"));
            }
        }
        let pool_name = format!("kuryrPool-{cidr}");
        let pools_left = k
            .neutron
            .subnetpools()
            .list(&Filters::new().eq("name", pool_name.as_str()))
            .await
            .unwrap();
        if !pools_left.is_empty() {
            leaks.push(format!("subnetpool {pool_name}"));
        }
        // The reconciler agrees: nothing of this run is an orphan (others are shown).
        let report = k
            .gc(&["--dry-run", "--min-age", "0", "--confirm-after", "1"])
            .await;
        for orphan in report["orphans"].as_array().cloned().unwrap_or_default() {
            let resource = orphan["resource"].as_str().unwrap_or_default();
            let ours = ports.iter().any(|id| resource == id || resource == format!("tap{}", &id[..11]));
            if ours {
                leaks.push(format!("kuryr gc finds {orphan}"));
            } else {
                println!("chaos: kuryr gc --dry-run also reports {orphan}");
            }
        }
        let log = k.log_text();
        let panics = log.matches("panicked").count();

        let duplicates = tally.duplicates.lock().unwrap().clone();
        let mismatches = tally.mismatches.lock().unwrap().clone();
        let lost = tally.lost.lock().unwrap().clone();
        println!(
            "chaos: pools={} lifecycles={} started={} failed={} kills={} faults={faults} \
             outages={} neutron_restarts={} leaks={} lost={} duplicates={} mismatches={} \
             panics={panics} churn={:.0?}",
            if pools { "on" } else { "off" },
            tally.lifecycles.load(Ordering::SeqCst),
            tally.started.load(Ordering::SeqCst),
            tally.failed.load(Ordering::SeqCst),
            tally.kills.load(Ordering::SeqCst),
            tally.outages.load(Ordering::SeqCst),
            tally.neutron_restarts.load(Ordering::SeqCst),
            leaks.len(),
            lost.len(),
            duplicates.len(),
            mismatches.len(),
            churn,
        );
        assert!(leaks.is_empty(), "left behind: {leaks:#?}");
        assert!(lost.is_empty(), "lost containers: {lost:#?}");
        assert!(duplicates.is_empty(), "addresses handed out twice: {duplicates:#?}");
        assert!(mismatches.is_empty(), "interfaces that were not their port: {mismatches:#?}");
        assert_eq!(panics, 0, "the daemon panicked:\n{log}");
        assert!(tally.kills.load(Ordering::SeqCst) >= kills.min(1));
        assert_eq!(tally.neutron_restarts.load(Ordering::SeqCst), usize::from(kills > 0));
        assert!(faults > 0, "the proxy injected no fault");
        let started = tally.started.load(Ordering::SeqCst);
        assert!(
            started * 2 >= lifecycles,
            "only {started} of {lifecycles} containers started: the faults must slow kuryr down, not stop it"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the shared Neutron; scripts/test runs it alone, printing its summary"]
async fn churn_under_faults_and_kills_leaves_nothing() {
    chaos("chaos", "10.207.1.0/24", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the shared Neutron; scripts/test runs it alone, printing its summary"]
async fn churn_under_faults_and_kills_leaves_nothing_with_pools() {
    chaos("chaos-pools", "10.207.2.0/24", true).await;
}
