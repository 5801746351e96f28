//! Shared set-up for the tests that talk to the real local Keystone and Neutron started by
//! `scripts/stack up` (the test command starts it). The credentials come from the `OS_*`
//! variables that `scripts/stack env` prints.

#![allow(dead_code)]

use std::time::Duration;

use kuryr_openstack::auth::{
    Credentials, DomainRef, EndpointFilter, KeystoneAuth, NamedRef, Scope,
};
use kuryr_openstack::neutron::Neutron;
use kuryr_openstack::{AuthMethod, HttpOptions, Session};

/// An `OS_*` variable, or a failure that says how to get the stack.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the local OpenStack. Run `scripts/test` \
             (which starts it), or `scripts/stack up && eval \"$(scripts/stack env)\"` first"
        )
    })
}

pub fn user() -> NamedRef {
    NamedRef::Name {
        name: env("OS_USERNAME"),
        domain: DomainRef::Name(env("OS_USER_DOMAIN_NAME")),
    }
}

pub fn project_scope() -> Scope {
    Scope::Project(NamedRef::Name {
        name: env("OS_PROJECT_NAME"),
        domain: DomainRef::Name(env("OS_PROJECT_DOMAIN_NAME")),
    })
}

pub fn password_auth(password: &str) -> KeystoneAuth {
    KeystoneAuth::new(
        &env("OS_AUTH_URL"),
        Credentials::Password {
            user: user(),
            password: password.to_owned().into(),
        },
        project_scope(),
    )
    .expect("valid auth settings")
}

pub fn http() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(60),
        ..HttpOptions::default()
    }
}

pub fn session() -> Session {
    Session::new(
        AuthMethod::Keystone(password_auth(&env("OS_PASSWORD"))),
        http(),
    )
    .expect("session")
}

pub fn endpoint() -> EndpointFilter {
    let mut filter = EndpointFilter::new("network");
    filter.region = std::env::var("OS_REGION_NAME").ok();
    filter
}

pub fn neutron() -> Neutron {
    Neutron::new(session(), endpoint())
}

/// A name unique to this test run, so that parallel tests never see each other's resources.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "test-{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
