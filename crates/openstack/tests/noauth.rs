//! No-auth mode against the real Neutron API that `scripts/stack` runs with
//! `auth_strategy = noauth` (same database as the Keystone-protected one).

// Tests fail by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{env, http, neutron, unique};
use kuryr_openstack::auth::EndpointFilter;
use kuryr_openstack::neutron::{Filters, NetworkSpec, Neutron, PortSpec};
use kuryr_openstack::{AuthMethod, Session};
use url::Url;

fn noauth(project_id: &str) -> Neutron {
    let endpoint = Url::parse(&env("KURYR_STACK_NEUTRON_NOAUTH_URL")).unwrap();
    let session = Session::new(
        AuthMethod::NoAuth {
            endpoint,
            project_id: Some(project_id.to_owned()),
        },
        http(),
    )
    .unwrap();
    Neutron::new(session, EndpointFilter::new("network"))
}

#[tokio::test]
async fn creates_carry_the_project_and_are_seen_through_keystone_too() {
    // The project of the Keystone user, so that the authenticated API sees the same rows.
    let project = neutron()
        .session()
        .project_id()
        .await
        .unwrap()
        .expect("project");
    let n = noauth(&project);
    assert_eq!(
        n.session().project_id().await.unwrap().as_deref(),
        Some(project.as_str())
    );
    let name = unique("noauth");
    let net = n
        .networks()
        .create(&NetworkSpec {
            name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(net.project_id, project, "project_id was put in the body");
    let port = n
        .ports()
        .create(&PortSpec {
            network_id: Some(net.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(port.project_id, project);
    n.networks().add_tag(&net.id, "kuryr.noauth").await.unwrap();
    let found = n
        .networks()
        .list(&Filters::new().eq("name", &name).tags(["kuryr.noauth"]))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);

    let via_keystone = neutron().networks().get(&net.id).await.unwrap();
    assert_eq!(via_keystone.tags, vec!["kuryr.noauth"]);

    assert!(n.ports().delete(&port.id).await.unwrap());
    assert!(n.networks().delete(&net.id).await.unwrap());
    assert!(neutron()
        .networks()
        .get_opt(&net.id)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_keystone_protected_api_refuses_a_noauth_client() {
    let session = Session::new(
        AuthMethod::NoAuth {
            endpoint: Url::parse("http://127.0.0.1:9696").unwrap(),
            project_id: Some("p1".into()),
        },
        http(),
    )
    .unwrap();
    let n = Neutron::new(session, EndpointFilter::new("network"));
    let err = n.networks().list(&Filters::new()).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err:?}");
}
