//! Token: the API's bearer token, created once per installation.
//!
//! 32 random bytes, hex-encoded, in `<state_dir>/api-token` with mode 0600. Created on
//! first start; `netguardian token` prints it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("api-token")
}

/// Reads the token, creating it (mode 0600) if absent.
pub fn load_or_create(state_dir: &Path) -> anyhow::Result<String> {
    let p = path(state_dir);
    if let Some(t) = read(&p)? {
        return Ok(t);
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)
        .with_context(|| format!("cannot create API token file {}", p.display()))?;
    f.write_all(format!("{token}\n").as_bytes())?;
    tracing::info!(path = %p.display(), "created API token");
    Ok(token)
}

/// Reads an existing token; `None` when the file does not exist.
pub fn read(p: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(p) {
        Ok(s) => {
            let t = s.trim().to_string();
            anyhow::ensure!(!t.is_empty(), "API token file {} is empty", p.display());
            Ok(Some(t))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read API token file {}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let t1 = super::load_or_create(dir.path()).unwrap();
        assert_eq!(t1.len(), 64);
        let mode = std::fs::metadata(super::path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(super::load_or_create(dir.path()).unwrap(), t1);
    }
}
