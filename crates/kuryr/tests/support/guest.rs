//! A QEMU guest of `scripts/vm` (Debian's kernel, with 802.1Q, macvlan and ipvlan), driven
//! through its QEMU guest agent: `guest-exec` runs a program with its arguments, no shell
//! involved, and gives back its exit status and output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The repository's `scripts/vm`.
fn vm_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/vm")
}

/// How to bring a guest's eth0 onto Neutron: the VM's port, its MAC, and the Open vSwitch
/// bridge its tap goes into (br-int, or a trunk bridge for a trunk's parent).
pub struct Nic<'a> {
    pub port_id: &'a str,
    pub mac: &'a str,
    pub bridge: &'a str,
}

/// A program's end in the guest.
#[derive(Debug)]
pub struct Output {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

pub struct Guest {
    pub name: String,
    agent: PathBuf,
    console_log: PathBuf,
    /// Where the machine reaches the guest's `kuryr_uri` (QEMU's forwarded port).
    pub kuryr: SocketAddr,
}

async fn vm(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(vm_script())
        .args(args)
        .output()
        .await
        .expect("run scripts/vm")
}

impl Guest {
    /// Boot guest `name` (`scripts/vm up`) with this kuryr binary, its eth0 on `nic`, and
    /// with `docker` this machine's Docker engine (`docker-up` starts it).
    pub async fn up(name: &str, nic: &Nic<'_>, docker: bool) -> Guest {
        let kuryr = env!("CARGO_BIN_EXE_kuryr");
        let mut args = vec![
            "up",
            name,
            "--mac",
            nic.mac,
            "--bridge",
            nic.bridge,
            "--iface-id",
            nic.port_id,
            "--kuryr",
            kuryr,
        ];
        if docker {
            args.push("--docker");
        }
        let up = vm(&args).await;
        assert!(
            up.status.success(),
            "scripts/vm up {name} failed (the guest needs qemu-system-x86, Debian's \
             linux-image-amd64 and qemu-guest-agent: scripts/install-deps installs them):\n{}",
            String::from_utf8_lossy(&up.stderr)
        );
        let env = vm(&["env", name]).await;
        let env = String::from_utf8_lossy(&env.stdout).into_owned();
        let value = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {key}=")))
                .unwrap_or_else(|| panic!("scripts/vm env {name} has no {key}: {env}"))
                .to_owned()
        };
        let port: u16 = value("KURYR_VM_PORT").parse().unwrap();
        Guest {
            name: name.to_owned(),
            agent: value("KURYR_VM_QGA").into(),
            console_log: value("KURYR_VM_CONSOLE_LOG").into(),
            kuryr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Power the guest off and remove its tap (`scripts/vm down`).
    pub async fn down(name: &str) {
        let _ = vm(&["down", name]).await;
    }

    /// What the guest's serial console printed (its boot, and kernel messages since).
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.console_log).unwrap_or_default()
    }

