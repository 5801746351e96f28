//! Bounded fuzzing of every request body the daemon parses. For each path in
//! [`kuryr_libnetwork::PATHS`], `parse` is fed arbitrary bytes, arbitrary JSON, and Docker's
//! own bodies with values made hostile (wrong types, huge strings, near-miss ids, CIDRs, MACs
//! and IPs, unicode, nulls, nesting deeper than serde_json allows) or bytes edited. It proves
//! that `parse` never panics, that every refusal is a 4xx whose message names the call, and
//! that what it accepts can be read through the typed accessors the driver uses without a
//! panic. It also proves the other direction: every body of the Docker 20.10 recordings
//! (`tests/fixtures/*.jsonl`, the same as in `shared/reference/`) parses, also with other
//! whitespace and unknown fields, and well-formed values of each kind are accepted as given.
//!
//! Each property runs a fixed number of cases (`PROPTEST_CASES` raises it for a longer local
//! run; `PROPTEST_RNG_SEED` replays one) and writes no regression files, so it fits `cargo test`.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::OnceLock;

use ipnet::IpNet;
use kuryr_libnetwork::network::{keys, Options};
use kuryr_libnetwork::{parse, Call, MAX_BODY_BYTES, PATHS};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value};

/// Cases per property: a few seconds at most each in a debug build, so that CI runs them all.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        // No `proptest-regressions/` in the repository; a failure prints its minimal input.
        failure_persistence: None,
        // A failure's shrinking must also end in bounded time.
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

const NET: &str = "491ee57776dafe4e722448fb7ce70efb8641ac2ced6b4431cbd3dba4e1fad8c2";
const EP: &str = "61957c0c46c10c15f646d57b24658ab4f229d9da2e7236ac258761ca5a1116f1";
const SWARM: &str = "5xj1h2k3l4m5n6p7q8r9s0t1u";

/// The paths that take no body: any body is ignored.
const BODILESS: &[&str] = &[
    "/Plugin.Activate",
    "/NetworkDriver.GetCapabilities",
    "/IpamDriver.GetCapabilities",
    "/IpamDriver.GetDefaultAddressSpaces",
];

/// One line of a recording: the path and the body Docker sent (`None`: no body). Read once:
/// every case uses them.
fn recordings() -> &'static [(String, Option<Value>)] {
    static RECORDINGS: OnceLock<Vec<(String, Option<Value>)>> = OnceLock::new();
    RECORDINGS.get_or_init(read_recordings)
}

fn read_recordings() -> Vec<(String, Option<Value>)> {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            let request = Some(v["request"].clone()).filter(|r| !r.is_null());
            out.push((v["path"].as_str().unwrap().to_owned(), request));
        }
    }
    assert!(out.len() > 30, "the recordings are in {dir}");
    out
}

fn to_body(request: Option<&Value>) -> Vec<u8> {
    request.map_or_else(Vec::new, |r| serde_json::to_vec(r).unwrap())
}

/// A valid body for every path that takes one: the first one Docker sent in the recordings,
/// and for the calls they lack (swarm, discovery, external connectivity) one in Docker's shape.
fn templates() -> &'static [(&'static str, Value)] {
    static TEMPLATES: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    TEMPLATES.get_or_init(make_templates)
}

fn make_templates() -> Vec<(&'static str, Value)> {
    let recorded = recordings();
    let exposed = json!({
        keys::EXPOSED_PORTS: [{"Proto": 6, "Port": 80}],
        keys::PORT_MAP: [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080}]
    });
    let extra = |path: &str| match path {
        "/NetworkDriver.AllocateNetwork" => json!({
            "NetworkID": SWARM,
            "Options": {"com.docker.network.driver.overlay.vxlanid_list": "4097"},
            "IPv4Data": [{"AddressSpace": "GlobalDefault", "Pool": "10.0.0.0/24", "Gateway": "10.0.0.1/24"}],
            "IPv6Data": null
        }),
        "/NetworkDriver.FreeNetwork" => json!({"NetworkID": SWARM}),
        "/NetworkDriver.DiscoverNew" | "/NetworkDriver.DiscoverDelete" => json!({
            "DiscoveryType": 1,
            "DiscoveryData": {"Address": "10.0.0.5", "BindAddress": "10.0.0.5", "Self": true}
        }),
        "/NetworkDriver.ProgramExternalConnectivity" => {
            json!({"NetworkID": NET, "EndpointID": EP, "Options": exposed})
        }
        "/NetworkDriver.RevokeExternalConnectivity" => json!({"NetworkID": NET, "EndpointID": EP}),
        // Bodiless calls: mutating `{}` still exercises their path.
        _ => json!({}),
    };
    PATHS
        .iter()
        .map(|&path| {
            let body = recorded
                .iter()
                .find_map(|(p, r)| r.as_ref().filter(|_| p == path).cloned())
                .unwrap_or_else(|| extra(path));
            (path, body)
        })
        .collect()
}

