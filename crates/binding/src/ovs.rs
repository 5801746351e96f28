//! Plugging a host interface into an Open vSwitch bridge, through ovsdb-server: what
//! upstream's `ovs` binding script does with
//!
//! ```text
//! ovs-vsctl --may-exist add-port BRIDGE DEV -- set Interface DEV \
//!     external_ids:attached-mac=MAC external_ids:iface-id=PORT_ID \
//!     external_ids:vm-uuid=ENDPOINT_ID external_ids:iface-status=active external_ids:owner=kuryr
//! ovs-vsctl del-port $(ovs-vsctl --bare --columns=name find Interface \
//!     external_ids:iface-id=PORT_ID external_ids:owner=kuryr)
//! ```
//!
//! The Neutron Open vSwitch agent finds the port by `iface-id` and wires it up.
//!
//! Like `ovs-vsctl`, a plug reads the rows it is about to change, then commits one transaction
//! that starts with `wait` operations asserting that those rows are still as read (so a
//! concurrent change makes it fail and it is redone instead of overwriting), and bumps
//! `Open_vSwitch.next_cfg`. It then waits for ovs-vswitchd to report `cur_cfg` at least that
//! high, which means the interface has been attached, or has failed with its `error` column
//! set.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::ovsdb::{
    self, as_uuid, map, map_pairs, named_uuid, row, rows, set, set_members, uuid, Ovsdb,
};
use crate::veth::format_mac;
use crate::Error;

/// The bridge Neutron's Open vSwitch agent plugs instances into unless the port's
/// `binding:vif_details` name another (`bridge_name`).
pub const DEFAULT_BRIDGE: &str = "br-int";

/// How long ovs-vswitchd gets to attach an interface (it takes milliseconds when it runs).
pub const VSWITCHD_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a plug is redone when other clients changed the same rows meanwhile.
const ATTEMPTS: usize = 5;

/// `external_ids:owner` of the interfaces kuryr plugs; unplug only removes those.
const OWNER: &str = "kuryr";

/// What to plug where.
#[derive(Debug, Clone, Copy)]
pub struct OvsPort<'a> {
    pub bridge: &'a str,
    /// The host interface; the OVS Port and Interface get its name.
    pub name: &'a str,
    /// The Neutron port id (`external_ids:iface-id`, how the agent finds the port).
    pub iface_id: &'a str,
    /// The Neutron port's MAC (`external_ids:attached-mac`).
    pub mac: [u8; 6],
    /// The Docker endpoint id (`external_ids:vm-uuid`).
    pub vm_uuid: &'a str,
}

/// What [`Ovsdb::add_port`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugged {
    /// The OpenFlow port number ovs-vswitchd gave the interface.
    pub ofport: i64,
    /// Whether this call created the Port (rather than finding it already there).
    pub created: bool,
}

/// The rows a plug is about to change, as read.
struct Snapshot {
    bridge: Option<String>,
    /// The Port named like the interface, with its interfaces.
    port: Option<(String, Vec<String>)>,
    /// The Interface of that name.
    iface: Option<String>,
    /// The bridge holding that Port: uuid and name.
    port_bridge: Option<(String, String)>,
}

/// How the plug transaction changes things.
enum Plan {
    /// Nothing there yet: insert Interface and Port, add the Port to the bridge.
    Create,
    /// Already on the bridge: only set the external_ids.
    Update { iface: String },
    /// On another bridge: delete it there and create it anew on this one.
    Move {
        port: String,
        iface: String,
        from: Option<(String, String)>,
    },
}

/// An interface kuryr plugged into Open vSwitch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluggedInterface {
    /// The interface's (and its Port's) name.
    pub name: String,
    /// The Neutron port (`external_ids:iface-id`).
    pub port_id: String,
    /// The Docker endpoint (`external_ids:vm-uuid`); empty on a free pool port.
    pub endpoint_id: String,
}

impl OvsPort<'_> {
    fn external_ids(&self) -> [(&'static str, String); 5] {
        [
            ("attached-mac", format_mac(&self.mac)),
            ("iface-id", self.iface_id.to_owned()),
            ("vm-uuid", self.vm_uuid.to_owned()),
            ("iface-status", "active".to_owned()),
            ("owner", OWNER.to_owned()),
        ]
    }
}

