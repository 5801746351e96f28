//! The daemon watched from outside: `[metrics] bind_address` serves Prometheus metrics
//! (scraped here after a network and a container were made through the real Docker engine
//! and Neutron), `/healthz` and `/readyz`; `--log-format json` (here through
//! `KURYR_LOG_FORMAT`) writes one JSON object per line naming each call, its Docker ids and
//! the Neutron request ids it sent, with no secret in any line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use docker_harness::*;
use serde_json::Value;

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(url: &str) -> (u16, String, String) {
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, kind, response.text().await.unwrap())
}

/// The value of the sample `name{labels}` in an OpenMetrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_scraped_and_logs_are_json_lines() {
    const CIDR: &str = "10.212.1.0/24";
    with_kuryr_unstarted("telemetry", &[CIDR], |k| async move {
        let port = free_port();
        let conf = stack_config_with(
            &k.plugin,
            &format!("[metrics]\nbind_address = 127.0.0.1:{port}\n"),
        );
        let socket = PathBuf::from(format!("/run/docker/plugins/{}.sock", k.plugin));
        let from = k.log_text().len();
        k.serve_with_env(&conf, &socket, false, &[("KURYR_LOG_FORMAT", "json")])
            .await;
        let base = format!("http://127.0.0.1:{port}");

        let (status, _, body) = get(&format!("{base}/healthz")).await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let started = Instant::now();
        while get(&format!("{base}/readyz")).await.0 != 200 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "/readyz says ready once Neutron is usable"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let net = k.name("net");
        let docker_net = k.create_network(&net, &["--subnet", CIDR]).await;
        let c = k.name("c");
        k.run(&c, &["--net", &net]).await;
        let endpoint = k.attachment(&c, &net).await.endpoint_id;

        let (status, kind, text) = get(&format!("{base}/metrics")).await;
        assert_eq!(status, 200);
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        for call in [
            "NetworkDriver.CreateNetwork",
            "NetworkDriver.CreateEndpoint",
            "NetworkDriver.Join",
            "IpamDriver.RequestPool",
        ] {
            let series = format!(r#"kuryr_plugin_calls_total{{call="{call}",outcome="ok"}}"#);
            assert_eq!(sample(&text, &series), Some(1.0), "{series} in:\n{text}");
            let timed = format!(r#"kuryr_plugin_call_seconds_count{{call="{call}"}}"#);
            assert_eq!(sample(&text, &timed), Some(1.0), "{timed} in:\n{text}");
        }
        let created_ports = text
            .lines()
            .filter(|l| {
                l.starts_with(r#"kuryr_openstack_requests_total{service="neutron",method="POST",resource="ports",status="201"}"#)
            })
            .count();
        assert_eq!(created_ports, 1, "port creations counted:\n{text}");
        assert_eq!(sample(&text, "kuryr_ready"), Some(1.0), "{text}");
        assert!(
            sample(&text, "kuryr_resident_memory_bytes").unwrap_or(0.0) > 1e6,
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics ends with # EOF");

        // Every line the daemon logged is a JSON object (its start-up banner aside); the
        // container's CreateEndpoint names its ids and the Neutron requests it sent.
        let log = k.log_text();
        let lines: Vec<Value> = log[from..]
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(!lines.is_empty(), "JSON lines in:\n{log}");
        let answered = lines
            .iter()
            .find(|l| {
                l["message"] == "answered"
                    && l["span"]["call"] == "NetworkDriver.CreateEndpoint"
                    && l["span"]["endpoint"] == endpoint.as_str()
            })
            .unwrap_or_else(|| panic!("CreateEndpoint's answer, with its ids, in:\n{log}"));
        assert_eq!(answered["span"]["network"], docker_net.as_str());
        assert_eq!(answered["level"], "INFO");
        let ids = answered["neutron_requests"].as_str().unwrap_or("");
        assert!(
            !ids.is_empty() && ids.split(',').all(|id| id.starts_with("req-")),
            "the Neutron request ids of the call: {answered}"
        );
        let config_text = std::fs::read_to_string(&conf).unwrap();
        for secret in config_text
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.trim().contains("password"))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
        {
            assert!(!log.contains(secret), "a password in the log");
        }
    })
    .await;
}