/// What must hold of every answer of `parse`: a refusal is a 4xx that says which call it
/// refused (404 for an unknown path, whose echo is cut short); an accepted call can be read.
fn check(path: &str, body: &[u8]) -> Result<(), TestCaseError> {
    match parse(path, body) {
        Ok(call) => {
            read_all(&call);
            Ok(())
        }
        Err(e) => {
            let status = e.status();
            let msg = e.to_string();
            prop_assert!(
                (400..500).contains(&status),
                "{path}: status {status}: {msg}"
            );
            prop_assert!(!msg.trim().is_empty(), "{path}: empty message");
            if PATHS.contains(&path) {
                prop_assert_eq!(status, 400, "{}: {}", path, msg);
                // "Call: what is wrong", with something after the call's name.
                let rest = msg
                    .strip_prefix(&path[1..])
                    .and_then(|r| r.strip_prefix(": "));
                prop_assert!(
                    rest.is_some_and(|r| !r.trim().is_empty()),
                    "{path}: {msg:?} should name the call and the fault"
                );
                // A refused value is not echoed whole to Docker and the log.
                prop_assert!(msg.len() < 500, "{path}: long message {}", msg.len());
            } else {
                prop_assert_eq!(status, 404, "{}: {}", path, msg);
                prop_assert!(msg.len() < 400, "{path}: long message {}", msg.len());
            }
            Ok(())
        }
    }
}

/// Reads everything the driver reads of a call, so that a value that parsed but that an
/// accessor cannot take shows up as a panic here rather than in the daemon.
fn read_all(call: &Call) {
    fn options(o: &Options) {
        let _ = o.generic();
        let _ = o.enable_ipv6();
        let _ = o.exposed_ports();
        let _ = o.port_map();
        let _ = o.string(keys::REQUEST_ADDRESS_TYPE);
        let _ = o.string(keys::MAC_ADDRESS);
    }
    match call {
        Call::CreateNetwork(c) => {
            let _ = c.network_id.halves();
            options(&c.options);
        }
        Call::AllocateNetwork(c) => {
            let _ = c.network_id.halves();
        }
        Call::DeleteNetwork(n) | Call::FreeNetwork(n) => {
            let _ = n.network_id.halves();
        }
        Call::CreateEndpoint(e) => {
            let _ = (e.network_id.halves(), e.endpoint_id.halves());
            options(&e.options);
        }
        Call::EndpointOperInfo(e)
        | Call::DeleteEndpoint(e)
        | Call::Leave(e)
        | Call::RevokeExternalConnectivity(e) => {
            let _ = (e.network_id.halves(), e.endpoint_id.halves());
        }
        Call::Join(j) => {
            let _ = (j.network_id.halves(), j.endpoint_id.halves());
            options(&j.options);
        }
        Call::ProgramExternalConnectivity(x) => {
            let _ = (x.network_id.halves(), x.endpoint_id.halves());
            options(&x.options);
        }
        Call::RequestPool(p) => options(&p.options),
        Call::RequestAddress(a) => {
            let _ = (a.is_gateway(), a.mac_address());
            options(&a.options);
        }
        _ => {}
    }
}

/// The field names and option keys of the protocol, so that generated objects hit them.
const FIELDS: &[&str] = &[
    "NetworkID",
    "EndpointID",
    "Options",
    "IPv4Data",
    "IPv6Data",
    "AddressSpace",
    "Pool",
    "SubPool",
    "Gateway",
    "AuxAddresses",
    "Interface",
    "Address",
    "AddressIPv6",
    "MacAddress",
    "SandboxKey",
    "DiscoveryType",
    "DiscoveryData",
    "V6",
    "PoolID",
    "Proto",
    "Port",
    "IP",
    "HostIP",
    "HostPort",
    "HostPortEnd",
    keys::GENERIC,
    keys::ENABLE_IPV6,
    keys::EXPOSED_PORTS,
    keys::PORT_MAP,
    keys::MAC_ADDRESS,
    keys::REQUEST_ADDRESS_TYPE,
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELDS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // JSON has no NaN or infinity; those become null.
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![0, 1, 6, 17, 255, 256, 65535, 65536, -1]).prop_map(Value::from),
    ]
}