impl Ovsdb {
    /// Plugs `port.name` into `port.bridge` with kuryr's external_ids, in one transaction, and
    /// waits (at most [`VSWITCHD_TIMEOUT`]) until ovs-vswitchd has attached it.
    ///
    /// Idempotent: a Port and Interface of that name already on the bridge only get their
    /// external_ids set (other keys are kept, as `ovs-vsctl set` keeps them); on another
    /// bridge they are removed there and created on this one. If ovs-vswitchd cannot attach
    /// an interface this call created, the Port is removed again.
    ///
    /// # Errors
    ///
    /// [`Error::OvsBridgeMissing`] (nothing changed), [`Error::OvsConflict`] for a same-named
    /// port laid out otherwise (a bond, ...), [`Error::OvsInterface`] with ovs-vswitchd's
    /// `error` column, [`Error::VswitchdTimeout`], [`Error::Ovsdb`] for the connection.
    pub async fn add_port(&self, port: &OvsPort<'_>) -> Result<Plugged, Error> {
        let mut attempt = 0;
        let (created, next_cfg, cur_cfg) = loop {
            attempt += 1;
            let snapshot = self.snapshot(port).await?;
            let plan = plan(port, &snapshot)?;
            match self.commit_plug(port, &snapshot, &plan).await {
                Ok(done) => break done,
                Err(Error::Ovsdb(e)) if is_conflict(&e) && attempt < ATTEMPTS => {
                    tracing::debug!(name = port.name, error = %e, "OVS rows changed meanwhile, redoing the plug");
                }
                Err(Error::Ovsdb(e)) if is_conflict(&e) => {
                    return Err(Error::OvsBusy {
                        name: port.name.to_owned(),
                        bridge: port.bridge.to_owned(),
                    })
                }
                Err(e) => return Err(e),
            }
        };
        let result = self.wait_attached(port, next_cfg, cur_cfg).await;
        match result {
            Ok(ofport) => {
                tracing::info!(
                    name = port.name,
                    bridge = port.bridge,
                    ofport,
                    created,
                    "plugged into Open vSwitch"
                );
                Ok(Plugged { ofport, created })
            }
            Err(e) => {
                if created {
                    if let Err(undo) = self.del_port_named(port.name).await {
                        tracing::warn!(name = port.name, error = %undo, "could not remove the port after a failed plug: remove it by hand");
                    }
                }
                Err(e)
            }
        }
    }

    /// Removes, from whatever bridge holds them, the ports whose interface carries
    /// `external_ids:iface-id=<iface_id>` and `owner=kuryr`. Returns their names (none, if
    /// nothing was plugged: unplugging twice is fine).
    ///
    /// # Errors
    ///
    /// [`Error::Ovsdb`] if ovsdb-server cannot be reached or refuses.
    pub async fn del_ports_of(&self, iface_id: &str) -> Result<Vec<String>, Error> {
        let found = self
            .transact(&[select(
                "Interface",
                json!([[
                    "external_ids",
                    "includes",
                    map([("iface-id", iface_id), ("owner", OWNER)])
                ]]),
                &["_uuid"],
            )])
            .await?;
        let ifaces: Vec<&str> = first_rows(&found)
            .iter()
            .filter_map(|r| as_uuid(&r["_uuid"]))
            .collect();
        if ifaces.is_empty() {
            return Ok(Vec::new());
        }
        let lookups: Vec<Value> = ifaces
            .iter()
            .map(|i| {
                select(
                    "Port",
                    json!([["interfaces", "includes", uuid(i)]]),
                    &["_uuid", "name"],
                )
            })
            .collect();
        let results = self.transact(&lookups).await?;
        let ports: Vec<(String, String)> = results
            .iter()
            .flat_map(|r| rows(r).iter())
            .filter_map(|r| {
                Some((
                    as_uuid(&r["_uuid"])?.to_owned(),
                    r["name"].as_str()?.to_owned(),
                ))
            })
            .collect();
        self.del_ports(&ports, &format!("unplug {iface_id}"))
            .await?;
        Ok(ports.into_iter().map(|(_, name)| name).collect())
    }

