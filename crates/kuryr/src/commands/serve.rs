//! `kuryr serve`: the Docker network and IPAM plugin daemon.
//!
//! It listens at once, even before Neutron answers (calls that need Neutron are answered
//! with why it is not usable yet), and stops cleanly on SIGTERM or SIGINT, removing its
//! socket so that Docker does not find a dead plugin.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use kuryr::admin;
use kuryr::config::{default_admin_socket, Config, LoadOptions};
use kuryr::driver::{driver_config, host_id};
use kuryr::openstack::neutron_client;
use kuryr::reconciler::Reconciler;
use kuryr::server::metrics::Metrics;
use kuryr::server::{self, listen};
use kuryr_driver::Driver;
use kuryr_openstack::error::chain;
use tokio::net::TcpListener;

/// Where Docker discovers plugin sockets.
const DOCKER_PLUGIN_DIR: &str = "/run/docker/plugins";

/// The plugin name whose pool ports carry only the host in their tag.
const DEFAULT_PLUGIN_NAME: &str = "kuryr";

/// The admin socket is root's only: it can create and delete ports.
const ADMIN_SOCKET_MODE: u32 = 0o600;

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub socket: PathBuf,
    /// Also listen on `kuryr_uri` (for a `.spec`/`.json` registration).
    pub tcp: bool,
    /// The admin socket (`kuryr pool`, `kuryr stats`); None: `[pool_manager] sock_file`,
    /// else the plugin name's default.
    pub admin_socket: Option<PathBuf>,
    pub plugin_name: String,
    /// Whether `socket` came from `--socket`.
    pub explicit_socket: bool,
}