/// Any JSON value, a few levels deep, with keys that are often the protocol's.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        any::<String>().prop_map(Value::String),
        near_miss().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Strings that are almost an id, a pool id, a CIDR, an IP or a MAC, or are odd unicode.
fn near_miss() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "",
        " ",
        "null",
        "../../etc/passwd",
        "491EE57776DAFE4E722448FB7CE70EFB8641AC2CED6B4431CBD3DBA4E1FAD8C2",
        "491ee57776dafe4e722448fb7ce70efb8641ac2ced6b4431cbd3dba4e1fad8c2\n",
        "491ee57776dafe4e722448fb7ce70efb8641ac2ced6b4431cbd3dba4e1fad8c\u{0}",
        "491ee57776dafe4e722448fb7ce70efb8641ac2ced6b4431cbd3dba4e1fad8\u{e9}",
        "\u{661}\u{662}\u{663}",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/",
        "/24",
        "10.0.0.256/24",
        "10.0.0.0/24/24",
        "10.0.0.0 /24",
        "::/129",
        "fe80::1%eth0/64",
        "fe80::1%eth0",
        "::ffff:1.2.3.4.5",
        "1.2.3",
        "0x7f.0.0.1",
        "010.0.0.1",
        "\u{661}\u{660}.0.0.0/24",
        "02:42:ac:11:00",
        "02:42:ac:11:00:02:",
        "02:42:ac:11:00:02:03",
        "+2:42:ac:11:00:02",
        "-2:42:ac:11:00:02",
        "02-42-ac-11-00-02",
        "0242.ac11.0002",
        "\u{e9}:42:ac:11:00:02",
        "02:42:ac:11:00:\u{e9}",
        "\u{feff}p1",
        "p1\u{202e}",
        "\u{1f600}",
        "e\u{301}",
    ]);
    prop_oneof![
        2 => fixed.prop_map(str::to_owned),
        1 => "[0-9a-f]{63}[0-9a-zA-Z\u{e9}]?",
        1 => "[0-9a-zA-Z]{24,26}",
        1 => "[A-Za-z0-9._:/ -]{0,4}",
        1 => "[0-9]{1,4}(\\.[0-9]{1,4}){2,4}(/[0-9]{1,3})?",
        1 => "[0-9a-fA-F:.]{0,40}(/[0-9]{1,3})?",
        1 => "([0-9a-fA-F+ -]{1,3}[:-]){4,6}[0-9a-fA-F]{0,3}",
        // Six groups of about two characters: the shape of a MAC, with odd characters.
        1 => "([0-9a-fA-F+ -]{1,3}:){5}[0-9a-fA-F+ \u{e9}-]{1,3}",
    ]
}

/// `[[[...]]]` or `{"a":{"a":...}}`, `depth` deep.
fn nested(depth: usize, arrays: bool) -> Value {
    let mut v = Value::Null;
    for _ in 0..depth {
        v = if arrays {
            Value::Array(vec![v])
        } else {
            Value::Object(Map::from_iter([("Options".to_owned(), v)]))
        };
    }
    v
}

/// A value no field should take as it is.
fn hostile() -> impl Strategy<Value = Value> {
    prop_oneof![
        // Wrong types.
        2 => prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number(),
            Just(json!([])),
            Just(json!({})),
            Just(json!([null])),
            Just(json!([NET])),
            Just(json!({"": null})),
        ],
        2 => near_miss().prop_map(Value::String),
        1 => any::<String>().prop_map(Value::String),
        // Huge strings, up to most of `MAX_BODY_BYTES`, of 1 to 4 byte characters.
        1 => (1usize..50_000, prop::sample::select(vec!["a", "0", "\u{e9}", "\u{20ac}", "\u{1f600}"]))
            .prop_map(|(n, c)| Value::String(c.repeat(n))),
        // Nesting around serde_json's recursion limit (128) and far beyond it.
        1 => (1usize..600, any::<bool>()).prop_map(|(depth, arrays)| nested(depth, arrays)),
        2 => json_value(),
    ]
}

/// JSON pointers to every value in `v`, the root included.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(Value),
    Remove,
    /// A field added beside the one pointed at (or inside it, for an object).
    Add(String, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => hostile().prop_map(Edit::Replace),
        1 => Just(Edit::Remove),
        1 => (key(), hostile()).prop_map(|(k, v)| Edit::Add(k, v)),
    ]
}

