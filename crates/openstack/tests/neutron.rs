//! Every Neutron call of the client, round-tripped against the real local Neutron.

// Tests fail by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{neutron, unique};
use kuryr_openstack::neutron::*;

async fn network(n: &Neutron, name: &str) -> Network {
    n.networks()
        .create(&NetworkSpec {
            name: Some(name.to_owned()),
            ..Default::default()
        })
        .await
        .expect("create network")
}

async fn subnet(n: &Neutron, net: &Network, cidr: &str) -> Subnet {
    n.subnets()
        .create(&SubnetSpec {
            name: Some(format!("{}-sub", net.name)),
            network_id: Some(net.id.clone()),
            ip_version: Some(if cidr.contains(':') { 6 } else { 4 }),
            cidr: Some(cidr.to_owned()),
            enable_dhcp: Some(false),
            ..Default::default()
        })
        .await
        .expect("create subnet")
}

#[tokio::test]
async fn network_crud_and_tags() {
    let n = neutron();
    let name = unique("net");
    let net = network(&n, &name).await;
    assert_eq!(net.name, name);
    assert!(net.admin_state_up);
    assert!(net.mtu.is_some(), "net-mtu extension gives an MTU");

    let got = n.networks().get(&net.id).await.unwrap();
    assert_eq!(got.id, net.id);

    let updated = n
        .networks()
        .update(
            &net.id,
            &NetworkSpec {
                description: Some("changed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.description, "changed");
    assert!(updated.revision_number > net.revision_number);

    // Tags: add one, add again (no error), replace all, remove one.
    let lh = format!("kuryr.net.uuid.lh:{name}");
    n.networks().add_tag(&net.id, &lh).await.unwrap();
    n.networks().add_tag(&net.id, &lh).await.unwrap();
    n.networks().add_tag(&net.id, "second").await.unwrap();
    let mut tags = n.networks().tags(&net.id).await.unwrap();
    tags.sort();
    assert_eq!(tags, vec![lh.clone(), "second".to_string()]);
    let by_tag = n
        .networks()
        .list(&Filters::new().tags([lh.as_str()]))
        .await
        .unwrap();
    assert_eq!(
        by_tag.iter().map(|x| &x.id).collect::<Vec<_>>(),
        vec![&net.id]
    );

    let replaced = n
        .networks()
        .replace_tags(&net.id, &[lh.clone(), "third".into()])
        .await
        .unwrap();
    assert_eq!(replaced.len(), 2);
    assert!(n.networks().remove_tag(&net.id, "third").await.unwrap());
    assert!(!n.networks().remove_tag(&net.id, "third").await.unwrap());
    assert_eq!(
        n.networks().get(&net.id).await.unwrap().tags,
        vec![lh.clone()]
    );

    assert!(n.networks().delete(&net.id).await.unwrap());
    assert!(
        !n.networks().delete(&net.id).await.unwrap(),
        "second delete finds nothing"
    );
    assert!(n.networks().get_opt(&net.id).await.unwrap().is_none());
    let err = n.networks().get(&net.id).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.kind(), Some("NetworkNotFound"));
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test]
async fn tag_filters_all_any_not() {
    let n = neutron();
    let run = unique("tags");
    let (a, b, c) = (format!("{run}-a"), format!("{run}-b"), format!("{run}-c"));
    let mut nets = Vec::new();
    for tags in [vec![&a, &b], vec![&a], vec![&c]] {
        let net = network(&n, &unique("tagnet")).await;
        for t in tags {
            n.networks().add_tag(&net.id, t).await.unwrap();
        }
        nets.push(net.id);
    }
    let ids = |v: Vec<Network>| {
        let mut ids: Vec<String> = v.into_iter().map(|x| x.id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let api = n.networks();
    let run_tags = [a.as_str(), b.as_str(), c.as_str()];
    assert_eq!(
        ids(api.list(&Filters::new().tags([&a, &b])).await.unwrap()),
        vec![nets[0].clone()]
    );
    assert_eq!(
        ids(api.list(&Filters::new().tags_any([&b, &c])).await.unwrap()),
        sorted(vec![nets[0].clone(), nets[2].clone()])
    );
    // not-tags / not-tags-any among this run's networks only.
    let mine = Filters::new().tags_any(run_tags);
    assert_eq!(
        ids(api.list(&mine.clone().not_tags([&a, &b])).await.unwrap()),
        sorted(vec![nets[1].clone(), nets[2].clone()])
    );
    assert_eq!(
        ids(api.list(&mine.not_tags_any([&a])).await.unwrap()),
        vec![nets[2].clone()]
    );
    for id in nets {
        api.delete(&id).await.unwrap();
    }
}

#[tokio::test]
async fn pagination_returns_every_item_and_field_selection_works() {
    let n = neutron();
    let tag = unique("page");
    let mut created = Vec::new();
    for _ in 0..7 {
        let net = network(&n, &unique("pagenet")).await;
        n.networks().add_tag(&net.id, &tag).await.unwrap();
        created.push(net.id);
    }
    let listed = n
        .networks()
        .list(
            &Filters::new()
                .tags([&tag])
                .limit(2)
                .sort("id", Direction::Asc),
        )
        .await
        .unwrap();
    let mut want = created.clone();
    want.sort();
    assert_eq!(
        listed.iter().map(|x| x.id.clone()).collect::<Vec<_>>(),
        want,
        "4 pages of 2, in order"
    );

    let slim = n
        .networks()
        .list(&Filters::new().tags([&tag]).fields(["id"]).limit(3))
        .await
        .unwrap();
    assert_eq!(slim.len(), 7);
    assert!(slim
        .iter()
        .all(|x| !x.id.is_empty() && x.name.is_empty() && x.tags.is_empty()));
    for id in created {
        n.networks().delete(&id).await.unwrap();
    }
}

#[tokio::test]
async fn subnetpool_subnet_and_ip_availability() {
    let n = neutron();
    let name = unique("pool");
    let pool = n
        .subnetpools()
        .create(&SubnetPoolSpec {
            name: Some(name.clone()),
            prefixes: Some(vec!["10.201.0.0/16".into()]),
            default_prefixlen: Some(24),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pool.prefixes, vec!["10.201.0.0/16"]);
    assert_eq!(pool.default_prefixlen, Some(24));
    assert_eq!(pool.ip_version, 4);
    n.subnetpools()
        .add_tag(&pool.id, "kuryr.subnetpool.existing")
        .await
        .unwrap();
    let found = n
        .subnetpools()
        .list(&Filters::new().eq("name", &name))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tags, vec!["kuryr.subnetpool.existing"]);

    let net = network(&n, &unique("poolnet")).await;
    let sub = n
        .subnets()
        .create(&SubnetSpec {
            network_id: Some(net.id.clone()),
            ip_version: Some(4),
            subnetpool_id: Some(pool.id.clone()),
            cidr: Some("10.201.7.0/24".into()),
            gateway_ip: Some(None),
            // Leave .1 outside the pool so that it can become the gateway below.
            allocation_pools: Some(vec![AllocationPool {
                start: "10.201.7.10".into(),
                end: "10.201.7.200".into(),
            }]),
            host_routes: Some(vec![HostRoute {
                destination: "192.0.2.0/24".into(),
                nexthop: "10.201.7.254".into(),
            }]),
            enable_dhcp: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sub.subnetpool_id.as_deref(), Some(pool.id.as_str()));
    assert_eq!(sub.gateway_ip, None, "gateway_ip null means no gateway");
    assert_eq!(sub.host_routes[0].nexthop, "10.201.7.254");
    n.subnets().add_tag(&sub.id, &pool.id).await.unwrap();
    let by_pool = n
        .subnets()
        .list(
            &Filters::new()
                .eq("subnetpool_id", &pool.id)
                .tags([&pool.id]),
        )
        .await
        .unwrap();
    assert_eq!(by_pool.len(), 1);

    let updated = n
        .subnets()
        .update(
            &sub.id,
            &SubnetSpec {
                gateway_ip: Some(Some("10.201.7.1".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.gateway_ip.as_deref(), Some("10.201.7.1"));

    let avail = n.network_ip_availability(&net.id).await.unwrap();
    assert_eq!(avail.network_id, net.id);
    assert_eq!(avail.subnet_ip_availability.len(), 1);
    assert_eq!(avail.total_ips, 191, "the allocation pool's size");
    let all = n
        .network_ip_availabilities(&Filters::new().eq("network_id", &net.id))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);

    // A pool in use cannot be deleted: a typed conflict.
    n.subnets().delete(&sub.id).await.unwrap();
    n.networks().delete(&net.id).await.unwrap();
    assert!(n.subnetpools().delete(&pool.id).await.unwrap());
}

#[tokio::test]
async fn ports_single_bulk_fixed_ips_and_revision_checks() {
    let n = neutron();
    let net = network(&n, &unique("portnet")).await;
    let sub = subnet(&n, &net, "10.202.0.0/24").await;
    let sub6 = subnet(&n, &net, "fd00:202::/64").await;

    let port = n
        .ports()
        .create(&PortSpec {
            network_id: Some(net.id.clone()),
            name: Some("kuryr-unbound-port".into()),
            mac_address: Some("fa:16:3e:12:34:56".into()),
            fixed_ips: Some(vec![
                FixedIp {
                    subnet_id: sub.id.clone(),
                    ip_address: "10.202.0.50".into(),
                },
                FixedIp {
                    subnet_id: sub6.id.clone(),
                    ip_address: String::new(),
                },
            ]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(port.mac_address, "fa:16:3e:12:34:56");
    assert_eq!(port.fixed_ips.len(), 2, "one dual-stack port");
    assert_eq!(port.status, "DOWN");
    assert!(
        !port.security_groups.is_empty(),
        "the project's default group applies"
    );

    // fixed_ips filters: both conditions at once.
    let found = n
        .ports()
        .list(
            &Filters::new()
                .eq("fixed_ips", format!("subnet_id={}", sub.id))
                .eq("fixed_ips", "ip_address=10.202.0.50"),
        )
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|p| &p.id).collect::<Vec<_>>(),
        vec![&port.id]
    );

    // Host binding and owner in one update (no L2 agent runs, so the binding fails: that is
    // what Neutron answers for a host without an agent).
    let host = unique("host");
    let bound = n
        .ports()
        .update(
            &port.id,
            &PortSpec {
                binding_host_id: Some(host.clone()),
                device_owner: Some("compute:kuryr".into()),
                device_id: Some("endpoint-1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(bound.binding_host_id, host);
    assert_eq!(bound.device_owner, "compute:kuryr");
    assert!(
        ["binding_failed", "ovs"].contains(&bound.binding_vif_type.as_str()),
        "vif_type {}",
        bound.binding_vif_type
    );
    let by_owner = n
        .ports()
        .list(
            &Filters::new()
                .eq("device_owner", "compute:kuryr")
                .eq("binding:host_id", &host),
        )
        .await
        .unwrap();
    assert_eq!(by_owner.len(), 1);

    // If-Match: the current revision passes, a stale one is refused with 412.
    let spec = PortSpec {
        allowed_address_pairs: Some(vec![AddressPair {
            ip_address: "10.202.0.99".into(),
            mac_address: Some("fa:16:3e:00:00:99".into()),
        }]),
        ..Default::default()
    };
    let ok = n
        .ports()
        .update_if_revision(&port.id, &spec, bound.revision_number)
        .await
        .unwrap();
    assert_eq!(ok.allowed_address_pairs.len(), 1);
    let stale = n
        .ports()
        .update_if_revision(&port.id, &spec, bound.revision_number)
        .await
        .unwrap_err();
    assert!(stale.is_precondition_failed(), "{stale}");

    // Bulk: 5 ports in one request, with tags set at creation.
    let specs: Vec<PortSpec> = (0..5)
        .map(|_| PortSpec {
            network_id: Some(net.id.clone()),
            device_owner: Some("compute:kuryr".into()),
            fixed_ips: Some(vec![FixedIp {
                subnet_id: sub.id.clone(),
                ip_address: String::new(),
            }]),
            tags: Some(vec!["kuryr.pool".into()]),
            ..Default::default()
        })
        .collect();
    let bulk = n.ports().create_bulk(&specs).await.unwrap();
    assert_eq!(bulk.len(), 5);
    let on_net = n
        .ports()
        .list(
            &Filters::new()
                .eq("network_id", &net.id)
                .tags(["kuryr.pool"]),
        )
        .await
        .unwrap();
    assert_eq!(on_net.len(), 5);

    // A conflicting address is a typed 409 with Neutron's error type.
    let err = n
        .ports()
        .create(&PortSpec {
            network_id: Some(net.id.clone()),
            fixed_ips: Some(vec![FixedIp {
                subnet_id: sub.id.clone(),
                ip_address: "10.202.0.50".into(),
            }]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(err.kind(), Some("IpAddressAlreadyAllocated"));

    for p in bulk.iter().chain([&port]) {
        n.ports().delete(&p.id).await.unwrap();
    }
    n.networks().delete(&net.id).await.unwrap();
}

#[tokio::test]
async fn security_groups_and_rules() {
    let n = neutron();
    let sg = n
        .security_groups()
        .create(&SecurityGroupSpec {
            name: Some(unique("sg")),
            description: Some("Docker exposed ports created by Kuryr.".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        sg.security_group_rules.len(),
        2,
        "a new group has the two egress rules"
    );
    let rule = n
        .security_group_rules()
        .create(&SecurityGroupRuleSpec {
            security_group_id: Some(sg.id.clone()),
            direction: Some("ingress".into()),
            ethertype: Some("IPv4".into()),
            protocol: Some("udp".into()),
            port_range_min: Some(1234),
            port_range_max: Some(1238),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (rule.port_range_min, rule.port_range_max),
        (Some(1234), Some(1238))
    );
    let rules = n
        .security_group_rules()
        .list(
            &Filters::new()
                .eq("security_group_id", &sg.id)
                .eq("direction", "ingress"),
        )
        .await
        .unwrap();
    assert_eq!(rules.len(), 1);
    n.security_groups()
        .add_tag(&sg.id, "exposed")
        .await
        .unwrap();
    assert!(n.security_group_rules().delete(&rule.id).await.unwrap());
    assert!(n.security_groups().delete(&sg.id).await.unwrap());

    // The default group of the project has the rules seeded by the real migrations.
    let defaults = n
        .security_groups()
        .list(&Filters::new().eq("name", "default"))
        .await
        .unwrap();
    let project = n.session().project_id().await.unwrap().unwrap();
    let ours = defaults
        .iter()
        .find(|g| g.project_id == project)
        .expect("default group");
    assert!(ours.security_group_rules.iter().any(
        |r| r.direction == "ingress" && r.remote_group_id.as_deref() == Some(ours.id.as_str())
    ));
}

#[tokio::test]
async fn trunks_with_subports() {
    let n = neutron();
    let net = network(&n, &unique("trunknet")).await;
    let _sub = subnet(&n, &net, "10.203.0.0/24").await;
    let port = |name: &str| PortSpec {
        network_id: Some(net.id.clone()),
        name: Some(name.into()),
        ..Default::default()
    };
    let parent = n.ports().create(&port("vm-port")).await.unwrap();
    let child = n.ports().create(&port("container-port")).await.unwrap();
    let trunk = n
        .trunks()
        .create(&TrunkSpec {
            name: Some(unique("trunk")),
            port_id: Some(parent.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(trunk.port_id, parent.id);
    let sub = Subport {
        port_id: child.id.clone(),
        segmentation_type: "vlan".into(),
        segmentation_id: 101,
        mac_address: None,
    };
    let after = n
        .add_subports(&trunk.id, std::slice::from_ref(&sub))
        .await
        .unwrap();
    assert_eq!(after.sub_ports.len(), 1);
    assert_eq!(after.sub_ports[0].segmentation_id, 101);
    let listed = n.subports(&trunk.id).await.unwrap();
    assert_eq!(listed[0].port_id, child.id);
    let details = n
        .ports()
        .get(&parent.id)
        .await
        .unwrap()
        .trunk_details
        .expect("trunk_details");
    assert_eq!(details.trunk_id, trunk.id);
    // The same VLAN id twice is refused.
    let dup = n.add_subports(&trunk.id, &[sub]).await.unwrap_err();
    assert!(matches!(dup.status(), Some(400 | 409)), "{dup}");
    let removed = n.remove_subports(&trunk.id, &listed).await.unwrap();
    assert!(removed.sub_ports.is_empty());
    assert!(n.trunks().delete(&trunk.id).await.unwrap());
    n.ports().delete(&child.id).await.unwrap();
    n.ports().delete(&parent.id).await.unwrap();
    n.networks().delete(&net.id).await.unwrap();
}

#[tokio::test]
async fn routers_floating_ips_and_port_forwardings() {
    let n = neutron();
    let ext = n
        .networks()
        .create(&NetworkSpec {
            name: Some(unique("ext")),
            router_external: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(ext.router_external);
    let ext_sub = subnet(&n, &ext, "198.51.100.0/24").await;
    let net = network(&n, &unique("innet")).await;
    let sub = n
        .subnets()
        .create(&SubnetSpec {
            network_id: Some(net.id.clone()),
            ip_version: Some(4),
            cidr: Some("10.204.0.0/24".into()),
            gateway_ip: Some(Some("10.204.0.1".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let router = n
        .routers()
        .create(&RouterSpec {
            name: Some(unique("router")),
            external_gateway_info: Some(Some(ExternalGatewayInfo {
                network_id: ext.id.clone(),
                enable_snat: None,
                external_fixed_ips: None,
            })),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        router.external_gateway_info.as_ref().unwrap().network_id,
        ext.id
    );
    let iface = n
        .add_router_interface(&router.id, &RouterInterface::Subnet(sub.id.clone()))
        .await
        .unwrap();
    assert_eq!(iface.subnet_id, sub.id);
    assert!(!iface.port_id.is_empty());

    let port = n
        .ports()
        .create(&PortSpec {
            network_id: Some(net.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let fip = n
        .floating_ips()
        .create(&FloatingIpSpec {
            floating_network_id: Some(ext.id.clone()),
            port_id: Some(Some(port.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(fip.floating_ip_address.starts_with("198.51.100."));
    assert_eq!(fip.port_id.as_deref(), Some(port.id.as_str()));
    assert_eq!(fip.router_id.as_deref(), Some(router.id.as_str()));
    let freed = n
        .floating_ips()
        .update(
            &fip.id,
            &FloatingIpSpec {
                port_id: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(freed.port_id, None);

    // Port forwarding on the (now unassociated) floating IP.
    let internal_ip = port.fixed_ips[0].ip_address.clone();
    let pfs = n.port_forwardings(&fip.id).unwrap();
    let pf = pfs
        .create(&PortForwardingSpec {
            protocol: Some("tcp".into()),
            external_port: Some(8080),
            internal_port: Some(80),
            internal_ip_address: Some(internal_ip.clone()),
            internal_port_id: Some(port.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((pf.external_port, pf.internal_port), (Some(8080), Some(80)));
    assert_eq!(pfs.list(&Filters::new()).await.unwrap().len(), 1);
    let changed = pfs
        .update(
            &pf.id,
            &PortForwardingSpec {
                external_port: Some(8081),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.external_port, Some(8081));
    assert!(pfs.delete(&pf.id).await.unwrap());

    assert!(n.floating_ips().delete(&fip.id).await.unwrap());
    n.ports().delete(&port.id).await.unwrap();
    let removed = n
        .remove_router_interface(&router.id, &RouterInterface::Subnet(sub.id.clone()))
        .await
        .unwrap();
    assert_eq!(removed.subnet_id, sub.id);
    assert!(n.routers().delete(&router.id).await.unwrap());
    n.networks().delete(&net.id).await.unwrap();
    n.subnets().delete(&ext_sub.id).await.unwrap();
    n.networks().delete(&ext.id).await.unwrap();
}

#[tokio::test]
async fn extensions_for_feature_detection() {
    let n = neutron();
    let ext = n.extensions().await.unwrap();
    let has = |a: &str| ext.iter().any(|e| e.alias == a);
    for alias in [
        "subnet_allocation",
        "standard-attr-tag",
        "trunk",
        "binding",
        "revision-if-match",
    ] {
        assert!(has(alias), "extension {alias} is missing");
    }
}

#[tokio::test]
async fn invalid_input_is_refused_before_sending() {
    let n = neutron();
    let err = n.networks().get("../ports").await.unwrap_err();
    assert!(err.to_string().contains("not a valid resource id"), "{err}");
    let err = n
        .networks()
        .list(&Filters::new().tags(["a,b"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no comma"), "{err}");
    let err = n.ports().add_tag("abc", "").await.unwrap_err();
    assert!(err.to_string().contains("1 to 255"), "{err}");
    // Bad input that only Neutron can judge comes back as a typed 400.
    let err = n
        .subnets()
        .create(&SubnetSpec {
            network_id: Some("00000000-0000-0000-0000-000000000000".into()),
            ip_version: Some(4),
            cidr: Some("not-a-cidr".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
}