    /// The Docker endpoint (`external_ids:vm-uuid`) of the interface kuryr plugged for
    /// Neutron port `iface_id`, if there is one.
    ///
    /// # Errors
    ///
    /// [`Error::Ovsdb`] if ovsdb-server cannot be reached or refuses.
    pub async fn endpoint_of(&self, iface_id: &str) -> Result<Option<String>, Error> {
        let found = self
            .transact(&[select(
                "Interface",
                json!([[
                    "external_ids",
                    "includes",
                    map([("iface-id", iface_id), ("owner", OWNER)])
                ]]),
                &["external_ids"],
            )])
            .await?;
        // An OVSDB map is ["map", [[key, value], ...]].
        Ok(first_rows(&found).iter().find_map(|r| {
            r["external_ids"][1]
                .as_array()?
                .iter()
                .find(|kv| kv[0] == "vm-uuid")
                .and_then(|kv| kv[1].as_str())
                .filter(|endpoint| !endpoint.is_empty())
                .map(str::to_owned)
        }))
    }

    /// Every interface kuryr plugged (`external_ids:owner=kuryr`), on any bridge: what the
    /// reconciler compares with Neutron.
    ///
    /// # Errors
    ///
    /// [`Error::Ovsdb`] if ovsdb-server cannot be reached or refuses.
    pub async fn kuryr_interfaces(&self) -> Result<Vec<PluggedInterface>, Error> {
        let found = self
            .transact(&[select(
                "Interface",
                json!([["external_ids", "includes", map([("owner", OWNER)])]]),
                &["name", "external_ids"],
            )])
            .await?;
        Ok(first_rows(&found)
            .iter()
            .filter_map(|r| {
                let ids = map_pairs(&r["external_ids"]);
                let get = |key: &str| {
                    ids.iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| (*v).to_owned())
                        .unwrap_or_default()
                };
                Some(PluggedInterface {
                    name: r["name"].as_str()?.to_owned(),
                    port_id: get("iface-id"),
                    endpoint_id: get("vm-uuid"),
                })
            })
            .collect())
    }

    /// Whether OVS has a bridge of this name.
    pub async fn bridge_exists(&self, bridge: &str) -> Result<bool, Error> {
        let found = self
            .transact(&[select(
                "Bridge",
                json!([["name", "==", bridge]]),
                &["_uuid"],
            )])
            .await?;
        Ok(!first_rows(&found).is_empty())
    }

    /// Removes the Port named `name`, wherever it is (used to undo a failed plug).
    async fn del_port_named(&self, name: &str) -> Result<(), Error> {
        let found = self
            .transact(&[select("Port", json!([["name", "==", name]]), &["_uuid"])])
            .await?;
        let ports: Vec<(String, String)> = first_rows(&found)
            .iter()
            .filter_map(|r| Some((as_uuid(&r["_uuid"])?.to_owned(), name.to_owned())))
            .collect();
        self.del_ports(&ports, &format!("undo plug {name}")).await
    }

    /// Takes each Port out of the bridge that holds it; ovsdb-server then deletes the Port and
    /// its Interfaces, which nothing else refers to (they are not root tables).
    async fn del_ports(&self, ports: &[(String, String)], why: &str) -> Result<(), Error> {
        if ports.is_empty() {
            return Ok(());
        }
        let mut ops = vec![comment(why)];
        for (port, _) in ports {
            ops.push(json!({
                "op": "mutate",
                "table": "Bridge",
                "where": [["ports", "includes", uuid(port)]],
                "mutations": [["ports", "delete", set([uuid(port)])]],
            }));
        }
        self.transact(&ops).await?;
        for (_, name) in ports {
            tracing::info!(name = %name, "removed port from Open vSwitch");
        }
        Ok(())
    }

    /// Reads the bridge, the Port and the Interface named like the interface, and the bridge
    /// that holds that Port.
    async fn snapshot(&self, port: &OvsPort<'_>) -> Result<Snapshot, Error> {
        let results = self
            .transact(&[
                select("Bridge", json!([["name", "==", port.bridge]]), &["_uuid"]),
                select(
                    "Port",
                    json!([["name", "==", port.name]]),
                    &["_uuid", "interfaces"],
                ),
                select("Interface", json!([["name", "==", port.name]]), &["_uuid"]),
            ])
            .await?;
        let uuid_of = |i: usize| {
            results
                .get(i)
                .and_then(|r| rows(r).first())
                .and_then(|r| as_uuid(&r["_uuid"]))
                .map(str::to_owned)
        };
        let bridge = uuid_of(0);
        let iface = uuid_of(2);
        let port_row = results.get(1).and_then(|r| rows(r).first());
        let port_uuid = uuid_of(1);
        let mut snapshot = Snapshot {
            bridge,
            port: None,
            iface,
            port_bridge: None,
        };
        if let (Some(port_uuid), Some(port_row)) = (port_uuid, port_row) {
            let interfaces = set_members(&port_row["interfaces"])
                .into_iter()
                .filter_map(as_uuid)
                .map(str::to_owned)
                .collect();
            let holder = self
                .transact(&[select(
                    "Bridge",
                    json!([["ports", "includes", uuid(&port_uuid)]]),
                    &["_uuid", "name"],
                )])
                .await?;
            snapshot.port_bridge = first_rows(&holder).first().and_then(|r| {
                Some((
                    as_uuid(&r["_uuid"])?.to_owned(),
                    r["name"].as_str()?.to_owned(),
                ))
            });
            snapshot.port = Some((port_uuid, interfaces));
        }
        Ok(snapshot)
    }

    /// Commits the plug: preconditions, the change, the `next_cfg` bump. Returns whether the
    /// Port was created and the `next_cfg`/`cur_cfg` after it.
    async fn commit_plug(
        &self,
        port: &OvsPort<'_>,
        snapshot: &Snapshot,
        plan: &Plan,
    ) -> Result<(bool, i64, i64), Error> {
        let Some(bridge) = snapshot.bridge.as_deref() else {
            return Err(Error::OvsBridgeMissing {
                bridge: port.bridge.to_owned(),
            });
        };
        let ids = port.external_ids();
        let mut ops = vec![
            // Fail (and redo) if any row read is no longer as read.
            expect_rows("Bridge", json!([["name", "==", port.bridge]]), Some(bridge)),
            expect_rows(
                "Port",
                json!([["name", "==", port.name]]),
                snapshot.port.as_ref().map(|(p, _)| p.as_str()),
            ),
            expect_rows(
                "Interface",
                json!([["name", "==", port.name]]),
                snapshot.iface.as_deref(),
            ),
        ];
        if let Some((port_uuid, _)) = &snapshot.port {
            ops.push(expect_rows(
                "Bridge",
                json!([["ports", "includes", uuid(port_uuid)]]),
                snapshot.port_bridge.as_ref().map(|(b, _)| b.as_str()),
            ));
        }
        ops.push(comment(&format!("plug {} into {}", port.name, port.bridge)));
        let created = match plan {
            Plan::Update { iface } => {
                let keys = set(ids.iter().map(|(k, _)| Value::from(*k)));
                ops.push(json!({
                    "op": "mutate",
                    "table": "Interface",
                    "where": [["_uuid", "==", uuid(iface)]],
                    "mutations": [
                        ["external_ids", "delete", keys],
                        ["external_ids", "insert", map(ids.iter().map(|(k, v)| (*k, v.as_str())))],
                    ],
                }));
                false
            }
            Plan::Move {
                port: p,
                iface,
                from,
            } => {
                if let Some((from_uuid, from_name)) = from {
                    tracing::info!(name = port.name, from = %from_name, to = port.bridge, "moving OVS port to another bridge");
                    ops.push(json!({
                        "op": "mutate",
                        "table": "Bridge",
                        "where": [["_uuid", "==", uuid(from_uuid)]],
                        "mutations": [["ports", "delete", set([uuid(p)])]],
                    }));
                }
                ops.push(delete_row("Port", p));
                ops.push(delete_row("Interface", iface));
                push_create(&mut ops, port, bridge, &ids);
                true
            }
            Plan::Create => {
                push_create(&mut ops, port, bridge, &ids);
                true
            }
        };
        ops.push(json!({
            "op": "mutate",
            "table": "Open_vSwitch",
            "where": [],
            "mutations": [["next_cfg", "+=", 1]],
        }));
        ops.push(select("Open_vSwitch", json!([]), &["next_cfg", "cur_cfg"]));
        let results = self.transact(&ops).await?;
        let cfg = results.last().and_then(|r| rows(r).first());
        let (Some(next), Some(cur)) = (
            cfg.and_then(|r| r["next_cfg"].as_i64()),
            cfg.and_then(|r| r["cur_cfg"].as_i64()),
        ) else {
            return Err(ovsdb::OvsdbError::Protocol {
                path: self.path().to_owned(),
                reason: "the Open_vSwitch table has no row with next_cfg and cur_cfg".into(),
            }
            .into());
        };
        Ok((created, next, cur))
    }

    /// Waits for ovs-vswitchd to have applied configuration `next_cfg` (its `cur_cfg` reaches
    /// it), with `wait` operations that ovsdb-server holds until `cur_cfg` changes, then reads
    /// the interface's `ofport` and `error`.
    async fn wait_attached(
        &self,
        port: &OvsPort<'_>,
        next_cfg: i64,
        cur_cfg: i64,
    ) -> Result<i64, Error> {
        let deadline = Instant::now() + VSWITCHD_TIMEOUT;
        let mut cur = cur_cfg;
        let timed_out = || Error::VswitchdTimeout {
            name: port.name.to_owned(),
            bridge: port.bridge.to_owned(),
            waited: VSWITCHD_TIMEOUT,
        };
        while cur < next_cfg {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            let ops = [
                json!({
                    "op": "wait",
                    "timeout": u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1),
                    "table": "Open_vSwitch",
                    "where": [],
                    "columns": ["cur_cfg"],
                    "until": "!=",
                    "rows": [{"cur_cfg": cur}],
                }),
                select("Open_vSwitch", json!([]), &["cur_cfg"]),
            ];
            match self.transact(&ops).await {
                Ok(results) => {
                    cur = results
                        .get(1)
                        .and_then(|r| rows(r).first())
                        .and_then(|r| r["cur_cfg"].as_i64())
                        .unwrap_or(cur);
                }
                Err(e) if e.op_error() == Some("timed out") => return Err(timed_out()),
                Err(e) => return Err(e.into()),
            }
        }
        let found = self
            .transact(&[select(
                "Interface",
                json!([["name", "==", port.name]]),
                &["ofport", "error"],
            )])
            .await?;
        let iface = first_rows(&found).first();
        let ofport = iface
            .and_then(|r| set_members(&r["ofport"]).first().and_then(|v| v.as_i64()))
            .unwrap_or(-1);
        let error = iface
            .and_then(|r| set_members(&r["error"]).first().and_then(|v| v.as_str()))
            .map(str::to_owned);
        if ofport > 0 {
            if let Some(error) = error {
                tracing::warn!(name = port.name, %error, "ovs-vswitchd reports an error on an attached interface");
            }
            return Ok(ofport);
        }
        Err(Error::OvsInterface {
            name: port.name.to_owned(),
            bridge: port.bridge.to_owned(),
            error: error.unwrap_or_else(|| {
                if iface.is_some() {
                    "it got no OpenFlow port number".to_owned()
                } else {
                    "the interface disappeared from the database meanwhile".to_owned()
                }
            }),
        })
    }
}

