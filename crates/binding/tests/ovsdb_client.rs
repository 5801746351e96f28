#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The OVSDB client's connection handling, and a plug without ovs-vswitchd, against a real
//! ovsdb-server: a private one, with the Open_vSwitch schema, on a socket in a temporary
//! directory, because these tests drop and restart the server (and need one without
//! ovs-vswitchd), which must not disturb the system's ovsdb-server and its other clients
//! (ovs-vswitchd, the Neutron agent).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use kuryr_binding::ovsdb::{self, OvsdbError};
use kuryr_binding::{Error, OvsPort, Ovsdb};
use serde_json::{json, Value};

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// A private ovsdb-server, killed on drop.
struct Server {
    dir: TempDir,
    child: Option<Child>,
}

impl Server {
    fn start(case: &str) -> Server {
        assert!(
            Path::new(SCHEMA).exists(),
            "{SCHEMA} missing: apt-get install openvswitch-switch"
        );
        let dir = TempDir::new(case);
        let db = dir.0.join("conf.db");
        let status = Command::new("ovsdb-tool")
            .args(["create", db.to_str().unwrap(), SCHEMA])
            .status()
            .unwrap();
        assert!(status.success());
        let mut server = Server { dir, child: None };
        server.run();
        server
    }

    fn socket(&self) -> PathBuf {
        self.dir.0.join("db.sock")
    }

    fn ctl(&self) -> PathBuf {
        self.dir.0.join("ovsdb-server.ctl")
    }

