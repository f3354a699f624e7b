//! The application root: opens the store, starts the SFU workers, the broadcasts and the
//! background tasks, and serves the HTTP router over them. Everything else sits below this
//! module and shares `state::AppState`; nothing below imports the HTTP layer (`api`).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::hls_url::HlsUrls;
use crate::config::Config;
use crate::node::NodeState;
use crate::rooms::private_hls::PrivateRooms;
use crate::state::AppState;
use crate::{api, auth, broadcast, cluster, limits, metrics, rooms, sfu, store};

/// A running gateway; dropping it stops the HTTP server (the workers end with it).
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// How long shutdown waits for signaling sessions to send 1012 and hear the client's close.
const SESSION_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long shutdown waits for in-flight HTTP requests before it cuts them off.
const HTTP_SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl RunningServer {
    /// Graceful shutdown (SIGTERM): refuse new rooms, joins and broadcasts; stop every
    /// broadcast (compositors are asked to exit, playlists get EXT-X-ENDLIST, waiting viewers
    /// are answered); then stop the HTTP server, giving in-flight requests a few seconds.
    pub async fn shutdown(mut self) {
        tracing::info!("shutdown: draining (no new rooms, joins or broadcasts)");
        let report = api::ops::drain_node(&self.state).await;
        tracing::info!(stopped = ?report.stopped, still_running = ?report.still_running, "shutdown: broadcasts stopped");
        // Participants hear it before the HTTP server stops (their sockets are upgraded
        // connections, which graceful shutdown does not wait for).
        self.state.node.close_sessions();
        let still_open = self.state.node.sessions_closed(SESSION_CLOSE_WAIT).await;
        if still_open > 0 {
            tracing::warn!(still_open, wait = ?SESSION_CLOSE_WAIT, "shutdown: some signaling sessions did not close in time; their clients see a dropped connection and re-join");
        }
        if let Some(cluster) = &self.state.cluster {
            match cluster.leave().await {
                Ok(()) => tracing::info!("shutdown: left the cluster (its other nodes take this node's rooms as people re-join)"),
                Err(e) => {
                    tracing::warn!(error = %e, "shutdown: could not tell the cluster; the other nodes take this node's rooms once its heartbeats run out")
                }
            }
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(HTTP_SHUTDOWN_WAIT, &mut self.task).await {
            Ok(_) => tracing::info!("shutdown: HTTP server stopped"),
            Err(_) => {
                tracing::warn!(wait = ?HTTP_SHUTDOWN_WAIT, "shutdown: HTTP requests still open; closing them");
                self.task.abort();
            }
        }
        // Sessions said `leave` to their workers on the way out; now the media threads end.
        for w in self.state.workers.iter() {
            w.stop();
        }
        self.state.rooms.flush().await;
    }

    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Replaces SFU worker threads that died (a panic in one room must not end the others' calls).
/// Holds the list weakly: when the gateway is dropped, the monitor and the workers end.
fn spawn_worker_monitor(workers: std::sync::Weak<Vec<sfu::WorkerHandle>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            tick.tick().await;
            let Some(workers) = workers.upgrade() else { return };
            for w in workers.iter() {
                w.respawn_if_dead();
            }
        }
    });
}

