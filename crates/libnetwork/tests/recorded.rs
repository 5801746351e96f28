//! Every request a real Docker 20.10 daemon sent a remote driver (recorded in
//! `fixtures/*.jsonl`) parses, our answers have the shape Docker got, and malformed input of
//! every kind is refused with a 400 that names the field, never a panic.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kuryr_libnetwork::ipam::{self, RequestAddressResponse, RequestPoolResponse};
use kuryr_libnetwork::network::{self, CreateEndpointResponse, InterfaceName, JoinResponse};
use kuryr_libnetwork::plugin::ActivateResponse;
use kuryr_libnetwork::{parse, Call, MAX_BODY_BYTES, PATHS};
use serde_json::{json, Value};

struct Recorded {
    path: String,
    request: Value,
    response: Value,
}

fn recordings() -> Vec<Recorded> {
    let mut out = Vec::new();
    for name in [
        "docker-20.10-wire-basic.jsonl",
        "docker-20.10-wire-dualstack-requests.jsonl",
    ] {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            out.push(Recorded {
                path: v["path"].as_str().unwrap().to_owned(),
                request: v["request"].clone(),
                response: v["response"].clone(),
            });
        }
    }
    assert!(out.len() > 30, "the recordings are there");
    out
}

fn body(r: &Recorded) -> Vec<u8> {
    if r.request.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&r.request).unwrap()
    }
}

#[test]
fn every_recorded_request_parses() {
    for r in recordings() {
        let call = parse(&r.path, &body(&r)).unwrap_or_else(|e| panic!("{}: {e}", r.path));
        assert_eq!(
            format!("/{}", call.name()),
            r.path,
            "the call is named by its path"
        );
        // Spot checks of what the typed request holds.
        match call {
            Call::CreateNetwork(c) => {
                assert_eq!(c.ipv4_data[0].pool.to_string(), "10.99.0.0/24");
                assert_eq!(c.ipv4_data[0].gateway.unwrap().to_string(), "10.99.0.1/24");
                if c.options.enable_ipv6() {
                    assert_eq!(c.ipv6_data[0].pool.to_string(), "fd00:99::/64");
                    assert_eq!(c.options.generic().unwrap()["neutron.net.name"], "existing");
                }
            }
            Call::RequestAddress(a) if a.is_gateway() => assert!(a.address.is_some()),
            Call::RequestAddress(a) => {
                if let Some(mac) = a.mac_address().unwrap() {
                    assert!(mac.to_string().starts_with("02:42:"));
                }
            }
            Call::CreateEndpoint(e) => {
                let iface = e.interface.unwrap();
                assert!(iface.address.is_some());
                assert!(iface.mac_address.is_some());
                e.options.exposed_ports().unwrap();
                e.options.port_map().unwrap();
            }
            Call::Join(j) => assert!(j.sandbox_key.starts_with("/var/run/docker/netns/")),
            Call::RequestPool(p) if p.v6 => {
                assert_eq!(p.options.string("neutron.pool.name"), Some("p1"))
            }
            _ => {}
        }
    }
}

#[test]
fn our_answers_have_the_recorded_shape() {
    for r in recordings().iter().filter(|r| !r.response.is_null()) {
        let ours = match r.path.as_str() {
            "/Plugin.Activate" => {
                serde_json::to_value(ActivateResponse::network_and_ipam()).unwrap()
            }
            "/NetworkDriver.GetCapabilities" => serde_json::to_value(network::Capabilities {
                scope: "local".into(),
                connectivity_scope: None,
            })
            .unwrap(),
            "/IpamDriver.GetCapabilities" => serde_json::to_value(ipam::Capabilities {
                requires_mac_address: true,
                requires_request_replay: false,
            })
            .unwrap(),
            "/IpamDriver.GetDefaultAddressSpaces" => {
                serde_json::to_value(ipam::DefaultAddressSpaces {
                    local: "l".into(),
                    global: "g".into(),
                })
                .unwrap()
            }
            "/IpamDriver.RequestPool" => serde_json::to_value(RequestPoolResponse {
                pool_id: "p1".parse().unwrap(),
                pool: "10.99.0.0/24".parse().unwrap(),
                data: Default::default(),
            })
            .unwrap(),
            "/IpamDriver.RequestAddress" => serde_json::to_value(RequestAddressResponse {
                address: r.response["Address"].as_str().unwrap().parse().unwrap(),
                data: Default::default(),
            })
            .unwrap(),
            "/NetworkDriver.CreateEndpoint" => {
                serde_json::to_value(CreateEndpointResponse::default()).unwrap()
            }
            "/NetworkDriver.Join" => serde_json::to_value(JoinResponse {
                interface_name: InterfaceName {
                    src_name: r.response["InterfaceName"]["SrcName"]
                        .as_str()
                        .unwrap()
                        .into(),
                    dst_prefix: "eth".into(),
                },
                gateway: None,
                gateway_ipv6: None,
                static_routes: Vec::new(),
                disable_gateway_service: true,
            })
            .unwrap(),
            "/NetworkDriver.EndpointOperInfo" => json!({"Value": {}}),
            _ => json!({}),
        };
        assert_eq!(ours, r.response, "{}", r.path);
    }
}