/// Decides how to plug, or refuses a layout kuryr does not make.
fn plan(port: &OvsPort<'_>, snapshot: &Snapshot) -> Result<Plan, Error> {
    let conflict = |reason: String| Error::OvsConflict {
        name: port.name.to_owned(),
        reason,
    };
    match (&snapshot.port, &snapshot.iface) {
        (None, None) => Ok(Plan::Create),
        (Some(_), None) => Err(conflict(format!(
            "a port without an interface named {}",
            port.name
        ))),
        (None, Some(_)) => Err(conflict(format!(
            "an interface {} in a port of another name",
            port.name
        ))),
        (Some((p, interfaces)), Some(i)) => {
            if interfaces.as_slice() != [i.clone()] {
                return Err(conflict(format!(
                    "a port with {} interfaces (a bond?)",
                    interfaces.len()
                )));
            }
            match &snapshot.port_bridge {
                Some((b, _)) if Some(b) == snapshot.bridge.as_ref() => {
                    Ok(Plan::Update { iface: i.clone() })
                }
                from => Ok(Plan::Move {
                    port: p.clone(),
                    iface: i.clone(),
                    from: from.clone(),
                }),
            }
        }
    }
}

/// Inserts the Interface and the Port and adds the Port to the bridge.
fn push_create(ops: &mut Vec<Value>, port: &OvsPort<'_>, bridge: &str, ids: &[(&str, String)]) {
    ops.push(json!({
        "op": "insert",
        "table": "Interface",
        "uuid-name": "kuryr_iface",
        "row": {
            "name": port.name,
            "external_ids": map(ids.iter().map(|(k, v)| (*k, v.as_str()))),
        },
    }));
    ops.push(json!({
        "op": "insert",
        "table": "Port",
        "uuid-name": "kuryr_port",
        "row": {"name": port.name, "interfaces": named_uuid("kuryr_iface")},
    }));
    ops.push(json!({
        "op": "mutate",
        "table": "Bridge",
        "where": [["_uuid", "==", uuid(bridge)]],
        "mutations": [["ports", "insert", set([named_uuid("kuryr_port")])]],
    }));
}