    /// Run `argv` in the guest, with `input` on its stdin; its exit status and output.
    pub async fn exec_with_input(&self, argv: &[&str], input: &[u8]) -> Output {
        let mut agent = Agent::connect(&self.agent).await;
        let mut arguments = json!({"path": argv[0], "arg": &argv[1..], "capture-output": true});
        if !input.is_empty() {
            arguments["input-data"] = base64::engine::general_purpose::STANDARD
                .encode(input)
                .into();
        }
        let pid = agent.call("guest-exec", arguments).await["pid"].clone();
        let started = Instant::now();
        loop {
            let status = agent.call("guest-exec-status", json!({"pid": pid})).await;
            if status["exited"] == true {
                let text = |key: &str| {
                    let data = status[key].as_str().unwrap_or("");
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .unwrap();
                    String::from_utf8_lossy(&bytes).into_owned()
                };
                let code = status["exitcode"]
                    .as_i64()
                    .unwrap_or_else(|| 128 + status["signal"].as_i64().unwrap_or(0));
                return Output {
                    code,
                    stdout: text("out-data"),
                    stderr: text("err-data"),
                };
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{argv:?} still runs in guest {} after 120 s",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn exec(&self, argv: &[&str]) -> Output {
        self.exec_with_input(argv, &[]).await
    }

    /// Run `argv` in the guest; it must succeed. Its stdout.
    pub async fn run(&self, argv: &[&str]) -> String {
        let out = self.exec(argv).await;
        assert_eq!(
            out.code, 0,
            "{argv:?} failed in guest {}: {}{}",
            self.name, out.stdout, out.stderr
        );
        out.stdout
    }

    /// Start `argv` in the guest without waiting for it (a daemon), with this environment.
    pub async fn start(&self, argv: &[&str], env: &[&str]) {
        let mut agent = Agent::connect(&self.agent).await;
        agent
            .call(
                "guest-exec",
                json!({"path": argv[0], "arg": &argv[1..], "env": env}),
            )
            .await;
    }

    /// Write `content` to `path` in the guest, readable by root only (from its first byte:
    /// the file is made 0600 before `dd` writes into it).
    pub async fn write_file(&self, path: &str, content: &str) {
        self.run(&["/bin/rm", "-f", path]).await;
        self.run(&["/bin/touch", path]).await;
        self.run(&["/bin/chmod", "0600", path]).await;
        let of = format!("of={path}");
        let out = self
            .exec_with_input(&["/bin/dd", &of], content.as_bytes())
            .await;
        assert_eq!(out.code, 0, "writing {path} in the guest: {}", out.stderr);
    }

    /// Whether a ping from namespace `ns` (or the guest itself, for `None`) gets an answer
    /// from `target` within `within`.
    pub async fn pings(&self, ns: Option<&str>, target: &str, within: Duration) -> bool {
        let started = Instant::now();
        let mut argv = Vec::new();
        if let Some(ns) = ns {
            argv.extend(["/usr/sbin/ip", "netns", "exec", ns]);
        }
        argv.extend(["/bin/ping", "-c", "1", "-W", "1", target]);
        loop {
            if self.exec(&argv).await.code == 0 {
                return true;
            }
            if started.elapsed() >= within {
                return false;
            }
            // The guest has one emulated CPU: leave it to the packets between tries.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// A link of the guest's root namespace (`ip -j link show`), if there is one.
    pub async fn link(&self, name: &str) -> Option<Value> {
        let out = self
            .exec(&["/usr/sbin/ip", "-d", "-j", "link", "show", "dev", name])
            .await;
        if out.code != 0 {
            return None;
        }
        let links: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
        links.into_iter().next()
    }
}

/// One connection to the guest agent's socket.
struct Agent {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl Agent {
    /// Connected, past any answers an earlier client left unread (guest-sync).
    async fn connect(socket: &Path) -> Agent {
        let stream = UnixStream::connect(socket)
            .await
            .unwrap_or_else(|e| panic!("the guest agent's socket {}: {e}", socket.display()));
        let (read, writer) = stream.into_split();
        let mut agent = Agent {
            reader: BufReader::new(read),
            writer,
        };
        let id = u64::from(std::process::id()) << 32 | u64::from(super::next());
        agent.send("guest-sync", json!({ "id": id })).await;
        while agent.answer().await.get("return") != Some(&json!(id)) {}
        agent
    }

    async fn send(&mut self, command: &str, arguments: Value) {
        let mut line =
            serde_json::to_vec(&json!({"execute": command, "arguments": arguments})).unwrap();
        line.push(b'\n');
        self.writer.write_all(&line).await.unwrap();
    }

    async fn answer(&mut self) -> Value {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(60), self.reader.read_line(&mut line))
            .await
            .expect("the guest agent answered within 60 s")
            .unwrap();
        assert!(read > 0, "the guest agent closed its socket");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("guest agent: {e}: {line}"))
    }

    async fn call(&mut self, command: &str, arguments: Value) -> Value {
        self.send(command, arguments.clone()).await;
        let answer = self.answer().await;
        match answer.get("return") {
            Some(value) => value.clone(),
            // Not the arguments: input-data may be a kuryr.conf with its password.
            None => panic!("guest agent: {command} {}: {answer}", arguments["path"]),
        }
    }
}
