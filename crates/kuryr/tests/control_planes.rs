//! Two Docker control planes on one existing Neutron network: two kuryr daemons with
//! different `control_plane_id`s (as two Docker engines or two Swarms would have) map the
//! same user network, subnet and, behind the subnet, a kuryr subnetpool of its own. Each keeps its
//! own mapping; one leaving takes nothing from the other; the last one gives everything back
//! untagged and deletes only what kuryr made. (Two engines with the default id, each its
//! engine's, are tested across the simulated hosts in `multihost.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use docker_harness::*;
use kuryr_openstack::neutron::SubnetPool;

fn plugin_socket(k: &Kuryr) -> PathBuf {
    PathBuf::from(format!("/run/docker/plugins/{}.sock", k.plugin))
}

/// The kuryr pools that pin `subnet_id` (there must be one at most).
async fn pools_of_subnet(k: &Kuryr, cidr: &str, subnet_id: &str) -> Vec<SubnetPool> {
    k.pools_named(&format!("kuryrPool-{cidr}"))
        .await
        .into_iter()
        .filter(|p| p.tags.iter().any(|t| t == subnet_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_share_an_existing_network_and_give_it_back_untagged() {
    const CIDR: &str = "10.211.1.0/24";
    with_two_control_planes(["cp-a", "cp-b"], CIDR, |a, b| async move {
        share(&a, &b, CIDR).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_kuryr_made_that_another_control_plane_attached_is_left_to_it() {
    const CIDR: &str = "10.211.2.0/24";
    with_two_control_planes(["cp-made-a", "cp-made-b"], CIDR, |a, b| async move {
        attach_made(&a, &b, CIDR).await
    })
    .await;
}

/// Runs `body` with two daemons on this Docker engine, each with its own plugin name and
/// `control_plane_id` (the names given), pools off; the second one's log is printed when
/// the body fails.
async fn with_two_control_planes<F, Fut>(ids: [&'static str; 2], cidr: &'static str, body: F)
where
    F: FnOnce(Arc<Kuryr>, Arc<Kuryr>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let [id_a, id_b] = ids;
    with_kuryr_unstarted(id_a, &[cidr], |a| async move {
        let b = Arc::new(Kuryr::without_daemon(id_b).await);
        for (k, cp) in [(&a, id_a), (&b, id_b)] {
            let conf = stack_config_with(
                &k.plugin,
                &format!("[DEFAULT]\ncontrol_plane_id = {cp}\n[vif_pool]\nenabled = false"),
            );
            k.serve_with(&conf, &plugin_socket(k), false).await;
        }
        let outcome = tokio::spawn(body(a.clone(), b.clone())).await;
        b.cleanup().await;
        if let Err(e) = outcome {
            eprintln!("--- control plane b's kuryr log ---\n{}", b.log_text());
            std::panic::resume_unwind(e.into_panic());
        }
    })
    .await;
}

/// a makes a network through Docker; b attaches it by id: a's `docker network rm` must not
/// cut b's containers off.
async fn attach_made(a: &Kuryr, b: &Kuryr, cidr: &str) {
    let na = a.name("na");
    let id_a = a.create_network(&na, &["--subnet", cidr]).await;
    let made = a.network_of(&id_a).await;
    let subnet = a.neutron.subnets().get(&made.subnets[0]).await.unwrap();
    let net_opt = format!("neutron.net.uuid={}", made.id);
    let sub_opt = format!("neutron.subnet.uuid={}", subnet.id);
    let nb = b.name("nb");
    let id_b = b
        .create_network(
            &nb,
            &[
                "--subnet",
                cidr,
                "-o",
                &net_opt,
                "-o",
                &sub_opt,
                "--ipam-opt",
                &sub_opt,
            ],
        )
        .await;
    let (ca, cb) = (a.name("ca"), b.name("cb"));
    a.run(&ca, &["--net", &na]).await;
    b.run(&cb, &["--net", &nb]).await;
    let ip_b = b.attachment(&cb, &nb).await.ip;
    assert!(a.pings(&ca, &ip_b, Duration::from_secs(60)).await);

    // a leaves: the network and its subnet stay for b, without a's tags.
    a.remove_container(&ca).await;
    a.remove_network(&na).await;
    let network = a.neutron.networks().get(&made.id).await.unwrap();
    for tag in id_tags(&id_a) {
        assert!(!network.tags.contains(&tag), "{tag}: {:?}", network.tags);
    }
    assert!(
        !network.tags.iter().any(|t| t.starts_with("kuryr.host:")),
        "no host's reconciler takes it for an orphan: {:?}",
        network.tags
    );
    for tag in id_tags(&id_b) {
        assert!(network.tags.contains(&tag), "{tag}: {:?}", network.tags);
    }
    assert!(a
        .neutron
        .subnets()
        .get_opt(&subnet.id)
        .await
        .unwrap()
        .is_some());
    let cb2 = b.name("cb2");
    b.run(&cb2, &["--net", &nb]).await;
    assert!(b.pings(&cb2, &ip_b, Duration::from_secs(60)).await);

    // b leaves: the network is given back untagged, and never deleted by b.
    b.remove_container(&cb).await;
    b.remove_container(&cb2).await;
    b.remove_network(&nb).await;
    let network = a.neutron.networks().get(&made.id).await.unwrap();
    assert!(
        !has_kuryr_tag(&network.tags),
        "untagged: {:?}",
        network.tags
    );
    assert!(a.ports_on(&made.id).await.is_empty(), "no port left");
    // The subnet kuryr made went with the last Docker network that used it.
    assert!(a
        .neutron
        .subnets()
        .get_opt(&subnet.id)
        .await
        .unwrap()
        .is_none());
    // An operator deletes it once done; a's pool then has no subnet, and goes too.
    remove_network_and_ports(&a.neutron, &network).await;
    for pool in a.pools_named(&format!("kuryrPool-{cidr}")).await {
        let _ = a.neutron.subnetpools().delete(&pool.id).await;
    }
}

async fn share(a: &Kuryr, b: &Kuryr, cidr: &str) {
    let (net, subnets) = a.neutron_network(&a.name("shared"), &[cidr]).await;
    let subnet = &subnets[0];
    let net_opt = format!("neutron.net.uuid={}", net.id);
    let sub_opt = format!("neutron.subnet.uuid={}", subnet.id);
    let opts = [
        "--subnet",
        cidr,
        "-o",
        &net_opt,
        "-o",
        &sub_opt,
        "--ipam-opt",
        &sub_opt,
    ];
    let na = a.name("na");
    let nb = b.name("nb");
    let id_a = a.create_network(&na, &opts).await;
    let id_b = b.create_network(&nb, &opts).await;

    // Each control plane has its own kuryr pool behind the subnet, marked as its own, and
    // the subnet carries both pools' ids.
    let pools = pools_of_subnet(a, cidr, &subnet.id).await;
    assert_eq!(pools.len(), 2, "one pool per control plane: {pools:#?}");
    let pool_of = |cp: &str| {
        pools
            .iter()
            .find(|p| p.tags.iter().any(|t| t == cp))
            .unwrap_or_else(|| panic!("a pool marked {cp}: {pools:#?}"))
            .clone()
    };
    let (pool_a, pool_b) = (pool_of("kuryr.cp:cp-a"), pool_of("kuryr.cp:cp-b"));
    let tagged = a.neutron.subnets().get(&subnet.id).await.unwrap();
    for p in [&pool_a, &pool_b] {
        assert!(tagged.tags.contains(&p.id), "{tagged:#?}");
    }
    let network = a.neutron.networks().get(&net.id).await.unwrap();
    for id in [&id_a, &id_b] {
        let existing = format!("kuryr.net.existing:{}", &id[..12]);
        assert!(
            network.tags.contains(&existing),
            "{existing}: {:?}",
            network.tags
        );
    }

    // Containers of both control planes share the network.
    let ca = a.name("ca");
    let cb = b.name("cb");
    a.run(&ca, &["--net", &na]).await;
    b.run(&cb, &["--net", &nb]).await;
    let ip_b = b.attachment(&cb, &nb).await.ip;
    assert!(
        a.pings(&ca, &ip_b, Duration::from_secs(60)).await,
        "a container of control plane a reaches one of b on the shared network"
    );

    // a leaves: b keeps its pool and its subnet tag; a's pool goes.
    a.remove_container(&ca).await;
    a.remove_network(&na).await;
    assert!(a
        .neutron
        .subnetpools()
        .get_opt(&pool_a.id)
        .await
        .unwrap()
        .is_none());
    assert!(a
        .neutron
        .subnetpools()
        .get_opt(&pool_b.id)
        .await
        .unwrap()
        .is_some());
    let subnet_now = a.neutron.subnets().get(&subnet.id).await.unwrap();
    assert!(
        subnet_now.tags.contains(&pool_b.id),
        "b's mapping stays: {subnet_now:#?}"
    );
    assert!(!subnet_now.tags.contains(&pool_a.id), "{subnet_now:#?}");
    let network = a.neutron.networks().get(&net.id).await.unwrap();
    assert!(!network
        .tags
        .contains(&format!("kuryr.net.existing:{}", &id_a[..12])));
    assert!(network
        .tags
        .contains(&format!("kuryr.net.existing:{}", &id_b[..12])));
    for tag in id_tags(&id_b) {
        assert!(network.tags.contains(&tag), "{tag}: {:?}", network.tags);
    }
    // b, restarted (nothing cached), still serves its network from that pool.
    let conf_b = stack_config_with(
        &b.plugin,
        "[DEFAULT]\ncontrol_plane_id = cp-b\n[vif_pool]\nenabled = false",
    );
    b.serve_with(&conf_b, &plugin_socket(b), false).await;
    let cb2 = b.name("cb2");
    b.run(&cb2, &["--net", &nb]).await;
    assert!(b.pings(&cb2, &ip_b, Duration::from_secs(60)).await);

    // b leaves last: the user's network and subnet stay, untagged; kuryr's pool goes.
    b.remove_container(&cb).await;
    b.remove_container(&cb2).await;
    b.remove_network(&nb).await;
    let network = a.neutron.networks().get(&net.id).await.unwrap();
    assert!(
        !has_kuryr_tag(&network.tags),
        "untagged: {:?}",
        network.tags
    );
    let subnet_now = a.neutron.subnets().get(&subnet.id).await.unwrap();
    assert!(
        subnet_now.tags.is_empty(),
        "untagged: {:?}",
        subnet_now.tags
    );
    assert!(
        a.neutron
            .subnetpools()
            .get_opt(&pool_b.id)
            .await
            .unwrap()
            .is_none(),
        "kuryr's pool goes with the last control plane"
    );
    assert!(a.ports_on(&net.id).await.is_empty(), "no port left");
}
