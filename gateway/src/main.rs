//! `roomcast`: `serve` runs the gateway; `token` mints a join token from the command line;
//! `ops` lists, restarts and drains a running gateway's pipelines over its ops API.

use clap::{Parser, Subcommand};
use roomcast::auth::role::Role;
use roomcast::auth::token::TokenKeys;
use roomcast::Config;

#[derive(Parser)]
#[command(name = "roomcast", version, about = "WebRTC rooms composited and broadcast as low-latency HLS")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (HTTP, signaling, SFU).
    Serve(Box<Config>),
    /// Mint a token for a room (signed with the data directory's secret).
    Token {
        #[arg(long)]
        room: String,
        #[arg(long, default_value = "CLI")]
        name: String,
        #[arg(long, value_enum, default_value = "publisher")]
        role: RoleArg,
        #[arg(long, default_value_t = 600)]
        ttl_secs: u64,
        #[arg(long, env = "ROOMCAST_DATA_DIR", default_value = "roomcast-data")]
        data_dir: std::path::PathBuf,
        #[arg(long, env = "ROOMCAST_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
    },
    /// Ops: list pipelines, restart one, drain the node (talks HTTP to a running gateway).
    Ops(OpsArgs),
}

#[derive(clap::Args)]
struct OpsArgs {
    #[command(subcommand)]
    action: OpsAction,
    /// The gateway's base URL.
    #[arg(long, env = "ROOMCAST_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// An ops token: `roomcast token --role ops --room '*'`.
    #[arg(long, env = "ROOMCAST_OPS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The gateway's API key (instead of a token).
    #[arg(long, env = "ROOMCAST_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// Without --token or --api-key: mint a 60 s ops token from this data directory's secret
    /// (works on the gateway's own machine).
    #[arg(long, env = "ROOMCAST_DATA_DIR", default_value = "roomcast-data", global = true)]
    data_dir: std::path::PathBuf,
    /// … or from this token secret (the gateway's --jwt-secret).
    #[arg(long, env = "ROOMCAST_JWT_SECRET", hide_env_values = true, global = true)]
    jwt_secret: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum OpsAction {
    /// Every broadcast pipeline: state, uptime, restarts, parts, legs, HLS position, last error.
    List,
    /// Replace a room's compositor (the room and its viewers keep going).
    Restart { room: String },
    /// Take no new rooms, joins or broadcasts, and stop every broadcast gracefully (for deploys).
    Drain,
    /// Take new rooms again after a drain.
    Undrain,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Host,
    Publisher,
    Subscriber,
    Viewer,
    Ops,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Host => Role::Host,
            RoleArg::Publisher => Role::Publisher,
            RoleArg::Subscriber => Role::Subscriber,
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Ops => Role::Ops,
        }
    }
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,str0m=warn,tower_http=info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Cmd::Serve(config) = &cli.command {
        init_logs(config.log_json);
        // Before the runtime's threads exist: they, and the compositors they spawn, inherit it.
        roomcast::priority::log(&roomcast::priority::raise(config.nice));
        roomcast::open_files::raise();
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Serve(config) => {
            let server = roomcast::start(*config).await?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
                _ = terminate() => tracing::info!("SIGTERM: shutting down"),
            }
            server.shutdown().await;
        }
        Cmd::Token { room, name, role, ttl_secs, data_dir, jwt_secret } => {
            init_logs(false);
            let secret = roomcast::auth::secret::load_or_create(&data_dir, jwt_secret.as_deref())?;
            let participant = roomcast::rooms::registry::new_id("p");
            let token =
                TokenKeys::from_secret(&secret).mint(&room, &participant, &name, role.into(), std::time::Duration::from_secs(ttl_secs));
            println!("{token}");
        }
        Cmd::Ops(args) => ops(args).await?,
    }
    Ok(())
}

