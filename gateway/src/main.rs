//! `roomcast`: `serve` runs the gateway; `token` mints a join token from the command line.

use clap::{Parser, Subcommand};
use roomcast::auth::token::{Role, TokenKeys};
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
    Serve(Config),
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(config) => {
            init_logs(config.log_json);
            let server = roomcast::start(config).await?;
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
            let token = TokenKeys::from_secret(&secret).mint(&room, &participant, &name, role.into(), std::time::Duration::from_secs(ttl_secs));
            println!("{token}");
        }
    }
    Ok(())
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