fn invalid(path: &str, body: &[u8]) -> String {
    let err = parse(path, body).expect_err(&format!(
        "{path} {:?} must be refused",
        String::from_utf8_lossy(body)
    ));
    assert_eq!(err.status(), 400, "{err}");
    err.to_string()
}

#[test]
fn malformed_requests_name_the_field() {
    let net = "491ee57776dafe4e722448fb7ce70efb8641ac2ced6b4431cbd3dba4e1fad8c2";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "/NetworkDriver.Join",
            json!({"NetworkID": net}).to_string(),
            "missing field `EndpointID`",
        ),
        (
            "/NetworkDriver.DeleteNetwork",
            json!({"NetworkID": "Not-An-Id"}).to_string(),
            "NetworkID: \"Not-An-Id\" is not a Docker id",
        ),
        (
            "/NetworkDriver.DeleteNetwork",
            json!({"NetworkID": 42}).to_string(),
            "NetworkID: invalid type",
        ),
        (
            "/NetworkDriver.CreateNetwork",
            json!({"NetworkID": net, "IPv4Data": [{"Pool": "10.0.0.0/33"}], "IPv6Data": []})
                .to_string(),
            "IPv4Data[0].Pool: \"10.0.0.0/33\" is not an address with prefix",
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            json!({"NetworkID": net, "EndpointID": net, "Interface": {"MacAddress": "02:42"}})
                .to_string(),
            "Interface.MacAddress: \"02:42\" is not a MAC address",
        ),
        (
            "/IpamDriver.RequestAddress",
            json!({"PoolID": "p1", "Address": "10.0.0.1/24"}).to_string(),
            "Address: \"10.0.0.1/24\" is not an IP address",
        ),
        (
            "/IpamDriver.ReleasePool",
            json!({"PoolID": "../x"}).to_string(),
            "PoolID:",
        ),
        (
            "/IpamDriver.RequestPool",
            json!({"Pool": "nope", "V6": false}).to_string(),
            "Pool:",
        ),
        (
            "/IpamDriver.ReleasePool",
            String::new(),
            "the body is empty",
        ),
        (
            "/IpamDriver.ReleasePool",
            "{\"PoolID\": \"p1\"} trailing".into(),
            "trailing data",
        ),
        (
            "/IpamDriver.ReleasePool",
            "[]".into(),
            "the body must be a JSON object",
        ),
    ];
    for (path, body, want) in cases {
        let msg = invalid(path, body.as_bytes());
        assert!(
            msg.contains(want),
            "{path}: {msg:?} should contain {want:?}"
        );
        assert!(msg.len() < 400, "short message: {msg}");
    }
}

#[test]
fn unknown_paths_are_404_and_huge_bodies_400() {
    let err = parse("/NetworkDriver.Frobnicate", b"{}").unwrap_err();
    assert_eq!(err.status(), 404);
    let err = parse(&"/x".repeat(10_000), b"{}").unwrap_err();
    assert!(err.to_string().len() < 400);
    let huge = vec![b' '; MAX_BODY_BYTES + 1];
    let err = parse("/IpamDriver.ReleasePool", &huge).unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("more than"), "{err}");
}

#[test]
fn truncated_and_mutated_bodies_never_panic() {
    for r in recordings().iter().filter(|r| !r.request.is_null()) {
        let full = body(r);
        for cut in 0..full.len() {
            let _ = parse(&r.path, &full[..cut]);
        }
        // Every string and number swapped for another type.
        if let Value::Object(map) = &r.request {
            for key in map.keys() {
                for replacement in [
                    json!(null),
                    json!(1),
                    json!("x"),
                    json!([]),
                    json!({}),
                    json!(true),
                ] {
                    let mut v = r.request.clone();
                    v[key] = replacement;
                    let _ = parse(&r.path, &serde_json::to_vec(&v).unwrap());
                }
            }
        }
    }
    for path in PATHS {
        for junk in [&b"\xff\xfe"[..], b"{{{{", b"null", b"\"str\"", b"1e999"] {
            let _ = parse(path, junk);
        }
    }
}
