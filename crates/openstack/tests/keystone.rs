//! Keystone authentication against the real local Keystone: every credential kind and scope,
//! wrong passwords, token sharing, renewal before expiry and the 401 path.

// Tests fail by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{endpoint, env, http, neutron, password_auth, project_scope, session, unique, user};
use kuryr_openstack::auth::{
    Credentials, DomainRef, EndpointFilter, KeystoneAuth, NamedRef, Scope, Token,
};
use kuryr_openstack::neutron::{Filters, Neutron};
use kuryr_openstack::{AuthMethod, Error, Session};
use serde_json::json;

fn keystone(auth: KeystoneAuth) -> Session {
    Session::new(AuthMethod::Keystone(auth), http()).unwrap()
}

#[tokio::test]
async fn wrong_password_is_a_clear_auth_error() {
    let s = keystone(password_auth("certainly-not-the-password"));
    let err = s.token().await.unwrap_err();
    let Error::Unauthorized { status, who, .. } = &err else {
        panic!("expected Unauthorized, got {err:?}")
    };
    assert_eq!(*status, 401);
    assert!(who.contains(&env("OS_USERNAME")), "{who}");
    let text = err.to_string();
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(
        !text.contains("certainly-not-the-password"),
        "the password never shows: {text}"
    );
    assert!(err.hint().contains("password"));
    // A Neutron call with these credentials fails the same way, before reaching Neutron.
    let n = Neutron::new(s, endpoint());
    assert!(matches!(
        n.networks().list(&Filters::new()).await,
        Err(Error::Unauthorized { .. })
    ));
}

/// Tokens the session may have fetched by now: one, plus one more if the first has entered its
/// renewal margin (a Neutron slowed down by other work can make a test outlive a 60 s token).
fn tokens_allowed(first: &Token) -> u64 {
    if first.needs_refresh(chrono::Utc::now()) {
        2
    } else {
        1
    }
}