fn apply(body: &mut Value, at: Index, edit: Edit) {
    let mut all = Vec::new();
    pointers(body, String::new(), &mut all);
    let pointer = at.get(&all).clone();
    let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", ""));
    match edit {
        Edit::Replace(v) => *body.pointer_mut(&pointer).unwrap() = v,
        Edit::Remove if pointer.is_empty() => *body = Value::Null,
        Edit::Remove => match body.pointer_mut(parent) {
            Some(Value::Object(map)) => {
                map.remove(&last.replace("~1", "/").replace("~0", "~"));
            }
            Some(Value::Array(items)) => {
                items.remove(last.parse().unwrap());
            }
            _ => unreachable!("{pointer} has a parent"),
        },
        Edit::Add(k, v) => match body.pointer_mut(&pointer) {
            Some(Value::Object(map)) => {
                map.insert(k, v);
            }
            _ => {
                if let Some(Value::Object(map)) = body.pointer_mut(parent) {
                    map.insert(k, v);
                }
            }
        },
    }
}

/// Raw edits of a body's bytes: what no serializer writes.
#[derive(Debug, Clone)]
enum ByteEdit {
    Flip(Index, u8),
    Delete(Index),
    Insert(Index, Vec<u8>),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    let snippet = prop_oneof![
        prop::sample::select(vec![
            &b"\"\\ud800\""[..],
            b"\"\\udc00\\u0000\"",
            b"\\",
            b"\"",
            b",",
            b"}",
            b"]",
            b"{",
            b"[",
            b":",
            b"1e999",
            b"-0",
            b"18446744073709551616",
            b"NaN",
            b"Infinity",
            b"\xff",
            b"\xc3",
            b"\xf0\x9f\x98",
            b"\"PoolID\":\"p1\",",
            b"\"NetworkID\":null,",
            b"/* */",
        ])
        .prop_map(<[u8]>::to_vec),
        prop::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        any::<(Index, u8)>().prop_map(|(i, b)| ByteEdit::Flip(i, b)),
        any::<Index>().prop_map(ByteEdit::Delete),
        (any::<Index>(), snippet).prop_map(|(i, s)| ByteEdit::Insert(i, s)),
    ]
}

fn apply_bytes(body: &mut Vec<u8>, edit: ByteEdit) {
    match edit {
        ByteEdit::Flip(i, b) if !body.is_empty() => {
            let i = i.index(body.len());
            body[i] ^= b.max(1);
        }
        ByteEdit::Delete(i) if !body.is_empty() => {
            body.remove(i.index(body.len()));
        }
        ByteEdit::Insert(i, s) => {
            let at = i.index(body.len() + 1);
            body.splice(at..at, s);
        }
        _ => {}
    }
}

