//! Debian's nginx for the tests and benchmarks: a throwaway instance (its config, temp paths,
//! logs and cache in a scratch directory) that stops with its workers, and the shipped LL-HLS
//! edge config (`deploy/nginx/roomcast-edge.conf`) pointed at an origin of the test's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// A running nginx; dropping it stops the master, which stops its workers (a SIGKILL of the
/// master would leave them running, orphaned).
pub struct Nginx {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx's path, if installed (`deploy/install-deps.sh --test` installs it).
pub fn binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Starts nginx in `dir` with `main` (directives of the main context: workers, events) and
/// `http` (the body of the `http` block; `{dir}` in either stands for the directory), on a free
/// loopback port that `http` gets as `{listen}`; waits until it accepts connections.
pub fn start(dir: &Path, main: &str, http: &str) -> Result<Nginx> {
    let bin = binary().context("nginx is not installed (deploy/install-deps.sh --test installs it)")?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let d = dir.display().to_string();
    let fill = |s: &str| s.replace("{dir}", &d).replace("{listen}", &format!("127.0.0.1:{port}"));
    let conf = format!(
        "daemon off;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log warn;\n{main}\n\
         http {{\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;\n  \
         uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n{http}\n}}\n",
        main = fill(main),
        http = fill(http),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let child = Command::new(bin)
        .args(["-p", &d, "-c", &conf_path.to_string_lossy()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let nginx = Nginx { child, addr, dir: dir.to_owned() };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("nginx did not listen on {addr}: {}", std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(nginx)
}

/// The shipped edge config with `origin` as its only upstream, its cache in `cache_dir` and
/// `{listen}` as its address (for [`start`]).
pub fn edge_config(origin: SocketAddr, cache_dir: &Path) -> Result<String> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/roomcast-edge.conf");
    let conf = std::fs::read_to_string(&shipped).with_context(|| format!("reading {}", shipped.display()))?;
    for needle in ["/var/cache/nginx/roomcast", "server 127.0.0.1:8080", "listen 8090;"] {
        ensure!(conf.contains(needle), "{} no longer has {needle:?}; update tests/src/nginx.rs", shipped.display());
    }
    Ok(conf
        .replace("/var/cache/nginx/roomcast", &cache_dir.display().to_string())
        .replace("server 127.0.0.1:8080", &format!("server {origin}"))
        .replace("listen 8090;", "listen {listen} backlog=4096;"))
}