#[tokio::test]
async fn concurrent_callers_share_one_token() {
    // Keystone alone: 20 callers asking at once wait for one request.
    let s = session();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.token().await.map(|t| t.serial) })
        })
        .collect();
    let mut serials = Vec::new();
    for t in tasks {
        serials.push(t.await.unwrap().unwrap());
    }
    assert!(serials.iter().all(|&x| x == serials[0]), "{serials:?}");
    assert_eq!(s.tokens_issued(), 1, "one Keystone request for 20 callers");

    // Through Neutron: 20 concurrent calls reuse that token.
    let first = s.token().await.unwrap();
    let n = Neutron::new(s, endpoint());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let n = n.clone();
            tokio::spawn(async move { n.networks().list(&Filters::new().limit(1)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let allowed = tokens_allowed(&first);
    assert!(
        n.session().tokens_issued() <= allowed,
        "20 Neutron callers made {} Keystone requests (at most {allowed} expected)",
        n.session().tokens_issued()
    );
}

#[tokio::test]
async fn a_refused_token_is_replaced_once() {
    let n = neutron();
    n.networks().list(&Filters::new().limit(1)).await.unwrap();
    assert_eq!(n.session().tokens_issued(), 1);
    // Keystone cannot be made to revoke a token that Neutron's cache still accepts, so the
    // test plants a token Keystone never issued (fault injection).
    n.session().inject_invalid_token_for_tests().await;
    n.networks().list(&Filters::new().limit(1)).await.unwrap();
    assert_eq!(
        n.session().tokens_issued(),
        2,
        "re-authenticated after the 401"
    );
}

#[tokio::test]
async fn token_is_renewed_before_it_expires() {
    let s = session();
    let first = s.token().await.unwrap();
    let lifetime = first.expires_at - first.issued_at.expect("issued_at");
    assert!(
        lifetime <= chrono::Duration::seconds(300),
        "the local Keystone issues short tokens for this test (KURYR_STACK_TOKEN_EXPIRATION); got {lifetime}"
    );
    let n = Neutron::new(s.clone(), endpoint());
    n.networks().list(&Filters::new().limit(1)).await.unwrap();
    // Wait until the token enters its renewal margin, then call again.
    let renew_at = first.expires_at - first.refresh_margin() + chrono::Duration::milliseconds(500);
    let wait = (renew_at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    n.networks().list(&Filters::new().limit(1)).await.unwrap();
    let second = s.token().await.unwrap();
    assert_ne!(second.serial, first.serial, "a new token was fetched");
    assert!(second.expires_at > first.expires_at);
    // And past the old token's expiry, calls keep working.
    let wait = (first.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_secs(1)).await;
    n.networks().list(&Filters::new().limit(1)).await.unwrap();
}

#[tokio::test]
async fn token_auth_project_id_and_domain_scopes() {
    let s = session();
    let token = s.token().await.unwrap();
    let project = token.project.clone().expect("project-scoped");
    assert!(token.roles.iter().any(|r| r == "admin"));

    // An existing token exchanged for one scoped by project id.
    let by_token = keystone(
        KeystoneAuth::new(
            &env("OS_AUTH_URL"),
            Credentials::Token {
                token: token.secret().to_owned().into(),
            },
            Scope::Project(NamedRef::Id(project.id.clone())),
        )
        .unwrap(),
    );
    let t2 = by_token.token().await.unwrap();
    assert_eq!(t2.project.as_ref().unwrap().id, project.id);
    Neutron::new(by_token, endpoint())
        .networks()
        .list(&Filters::new().limit(1))
        .await
        .unwrap();

    // Domain scope (the stack gives the kuryr user a role on the default domain).
    let domain = keystone(
        KeystoneAuth::new(
            &env("OS_AUTH_URL"),
            Credentials::Password {
                user: user(),
                password: env("OS_PASSWORD").into(),
            },
            Scope::Domain(DomainRef::Name(env("OS_USER_DOMAIN_NAME"))),
        )
        .unwrap(),
    );
    let t3 = domain.token().await.unwrap();
    assert!(t3.project.is_none());
    assert_eq!(t3.domain.as_ref().unwrap().id, "default");
}

/// Create an application credential through Keystone's API (with the test user's token).
async fn create_app_cred(s: &Session, name: &str) -> (String, String, String) {
    let token = s.token().await.unwrap();
    let url = format!(
        "{}/users/{}/application_credentials",
        env("OS_AUTH_URL").trim_end_matches('/'),
        token.user.id
    );
    let resp = reqwest::Client::new()
        .post(url)
        .header("X-Auth-Token", token.secret())
        .json(&json!({"application_credential": {"name": name, "secret": "app-cred-secret-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    let id = body["application_credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, token.user.id.clone(), token.secret().to_owned())
}

#[tokio::test]
async fn application_credentials_by_id_and_by_name() {
    let s = session();
    let name = unique("appcred");
    let (id, user_id, admin_token) = create_app_cred(&s, &name).await;
    for creds in [
        Credentials::ApplicationCredential {
            id: Some(id.clone()),
            name: None,
            user: None,
            secret: "app-cred-secret-1".to_string().into(),
        },
        Credentials::ApplicationCredential {
            id: None,
            name: Some(name.clone()),
            user: Some(NamedRef::Id(user_id.clone())),
            secret: "app-cred-secret-1".to_string().into(),
        },
    ] {
        let app = keystone(KeystoneAuth::new(&env("OS_AUTH_URL"), creds, project_scope()).unwrap());
        let token = app.token().await.unwrap();
        assert_eq!(token.project.as_ref().unwrap().name, env("OS_PROJECT_NAME"));
        Neutron::new(app, endpoint())
            .networks()
            .list(&Filters::new().limit(1))
            .await
            .unwrap();
    }
    let wrong = keystone(
        KeystoneAuth::new(
            &env("OS_AUTH_URL"),
            Credentials::ApplicationCredential {
                id: Some(id.clone()),
                name: None,
                user: None,
                secret: "wrong".to_string().into(),
            },
            Scope::Unscoped,
        )
        .unwrap(),
    );
    assert!(matches!(
        wrong.token().await,
        Err(Error::Unauthorized { .. })
    ));
    let url = format!(
        "{}/users/{user_id}/application_credentials/{id}",
        env("OS_AUTH_URL").trim_end_matches('/')
    );
    let resp = reqwest::Client::new()
        .delete(url)
        .header("X-Auth-Token", admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test]
async fn endpoint_selection_by_interface_and_region() {
    let s = session();
    for interface in ["public", "internal", "admin"] {
        let mut f = EndpointFilter::new("network");
        f.interface = interface.into();
        let url = s.endpoint(&f).await.unwrap();
        assert_eq!(url.port(), Some(9696), "{interface}");
    }
    let mut f = endpoint();
    f.region = Some("Nowhere".into());
    let err = s.endpoint(&f).await.unwrap_err();
    match &err {
        Error::EndpointNotFound { available, .. } => {
            assert_eq!(available.len(), 3, "{available:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.hint().contains("region_name"), "{}", err.hint());
    let n = Neutron::new(s, f);
    assert!(matches!(
        n.networks().list(&Filters::new()).await,
        Err(Error::EndpointNotFound { .. })
    ));
}

#[tokio::test]
async fn shared_session_across_tasks_is_cheap_to_clone() {
    let n = Arc::new(neutron());
    let first = n.session().token().await.unwrap();
    let (nets, ports, one) = (n.networks(), n.ports(), Filters::new().limit(1));
    let (a, b) = tokio::join!(nets.list(&one), ports.list(&one));
    a.unwrap();
    b.unwrap();
    assert!(n.session().tokens_issued() <= tokens_allowed(&first));
}