#[test]
fn every_path_has_a_template() {
    // A path added to `PATHS` is fuzzed from a body in its own shape, not `{}`.
    let templates = templates();
    for (path, body) in templates {
        if !BODILESS.contains(path) {
            assert_ne!(body, &json!({}), "{path}: add a template to templates()");
        }
        parse(path, &to_body(Some(body))).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    assert_eq!(templates.len(), PATHS.len());
}

#[test]
fn every_recorded_body_parses() {
    for (path, request) in recordings() {
        assert!(PATHS.contains(&path.as_str()), "{path}");
        parse(path, &to_body(request.as_ref())).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

proptest! {
    #![proptest_config(config())]

    /// (a) Arbitrary bytes, also behind a `{` so that they get past the object check.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), brace in any::<bool>()) {
        let body = if brace { [b"{".as_slice(), &bytes].concat() } else { bytes };
        for path in PATHS {
            check(path, &body)?;
        }
    }

    /// Unknown paths are a 404 whatever the path, also with a valid body.
    #[test]
    fn arbitrary_paths(path in prop_oneof![any::<String>(), "/(NetworkDriver|IpamDriver|Plugin)\\.[A-Za-z]{0,30}"]) {
        check(&path, br#"{"PoolID": "p1"}"#)?;
    }

    /// (b) Arbitrary JSON values, objects with the protocol's keys most often, compact or
    /// pretty-printed.
    #[test]
    fn arbitrary_json(
        value in prop_oneof![
            3 => prop::collection::vec((key(), json_value()), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            1 => json_value(),
        ],
        pretty in any::<bool>(),
    ) {
        let body = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) }?;
        for path in PATHS {
            check(path, &body)?;
        }
    }

    /// (c) Docker's own bodies with one to three values replaced by hostile ones, removed, or
    /// joined by another field. The edits are positions relative to the body's size, so each
    /// case edits the body of every path.
    #[test]
    fn mutated_bodies(edits in prop::collection::vec((any::<Index>(), edit()), 1..4)) {
        for (path, body) in templates() {
            let mut body = body.clone();
            for (at, e) in edits.iter().cloned() {
                apply(&mut body, at, e);
            }
            let bytes = serde_json::to_vec(&body)?;
            if bytes.len() <= MAX_BODY_BYTES {
                check(path, &bytes)?;
            }
        }
    }

    /// (c) One near miss or wrongly typed value in each place of each body in turn, so that
    /// every validated field meets every kind of malformed value, not only those a random
    /// position happens to pick.
    #[test]
    fn every_field_meets_near_misses(
        value in prop_oneof![
            3 => near_miss().prop_map(Value::String),
            1 => prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), number(), Just(json!([])), Just(json!({}))],
        ],
    ) {
        for (path, body) in templates() {
            let mut all = Vec::new();
            pointers(body, String::new(), &mut all);
            for pointer in all {
                let mut body = body.clone();
                *body.pointer_mut(&pointer).unwrap() = value.clone();
                check(path, &serde_json::to_vec(&body)?)?;
            }
        }
    }

    /// (c) Docker's own bodies with bytes flipped, deleted or inserted: broken UTF-8, lone
    /// surrogates, numbers out of range, duplicate fields, broken structure.
    #[test]
    fn mutated_bytes(edits in prop::collection::vec(byte_edit(), 1..8)) {
        for (path, body) in templates() {
            let mut bytes = serde_json::to_vec(&body)?;
            for e in edits.iter().cloned() {
                apply_bytes(&mut bytes, e);
            }
            check(path, &bytes)?;
        }
    }

    /// A recorded body stays valid, and means the same, with other whitespace and with fields
    /// a later Docker may add.
    #[test]
    fn recorded_bodies_survive_whitespace_and_new_fields(
        which in any::<Index>(),
        extra in prop::collection::vec(("X[A-Za-z]{0,12}", json_value()), 0..4),
        pretty in any::<bool>(),
    ) {
        let recorded: Vec<_> = recordings().iter().filter_map(|(p, r)| Some((p, r.as_ref()?))).collect();
        let (path, request) = *which.get(&recorded);
        let want = parse(path, &to_body(Some(request))).unwrap();
        let mut changed = request.clone();
        for (k, v) in extra {
            changed.as_object_mut().unwrap().insert(k, v);
        }
        let body = if pretty { serde_json::to_vec_pretty(&changed) } else { serde_json::to_vec(&changed) }?;
        let got = parse(path, &body);
        prop_assert_eq!(got.as_ref(), Ok(&want), "{}", String::from_utf8_lossy(&body));
    }

    /// Well-formed values of each kind are accepted and read back as given (MACs in either
    /// case, normalised to lowercase).
    #[test]
    fn well_formed_values_are_accepted(
        network in prop_oneof!["[0-9a-f]{64}", "[0-9a-z]{25}"],
        pool_id in "[A-Za-z0-9._:-]{1,255}",
        ip in any::<IpAddr>(),
        prefix in any::<u8>(),
        mac in any::<[u8; 6]>(),
        upper in any::<bool>(),
    ) {
        let net = IpNet::new(ip, prefix % (if ip.is_ipv4() { 33 } else { 129 })).unwrap();
        let call = parse("/NetworkDriver.DeleteNetwork", json!({"NetworkID": network}).to_string().as_bytes());
        prop_assert!(matches!(call, Ok(Call::DeleteNetwork(ref n)) if n.network_id.as_str() == network), "{call:?}");

        let body = json!({"PoolID": pool_id, "Address": ip.to_string()}).to_string();
        let call = parse("/IpamDriver.RequestAddress", body.as_bytes());
        prop_assert!(
            matches!(call, Ok(Call::RequestAddress(ref a)) if a.address == Some(ip) && a.pool_id.as_str() == pool_id),
            "{call:?}"
        );

        let body = json!({"Pool": net.to_string(), "V6": ip.is_ipv6()}).to_string();
        let call = parse("/IpamDriver.RequestPool", body.as_bytes());
        prop_assert!(matches!(call, Ok(Call::RequestPool(ref p)) if p.pool == Some(net)), "{call:?}");

        let text = mac.map(|b| format!("{b:02x}")).join(":");
        let text = if upper { text.to_uppercase() } else { text };
        let body = json!({"NetworkID": network, "EndpointID": network, "Interface": {"MacAddress": text}});
        let call = parse("/NetworkDriver.CreateEndpoint", body.to_string().as_bytes());
        let Ok(Call::CreateEndpoint(e)) = call else { return Err(TestCaseError::fail(format!("{call:?}"))) };
        let got = e.interface.and_then(|i| i.mac_address).unwrap();
        prop_assert_eq!(got.0, mac);
        prop_assert_eq!(got.to_string(), text.to_lowercase());
    }
}
