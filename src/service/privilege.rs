//! Privilege: started as root (by hand, or by an init system other than our unit),
//! `serve` becomes an unprivileged user before it opens anything, keeping only the
//! capabilities capture needs.
//!
//! The systemd unit starts the service as a dynamic user with
//! `AmbientCapabilities=CAP_NET_RAW`, so none of this runs there. As root, [`drop_root`]
//! runs first thing in `serve`, while the process has a single thread (credentials and
//! capabilities are per thread; every later thread inherits these): it hands the state
//! directory to the user, shrinks the capability bounding set to CAP_NET_RAW (plus
//! CAP_NET_BIND_SERVICE for an API port below 1024), switches group and user keeping
//! those capabilities, sets no-new-privileges, and checks that root cannot be regained
//! and that the state directory is writable. Child processes (the trainer) get no
//! capabilities at all.

use std::ffi::CString;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use crate::config::Config;

const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_RAW: u32 = 13;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Who the service became.
#[derive(Debug, Clone)]
pub struct Dropped {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// Capability numbers kept (effective and permitted).
    pub caps: Vec<u32>,
}

fn os_err(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", std::io::Error::last_os_error())
}

/// The user's uid and primary gid; None when there is no such user.
fn lookup(user: &str) -> Result<Option<(u32, u32)>> {
    let name = CString::new(user).context("service.user contains a NUL byte")?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pw`.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        )
    };
    if rc != 0 {
        bail!(
            "cannot look up user {user:?}: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    if out.is_null() {
        return Ok(None);
    }
    Ok(Some((pw.pw_uid, pw.pw_gid)))
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(1)
}

/// Gives `path` (and, for a folder, everything in it) to uid:gid, without following
/// symbolic links.
fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    let md = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .with_context(|| format!("cannot hand {} to uid {uid}", path.display()))?;
    if md.is_dir() {
        for e in
            std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
        {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn set_caps(keep: &[u32]) -> Result<()> {
    let mut data = [CapData::default(); 2];
    for &c in keep {
        let d = &mut data[(c / 32) as usize];
        d.effective |= 1 << (c % 32);
        d.permitted |= 1 << (c % 32);
    }
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset(2) with a v3 header and two data structs, as the kernel expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(os_err("capset"));
    }
    Ok(())
}

/// When running as root and `service.user` is not "root": becomes that user as
/// described in the module documentation. `db` is the database file (it may live
/// outside the state directory). Must run before any other thread is started.
pub fn drop_root(cfg: &Config, db: &Path) -> Result<Option<Dropped>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let wanted = cfg.service.user.trim();
    if wanted == "root" {
        tracing::warn!("running as root: service.user = \"root\"");
        return Ok(None);
    }
    let (user, uid, gid) = match lookup(wanted)? {
        Some((u, g)) => (wanted.to_string(), u, g),
        None if wanted == "netguardian" => match lookup("nobody")? {
            Some((u, g)) => ("nobody".to_string(), u, g),
            None => bail!("neither user \"netguardian\" nor \"nobody\" exists; set service.user"),
        },
        None => bail!("service.user {wanted:?} does not exist"),
    };
    ensure!(uid != 0, "service.user {wanted:?} is root (uid 0)");
    let n = threads();
    ensure!(
        n == 1,
        "cannot drop privileges with {n} threads running (they would keep root)"
    );
    // The state directory (database, token, models, exports) belongs to the user.
    let state = cfg.state_dir();
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot create state directory {}", state.display()))?;
    chown_tree(&state, uid, gid)?;
    for f in [db.to_path_buf(), db.with_extension("duckdb.wal")] {
        if f.exists() && !f.starts_with(&state) {
            chown_tree(&f, uid, gid)?;
        }
    }
    let api_port = cfg
        .api
        .listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.port())
        .unwrap_or(0);
    let mut keep = vec![CAP_NET_RAW];
    if (1..1024).contains(&api_port) {
        keep.push(CAP_NET_BIND_SERVICE);
    }
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    // SAFETY: prctl/setgroups/setgid/setuid with plain integer arguments; the process
    // has one thread, so glibc's and the kernel's per-thread credentials agree.
    unsafe {
        for c in 0..=last {
            if !keep.contains(&c)
                && libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) != 0
            {
                return Err(os_err(&format!(
                    "cannot drop capability {c} from the bounding set"
                )));
            }
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(os_err("PR_SET_KEEPCAPS"));
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os_err("setgroups"));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(os_err(&format!("cannot switch to group {gid}")));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(os_err(&format!("cannot switch to user {user}")));
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    set_caps(&keep)?;
    // SAFETY: as above.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(os_err("PR_SET_NO_NEW_PRIVS"));
        }
        ensure!(
            libc::setuid(0) != 0,
            "still able to become root after switching to {user}"
        );
    }
    for dir in [Some(state.as_path()), db.parent()].into_iter().flatten() {
        let probe = dir.join(format!(".netguardian-write-test-{}", std::process::id()));
        std::fs::write(&probe, b"").with_context(|| {
            format!(
                "user {user} cannot write in {} (each folder above it must be searchable by \
                 {user}; or set service.user)",
                dir.display()
            )
        })?;
        let _ = std::fs::remove_file(&probe);
    }
    Ok(Some(Dropped {
        user,
        uid,
        gid,
        caps: keep,
    }))
}