async fn ops(args: OpsArgs) -> anyhow::Result<()> {
    let bearer = match (args.token.as_deref(), args.api_key.as_deref()) {
        (Some(t), _) => t.to_owned(),
        (None, Some(k)) => k.to_owned(),
        (None, None) => {
            if args.jwt_secret.is_none() && !args.data_dir.join("jwt-secret").is_file() {
                anyhow::bail!("no credentials: pass --token (mint one with `roomcast token --role ops --room '*'`) or --api-key, or run where --data-dir has the gateway's secret");
            }
            let secret = roomcast::auth::secret::load_or_create(&args.data_dir, args.jwt_secret.as_deref())?;
            let who = roomcast::rooms::registry::new_id("ops");
            TokenKeys::from_secret(&secret).mint(
                roomcast::auth::ops::OPS_ROOM,
                &who,
                "roomcast ops",
                Role::Ops,
                std::time::Duration::from_secs(60),
            )
        }
    };
    let base = args.url.trim_end_matches('/');
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let (method, path) = match &args.action {
        OpsAction::List => (reqwest::Method::GET, "/api/ops/pipelines".to_owned()),
        OpsAction::Restart { room } => (reqwest::Method::POST, format!("/api/ops/pipelines/{room}/restart")),
        OpsAction::Drain => (reqwest::Method::POST, "/api/ops/drain".to_owned()),
        OpsAction::Undrain => (reqwest::Method::DELETE, "/api/ops/drain".to_owned()),
    };
    let response = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(bearer)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the gateway at {base}: {e}; check --url"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no details");
        anyhow::bail!("{path}: {status}: {message}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    match args.action {
        OpsAction::List => print!("{}", pipelines_table(&body)),
        OpsAction::Restart { room } => {
            println!("{room}: {} (state {})", body["how"].as_str().unwrap_or("restarted"), body["state"].as_str().unwrap_or("?"))
        }
        OpsAction::Drain => {
            let moved: Vec<&str> = body["moved"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
            if !moved.is_empty() {
                println!("{} room(s) moved to other nodes (their participants reconnect there): {}", moved.len(), moved.join(", "));
            }
            let stopped: Vec<&str> = body["stopped"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
            println!(
                "draining: new rooms, joins and broadcasts are refused; {} broadcast(s) stopped{}",
                stopped.len(),
                if stopped.is_empty() { String::new() } else { format!(": {}", stopped.join(", ")) }
            );
            if let Some(pids) = body["still_running"].as_array().filter(|a| !a.is_empty()) {
                println!("compositors still exiting: {pids:?}");
            }
        }
        OpsAction::Undrain => println!("accepting new rooms again"),
    }
    Ok(())
}

/// `GET /api/ops/pipelines` as a table.
fn pipelines_table(body: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if body["draining"] == true {
        out.push_str("node is DRAINING (no new rooms)\n");
    }
    let pipelines = body["pipelines"].as_array().cloned().unwrap_or_default();
    if pipelines.is_empty() {
        out.push_str("no pipelines\n");
        return out;
    }
    let opt = |v: &serde_json::Value| if v.is_null() { "-".to_owned() } else { v.to_string().trim_matches('"').to_owned() };
    let fps = |v: &serde_json::Value| v.as_f64().map_or("-".to_owned(), |f| format!("{f:.0}"));
    let mut rows = vec![[
        "ROOM",
        "STATE",
        "UPTIME",
        "RESTARTS",
        "PARTS",
        "LEGS",
        "PEOPLE",
        "FPS IN/OUT",
        "DROPPED",
        "ENCODE",
        "PID",
        "HLS MSN",
        "WAITING",
        "LAST ERROR",
    ]
    .map(str::to_owned)
    .to_vec()];
    for p in &pipelines {
        let uptime = p["uptime_secs"].as_f64().map_or("-".to_owned(), |s| format!("{}s", s.round() as u64));
        let mut error = opt(&p["last_error"]);
        if error.chars().count() > 60 {
            error = format!("{}…", error.chars().take(59).collect::<String>());
        }
        rows.push(vec![
            opt(&p["room"]),
            opt(&p["state"]),
            uptime,
            opt(&p["restarts"]),
            opt(&p["parts"]),
            opt(&p["legs"]),
            opt(&p["participants"]),
            format!("{}/{}", fps(&p["fps_in"]), fps(&p["fps_out"])),
            opt(&p["frames_dropped"]),
            p["encode_ms"].as_f64().map_or("-".to_owned(), |ms| format!("{ms:.1}ms")),
            opt(&p["pid"]),
            opt(&p["hls"]["next_msn"]),
            opt(&p["hls"]["waiting_requests"]),
            error,
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

async fn terminate() {
    #[cfg(unix)]
    {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}