    /// Starts the server and waits until its socket accepts connections.
    fn run(&mut self) {
        let child = Command::new("ovsdb-server")
            .arg(format!("--remote=punix:{}", self.socket().display()))
            .arg(format!("--unixctl={}", self.ctl().display()))
            .arg("--no-chdir")
            .arg(format!("--log-file={}", self.dir.0.join("log").display()))
            .arg(self.dir.0.join("conf.db"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ovsdb-server (apt-get install openvswitch-switch)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        // The socket file appears once the server listens on it.
        while !self.socket().exists() {
            assert!(
                Instant::now() < deadline,
                "private ovsdb-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// `ovsdb-server/reconnect`: the server closes every client connection.
    fn drop_clients(&self) {
        let status = Command::new("ovs-appctl")
            .args(["-t", self.ctl().to_str().unwrap(), "ovsdb-server/reconnect"])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// How many client connections the server holds: its connected sockets bound to the
    /// socket's path, in /proc/net/unix (state 03; the listening one is 01).
    fn clients(&self) -> usize {
        let path = self.socket();
        let path = path.to_str().unwrap();
        std::fs::read_to_string("/proc/net/unix")
            .unwrap()
            .lines()
            .skip(1)
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() == 8 && fields[5] == "03" && fields[7] == path
            })
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cur_cfg_select() -> Value {
    json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["cur_cfg"]})
}

#[tokio::test]
async fn one_connection_is_reused() {
    let server = Server::start("reuse");
    let db = Ovsdb::new(server.socket());
    assert_eq!(server.clients(), 0, "connects on first use only");
    for _ in 0..20 {
        db.echo().await.unwrap();
    }
    let select = [cur_cfg_select()];
    let reads = (0..20).map(|_| db.transact(&select));
    for result in futures::future::join_all(reads).await {
        result.unwrap();
    }
    assert_eq!(server.clients(), 1);
}

#[tokio::test]
async fn reads_survive_the_server_dropping_the_connection() {
    let server = Server::start("drop");
    let db = Ovsdb::new(server.socket());
    // Right after the drop, before the client has seen it: a read is resent on a new
    // connection, so none of these fails.
    for _ in 0..10 {
        db.echo().await.unwrap();
        server.drop_clients();
        db.echo().await.unwrap();
        server.drop_clients();
        db.transact(&[cur_cfg_select()]).await.unwrap();
    }
    assert_eq!(server.clients(), 1);
}

#[tokio::test]
async fn a_write_lost_with_the_connection_is_reported_not_resent() {
    let server = Server::start("write");
    let db = Ovsdb::new(server.socket());
    let bump = json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                      "mutations": [["next_cfg", "+=", 1]]});
    // The Open_vSwitch row does not exist in a fresh database; make it.
    db.transact(&[json!({"op": "insert", "table": "Open_vSwitch", "row": {}})])
        .await
        .unwrap();
    let mut lost = 0;
    let mut done = 0;
    for _ in 0..10 {
        db.echo().await.unwrap();
        server.drop_clients();
        match db.transact(std::slice::from_ref(&bump)).await {
            Ok(_) => done += 1,
            Err(OvsdbError::Disconnected { .. }) => lost += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    let results = db
        .transact(&[
            json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]}),
        ])
        .await
        .unwrap();
    let next_cfg = ovsdb::rows(&results[0])[0]["next_cfg"].as_i64().unwrap();
    // Each bump that was answered happened exactly once; a lost one at most once.
    assert!(
        next_cfg >= done && next_cfg <= done + lost,
        "next_cfg {next_cfg}, {done} answered, {lost} lost"
    );
}

#[tokio::test]
async fn the_client_reconnects_after_a_server_restart() {
    let mut server = Server::start("restart");
    let db = Ovsdb::new(server.socket());
    db.echo().await.unwrap();

    server.stop();
    let err = db.echo().await.unwrap_err();
    assert!(matches!(err, OvsdbError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains("is Open vSwitch running?"),
        "{err}"
    );

    server.run();
    db.echo().await.unwrap();
    db.transact(&[cur_cfg_select()]).await.unwrap();
    assert_eq!(server.clients(), 1);
}

#[tokio::test]
async fn a_request_without_answer_times_out() {
    let server = Server::start("timeout");
    let db = Ovsdb::new(server.socket()).with_timeout(Duration::from_millis(200));
    db.transact(&[json!({"op": "insert", "table": "Open_vSwitch", "row": {}})])
        .await
        .unwrap();
    // A wait that never holds, with no server-side timeout: only the client's limit ends it.
    let never = json!({"op": "wait", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"],
                       "until": "==", "rows": [{"next_cfg": -1}]});
    let started = Instant::now();
    let err = db.transact(&[never]).await.unwrap_err();
    assert!(matches!(err, OvsdbError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The connection is still usable afterwards; the late answer (if any) is dropped.
    db.echo().await.unwrap();
}

#[tokio::test]
async fn without_ovs_vswitchd_a_plug_times_out_and_is_undone() {
    let server = Server::start("novswitchd");
    let db = Ovsdb::new(server.socket());
    // A database as ovs-ctl leaves it, with one bridge, but no ovs-vswitchd to apply it.
    db.transact(&[
        json!({"op": "insert", "table": "Bridge", "uuid-name": "br", "row": {"name": "brx"}}),
        json!({"op": "insert", "table": "Open_vSwitch",
               "row": {"bridges": ["named-uuid", "br"]}}),
    ])
    .await
    .unwrap();

    let started = Instant::now();
    let err = db
        .add_port(&OvsPort {
            bridge: "brx",
            name: "kxtap",
            iface_id: "port-1",
            mac: [0xfa, 0x16, 0x3e, 0, 0, 1],
            vm_uuid: "ep",
        })
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::VswitchdTimeout { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "ovs-vswitchd did not attach kxtap to bridge brx within 5 s: is ovs-vswitchd running \
         (`ovs-ctl status`)? See its log (/var/log/openvswitch/ovs-vswitchd.log)"
    );
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(7),
        "{waited:?}"
    );
    // The port this plug created is gone again.
    let results = db
        .transact(&[
            json!({"op": "select", "table": "Port", "where": [], "columns": ["name"]}),
            json!({"op": "select", "table": "Interface", "where": [], "columns": ["name"]}),
            json!({"op": "select", "table": "Bridge", "where": [], "columns": ["ports"]}),
        ])
        .await
        .unwrap();
    assert!(ovsdb::rows(&results[0]).is_empty(), "{results:?}");
    assert!(ovsdb::rows(&results[1]).is_empty(), "{results:?}");
    assert_eq!(ovsdb::rows(&results[2])[0]["ports"], json!(["set", []]));
}