pub async fn run(load: &LoadOptions, opts: &ServeOptions) -> ExitCode {
    match serve(load, opts).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kuryr serve: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(load: &LoadOptions, opts: &ServeOptions) -> Result<(), String> {
    let config = Config::load(load).map_err(|e| format!("configuration: {e}"))?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let host = host_id().map_err(|e| format!("reading this host's name: {e}"))?;
    let neutron =
        neutron_client(&config.openstack).map_err(|e| format!("{}; {}", chain(&e), e.hint()))?;
    let mut driver_config =
        driver_config(&config, host.clone()).map_err(|e| format!("configuration: {e}"))?;
    if let Some(pool) = &mut driver_config.pool {
        if opts.plugin_name != DEFAULT_PLUGIN_NAME {
            pool.owner = opts.plugin_name.clone();
        }
    }
    let teardown_dir = config
        .default
        .state_path
        .join(&opts.plugin_name)
        .join("teardown");
    kuryr_driver::teardown::Journal::open(&teardown_dir).map_err(|e| {
        format!(
            "cannot make {} for unfinished teardowns: {e}; set [DEFAULT] state_path to a \
             folder this daemon may write",
            teardown_dir.display()
        )
    })?;
    driver_config.teardown_dir = Some(teardown_dir);
    if config.vif_pool.enabled && config.vif_pool.enabled_set && driver_config.pool.is_none() {
        tracing::warn!("[vif_pool] enabled is ignored: port pools are for bare metal (default_port_driver = veth)");
    }
    let driver = Arc::new(Driver::new(neutron, driver_config));
    let metrics = Arc::new(Metrics::default());
    {
        let metrics = metrics.clone();
        kuryr_openstack::accounting::observe(move |seen| metrics.exporter.request(seen));
    }
    let app = server::router(driver.clone(), metrics.clone());
    let unix = listen::bind_unix_group(&opts.socket, config.default.socket_group.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let _socket_guard = listen::SocketGuard(opts.socket.clone());
    // With --socket outside Docker's plugin directory (several daemons side by side),
    // the admin socket goes next to it; never into that directory, where Docker would
    // take it for a plugin.
    let admin_path = opts
        .admin_socket
        .clone()
        .or_else(|| config.pool_manager.sock_file.clone())
        .unwrap_or_else(|| match opts.socket.parent() {
            Some(dir) if opts.explicit_socket && dir != Path::new(DOCKER_PLUGIN_DIR) => {
                dir.join(format!("{}_manage.sock", opts.plugin_name))
            }
            _ => default_admin_socket(&opts.plugin_name),
        });
    let admin = listen::bind_unix_mode(&admin_path, ADMIN_SOCKET_MODE)
        .await
        .map_err(|e| format!("admin socket: {e}"))?;
    let _admin_guard = listen::SocketGuard(admin_path.clone());
    tracing::info!(socket = %opts.socket.display(), admin = %admin_path.display(), host = %host, "kuryr serving");
    eprintln!(
        "kuryr: serving the Docker plugin on {}",
        opts.socket.display()
    );

    let probe = {
        let driver = driver.clone();
        tokio::spawn(async move { driver.wait_for_neutron().await })
    };
    let maintenance = {
        let driver = driver.clone();
        tokio::spawn(async move { driver.maintain_pools().await })
    };
    let cache_refresh = {
        let driver = driver.clone();
        tokio::spawn(async move { driver.maintain_cache().await })
    };
    let teardowns = {
        let driver = driver.clone();
        tokio::spawn(async move { driver.finish_teardowns().await })
    };
    let reconciler = Arc::new(
        Reconciler::new(
            driver.clone(),
            config.default.docker_socket.clone(),
            config.default.orphan_min_age,
        )
        .with_metrics(metrics.clone()),
    );
    let reconciling = {
        let reconciler = reconciler.clone();
        let interval = config.default.reconcile_interval;
        let driver = driver.clone();
        tokio::spawn(async move {
            if interval.is_zero() {
                return;
            }
            driver.wait_for_neutron().await;
            reconciler.run(interval).await
        })
    };
    let mut servers = tokio::task::JoinSet::new();
    {
        let admin_app = admin::router(driver.clone(), metrics.clone(), reconciler.clone());
        servers.spawn(async move {
            axum::serve(admin, admin_app)
                .with_graceful_shutdown(shutdown_signal())
                .await
        });
    }
    {
        let app = app.clone();
        servers.spawn(async move {
            axum::serve(unix, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
        });
    }
    if let Some(address) = config.metrics.bind_address {
        let tcp = TcpListener::bind(address)
            .await
            .map_err(|e| format!("binding {address} ([metrics] bind_address): {e}"))?;
        eprintln!("kuryr: metrics on http://{address}/metrics, health on /healthz and /readyz");
        let app = server::prometheus::router(driver.clone(), metrics.clone());
        servers.spawn(async move {
            axum::serve(tcp, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
        });
    }
    if opts.tcp {
        let address = listen::tcp_address(&config.default.kuryr_uri)?;
        let tcp = TcpListener::bind(&address)
            .await
            .map_err(|e| format!("binding {address} ([DEFAULT] kuryr_uri): {e}"))?;
        if config.default.enable_ssl {
            let acceptor =
                listen::tls_acceptor(&config.default.ssl_cert_file, &config.default.ssl_key_file)?;
            eprintln!("kuryr: serving the Docker plugin on https://{address}");
            let listener = listen::TlsListener { tcp, acceptor };
            servers.spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown_signal())
                    .await
            });
        } else {
            eprintln!("kuryr: serving the Docker plugin on http://{address}");
            servers.spawn(async move {
                axum::serve(tcp, app)
                    .with_graceful_shutdown(shutdown_signal())
                    .await
            });
        }
    }
    // The first server to stop (a signal stops them all) ends the daemon.
    let first = servers.join_next().await;
    probe.abort();
    maintenance.abort();
    cache_refresh.abort();
    teardowns.abort();
    reconciling.abort();
    servers.shutdown().await;
    match tokio::time::timeout(GIVE_BACK_AT_STOP, driver.give_back_pools_at_stop()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(ports = n, "free pool ports given back to Neutron"),
        Err(_) => tracing::warn!(
            "stopping before every free pool port was given back; the next start finds the rest"
        ),
    }
    match first {
        Some(Ok(Ok(()))) | None => Ok(()),
        Some(Ok(Err(e))) => Err(format!("serving: {e}")),
        Some(Err(e)) => Err(format!("serving: {e}")),
    }
}

/// How long a stopping daemon spends giving free pool ports back to Neutron.
const GIVE_BACK_AT_STOP: std::time::Duration = std::time::Duration::from_secs(10);

/// SIGTERM (how service managers stop daemons) or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