fn select(table: &str, conditions: Value, columns: &[&str]) -> Value {
    json!({"op": "select", "table": table, "where": conditions, "columns": columns})
}

fn delete_row(table: &str, id: &str) -> Value {
    json!({"op": "delete", "table": table, "where": [["_uuid", "==", uuid(id)]]})
}

/// A `wait` that fails at once unless the rows matching `conditions` are exactly the one with
/// uuid `expected` (or none, for `None`).
fn expect_rows(table: &str, conditions: Value, expected: Option<&str>) -> Value {
    let rows: Vec<Value> = expected
        .map(|id| row([("_uuid", uuid(id))]))
        .into_iter()
        .collect();
    json!({
        "op": "wait",
        "timeout": 0,
        "table": table,
        "where": conditions,
        "columns": ["_uuid"],
        "until": "==",
        "rows": rows,
    })
}

/// Shows up in ovsdb-server's log next to the transaction, to tell who changed what.
fn comment(text: &str) -> Value {
    json!({"op": "comment", "comment": format!("kuryr: {text}")})
}

fn first_rows(results: &[Value]) -> &[Value] {
    results.first().map_or(&[], |r| rows(r))
}

/// A plug transaction worth redoing from the read: a precondition `wait` (timeout 0) did not
/// hold or a concurrent insert took the name (rows changed after they were read), or the
/// connection closed before the answer (whether it committed, the next read shows).
fn is_conflict(e: &ovsdb::OvsdbError) -> bool {
    match e {
        ovsdb::OvsdbError::Transaction { op, error, .. } => {
            (op.starts_with("wait") && error == "timed out") || error == "constraint violation"
        }
        ovsdb::OvsdbError::Disconnected { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port() -> OvsPort<'static> {
        OvsPort {
            bridge: "br-int",
            name: "tap1",
            iface_id: "p",
            mac: [0xfa, 0x16, 0x3e, 0, 0, 1],
            vm_uuid: "e",
        }
    }

    fn snapshot(
        port: Option<(&str, &[&str])>,
        iface: Option<&str>,
        holder: Option<&str>,
    ) -> Snapshot {
        Snapshot {
            bridge: Some("B".into()),
            port: port.map(|(p, i)| (p.into(), i.iter().map(|s| (*s).to_owned()).collect())),
            iface: iface.map(Into::into),
            port_bridge: holder.map(|b| (b.into(), format!("name-{b}"))),
        }
    }

    #[test]
    fn plans() {
        assert!(matches!(
            plan(&port(), &snapshot(None, None, None)),
            Ok(Plan::Create)
        ));
        assert!(matches!(
            plan(
                &port(),
                &snapshot(Some(("P", &["I"])), Some("I"), Some("B"))
            ),
            Ok(Plan::Update { .. })
        ));
        assert!(matches!(
            plan(
                &port(),
                &snapshot(Some(("P", &["I"])), Some("I"), Some("C"))
            ),
            Ok(Plan::Move { from: Some(_), .. })
        ));
        for (p, i) in [
            (Some(("P", &["I", "J"][..])), Some("I")),
            (Some(("P", &["J"][..])), None),
            (None, Some("I")),
        ] {
            let err = plan(&port(), &snapshot(p, i, Some("B"))).err();
            assert!(matches!(err, Some(Error::OvsConflict { .. })), "{err:?}");
        }
    }

    #[test]
    fn external_ids_are_upstreams() {
        let ids = port().external_ids();
        assert_eq!(
            ids.map(|(k, v)| format!("{k}={v}")),
            [
                "attached-mac=fa:16:3e:00:00:01",
                "iface-id=p",
                "vm-uuid=e",
                "iface-status=active",
                "owner=kuryr"
            ]
        );
    }
}