/// Starts the SFU workers and the HTTP server.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    if config.fault_injection && !cfg!(feature = "fault-injection") {
        anyhow::bail!(
            "--fault-injection: this build has no fault injection (a test-only feature: cargo build --features roomcast/fault-injection)"
        );
    }
    let secret = auth::secret::load_or_create(&config.data_dir, config.jwt_secret.as_deref())?;
    let store_location = store::Location::from_config(config.store.as_deref(), &config.data_dir);
    let store = store::open(&store_location).await?;
    let worker_count = config.worker_count();
    let mut workers = Vec::with_capacity(worker_count);
    // The rooms (and the store's writer) first: workers queue call-quality samples to it.
    let rooms = Arc::new(rooms::Rooms::with_store(worker_count, store.clone()));
    let sample_sink: sfu::worker::SampleSink = {
        let rooms = Arc::downgrade(&rooms);
        Arc::new(move |batch| {
            if let Some(rooms) = rooms.upgrade() {
                rooms.record(store::Write::Stats(batch));
            }
        })
    };
    for i in 0..worker_count {
        let port = if config.udp_port == 0 {
            0
        } else {
            config.udp_port.checked_add(i as u16).ok_or_else(|| anyhow::anyhow!("--udp-port too high for {worker_count} workers"))?
        };
        workers.push(sfu::worker::spawn(
            i,
            sfu::WorkerConfig {
                bind: SocketAddr::new(config.media_ip(), port),
                announce_ip: config.announce_ip(),
                ice_disconnect_timeout: config.ice_disconnect_timeout(),
                samples: Some(sample_sink.clone()),
                bwe: config.bwe,
                ice_lite: config.ice_lite,
            },
        )?);
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}; pick another --listen", config.listen))?;
    let http_addr = listener.local_addr()?;
    let hls = hls_out::HlsStore::new();
    let broadcasts = Arc::new(broadcast::Broadcasts::new(
        hls.clone(),
        broadcast::compositor::locate(config.compositor_bin.as_deref()),
        config.output_format(),
        config.rtp_port_min..config.rtp_port_max,
        broadcast::policy::RestartPolicy {
            max_restarts: config.max_compositor_restarts,
            stall_parts: config.stall_parts.max(1),
            ..Default::default()
        },
        config.compositor_spares,
    ));
    let cluster = match &store_location {
        store::Location::Mongo(_) => Some(Arc::new(join_cluster(&config, http_addr, store.clone())?)),
        store::Location::Sqlite(_) => None,
    };
    // In a cluster a node holds only the rooms it owns, brought in as requests for them come.
    let loaded = if cluster.is_some() { 0 } else { rooms.load().await? };
    tracing::info!(store = store.kind(), at = %store_location.display(), rooms = loaded, "store open");
    let config_joins_per_minute = config.joins_per_minute;
    let state = AppState {
        broadcasts,
        rooms,
        workers: Arc::new(workers),
        tokens: auth::token::TokenKeys::from_secret(&secret),
        config: Arc::new(config),
        node: Arc::new(NodeState::default()),
        metrics: metrics::Metrics::new(),
        joins: Arc::new(limits::JoinLimiter::new(config_joins_per_minute)),
        cluster,
    };
    install_private_hls(&state, &secret);
    spawn_worker_monitor(Arc::downgrade(&state.workers));
    rooms::lifecycle::spawn(&state.rooms, &state.broadcasts, &state.workers, state.config.idle_limits());
    if let Some(cluster) = &state.cluster {
        // The first heartbeat before serving: the others see this node, and it sees them.
        if let Err(e) = cluster::heartbeat::first(cluster, &state.rooms, &state.broadcasts).await {
            anyhow::bail!("cannot join the cluster: {e}");
        }
        tracing::info!(node = %cluster.id(), public_url = %cluster.me().public_url, nodes = cluster.nodes().len(), "joined the cluster");
        cluster::heartbeat::spawn(cluster, &state.rooms, &state.broadcasts, &state.node);
    }
    let app = api::router(state.clone());
    let fast_path_state = state.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // HLS files skip the router (see `hls_fast_path`); the router gets connect info (joins
        // are limited per client IP).
        let serve = axum::serve(listener, api::hls_fast_path::MakeFastPath::new(fast_path_state, app)).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%http_addr, workers = worker_count, "roomcast gateway listening");
    Ok(RunningServer { http_addr, state, shutdown: Some(tx), task })
}

/// This node's record in the cluster, from the flags (`--node-id`, `--public-url`,
/// `--capacity-cores`) and what it bound.
fn join_cluster(config: &Config, http_addr: SocketAddr, store: Arc<dyn store::Store>) -> anyhow::Result<cluster::Cluster> {
    let id = cluster::node_id(&config.data_dir, config.node_id.as_deref())
        .map_err(|e| anyhow::anyhow!("cannot keep this node's id in {}: {e}; check --data-dir", config.data_dir.display()))?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{http_addr}"));
    if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        anyhow::bail!("--public-url must start with http:// or https:// (got {public_url:?})");
    }
    if config.jwt_secret.is_none() {
        tracing::warn!("cluster: without --jwt-secret each node signs with its own secret, and a join token or invite from one node fails on another; give every node the same --jwt-secret");
    }
    let capacity_cores = config.capacity_cores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) as f64);
    let me = store::NodeRecord {
        id,
        public_url: public_url.trim_end_matches('/').to_owned(),
        media_ip: config.announce_ip().to_string(),
        capacity_cores,
        load: store::NodeLoad::default(),
        heartbeat_at_ms: 0,
        draining: false,
    };
    Ok(cluster::Cluster::new(me, store))
}

/// Private rooms at start: the URL signer (for `GET /api/rooms/{id}/hls-url`) and the access
/// hook on the HLS store.
fn install_private_hls(state: &AppState, token_secret: &[u8]) {
    let urls = HlsUrls::from_token_secret(token_secret);
    if state.broadcasts.hls_urls.set(urls.clone()).is_err() {
        tracing::warn!("HLS URL signer installed twice; keeping the first");
        return;
    }
    state.broadcasts.hls.set_access(Arc::new(PrivateRooms::new(state.rooms.clone(), urls)));
}
