//! The token-signing secret: from config, or generated once and kept in the data directory.

use std::path::Path;

use anyhow::Context;

const SECRET_FILE: &str = "jwt-secret";

pub fn load_or_create(data_dir: &Path, configured: Option<&str>) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        anyhow::ensure!(s.len() >= 32, "--jwt-secret must be at least 32 characters");
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    if let Ok(existing) = std::fs::read(&path) {
        if existing.len() >= 32 {
            return Ok(existing);
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let secret: [u8; 32] = rand::random();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, hex.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new token-signing secret");
    Ok(hex.into_bytes())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}
