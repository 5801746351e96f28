//! HTTP settings shared by Keystone and Neutron calls: TLS, timeouts and retries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// TLS settings, named after keystoneauth's session options.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM bundle of the CAs to trust *instead of* the system roots (`cafile`).
    pub ca_file: Option<PathBuf>,
    /// Client certificate, PEM (`certfile`).
    pub cert_file: Option<PathBuf>,
    /// Client key, PEM (`keyfile`); may also be inside `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Skip server certificate verification (`insecure`). Off by default.
    pub insecure: bool,
}

/// How requests are sent.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for one attempt of a request, answer included.
    pub request_timeout: Duration,
    /// Extra attempts after a connection could not be made (nothing was sent, so any
    /// method), or after an idempotent request's connection broke or timed out.
    pub retries: u32,
    /// Extra attempts of an idempotent request answered with one of `retriable_statuses`.
    pub status_retries: u32,
    /// The statuses worth sending an idempotent request again for.
    pub retriable_statuses: Vec<u16>,
    /// First backoff delay; doubled on each retry.
    pub retry_delay: Duration,
    /// No retry starts later than this after the first attempt, so a request takes at most
    /// about `retry_timeout + request_timeout`.
    pub retry_timeout: Duration,
    pub tls: TlsOptions,
    pub user_agent: String,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            retries: 3,
            status_retries: 3,
            retriable_statuses: RETRIABLE_STATUSES.to_vec(),
            retry_delay: Duration::from_millis(250),
            retry_timeout: Duration::from_secs(15),
            tls: TlsOptions::default(),
            user_agent: concat!("kuryr/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// The statuses of a failure that a later attempt may not meet: an internal error (often a
/// database deadlock or a lost connection of the API worker), a bad gateway, an overloaded or
/// restarting service, a proxy's timeout.
pub const RETRIABLE_STATUSES: &[u16] = &[500, 502, 503, 504];

/// A plain-text cause for an [`Error::Tls`].
fn reason(text: &str) -> Arc<dyn std::error::Error + Send + Sync> {
    Arc::from(Box::<dyn std::error::Error + Send + Sync>::from(text))
}

fn read_tls_file(option: &'static str, path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Tls {
        option,
        value: path.display().to_string(),
        source: Arc::new(e),
    })
}

/// Build the reqwest client for these options.
pub(crate) fn build_client(opts: &HttpOptions) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.request_timeout)
        .user_agent(&opts.user_agent)
        // OpenStack APIs do not redirect; following one would send the token (and, for
        // Keystone, the password) to wherever the redirect points.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(50));

    if let Some(ca) = &opts.tls.ca_file {
        let pem = read_tls_file("cafile", ca)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Tls {
            option: "cafile",
            value: ca.display().to_string(),
            source: Arc::new(e),
        })?;
        if certs.is_empty() {
            return Err(Error::Tls {
                option: "cafile",
                value: ca.display().to_string(),
                source: reason("no PEM certificate in the file"),
            });
        }
        builder = builder.tls_certs_only(certs);
    }

    match (&opts.tls.cert_file, &opts.tls.key_file) {
        (Some(cert), key) => {
            let mut pem = read_tls_file("certfile", cert)?;
            if let Some(key) = key {
                pem.push(b'\n');
                pem.extend(read_tls_file("keyfile", key)?);
            }
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| Error::Tls {
                option: "certfile",
                value: cert.display().to_string(),
                source: Arc::new(e),
            })?;
            builder = builder.identity(identity);
        }
        (None, Some(key)) => {
            return Err(Error::Tls {
                option: "keyfile",
                value: key.display().to_string(),
                source: reason("a key file needs a certfile beside it"),
            })
        }
        (None, None) => {}
    }

    if opts.tls.insecure {
        tracing::warn!("TLS certificate verification is off (insecure = true)");
        builder = builder.tls_danger_accept_invalid_certs(true);
    }

    builder
        .build()
        .map_err(|e| Error::InvalidSettings(format!("cannot build the HTTP client: {e}")))
}

/// Whether a method may be sent again without changing the outcome.
pub(crate) fn is_idempotent(method: &reqwest::Method) -> bool {
    use reqwest::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .contains(method)
}

/// What the failed attempt allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A status the caller gets as it is.
    Answered,
    /// A retriable status.
    RetriableStatus,
    /// No connection: nothing was sent.
    NotConnected,
    /// Sent, but no (whole) answer: the service may have acted.
    AnswerLost,
}

/// Whether attempt `attempt` (0-based) with this outcome is sent again.
pub(crate) fn may_retry(
    opts: &HttpOptions,
    idempotent: bool,
    outcome: Outcome,
    attempt: u32,
) -> bool {
    match outcome {
        Outcome::Answered => false,
        Outcome::RetriableStatus => idempotent && attempt < opts.status_retries,
        Outcome::NotConnected => attempt < opts.retries,
        Outcome::AnswerLost => idempotent && attempt < opts.retries,
    }
}

/// Delay before retry number `attempt` (0-based): `base * 2^attempt`, capped at 8 s.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.min(5))
        .min(Duration::from_secs(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(250);
        assert_eq!(backoff(base, 0), Duration::from_millis(250));
        assert_eq!(backoff(base, 1), Duration::from_millis(500));
        assert_eq!(backoff(base, 3), Duration::from_secs(2));
        assert_eq!(backoff(base, 30), Duration::from_secs(8));
    }

    #[test]
    fn retries_depend_on_what_was_sent() {
        let opts = HttpOptions::default();
        // Nothing was sent: a POST may go again.
        assert!(may_retry(&opts, false, Outcome::NotConnected, 0));
        // Sent and the answer lost, or a 5xx: only an idempotent request goes again.
        assert!(!may_retry(&opts, false, Outcome::AnswerLost, 0));
        assert!(!may_retry(&opts, false, Outcome::RetriableStatus, 0));
        assert!(may_retry(&opts, true, Outcome::AnswerLost, 0));
        assert!(may_retry(&opts, true, Outcome::RetriableStatus, 2));
        assert!(!may_retry(&opts, true, Outcome::RetriableStatus, 3));
        assert!(!may_retry(&opts, true, Outcome::Answered, 0));
        assert_eq!(opts.retriable_statuses, vec![500, 502, 503, 504]);
    }

    #[test]
    fn only_safe_methods_are_retried() {
        assert!(is_idempotent(&reqwest::Method::GET));
        assert!(is_idempotent(&reqwest::Method::DELETE));
        assert!(!is_idempotent(&reqwest::Method::POST));
    }

    #[test]
    fn missing_ca_file_names_the_option() {
        let opts = HttpOptions {
            tls: TlsOptions {
                ca_file: Some("/nonexistent/ca.pem".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = build_client(&opts).unwrap_err();
        assert!(
            err.to_string().contains("cafile = /nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn key_without_cert_is_refused() {
        let opts = HttpOptions {
            tls: TlsOptions {
                key_file: Some("/tmp/key.pem".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = build_client(&opts).unwrap_err();
        assert!(err.to_string().contains("keyfile"), "{err}");
    }
}
