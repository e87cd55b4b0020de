//! Netns cookies of named network namespaces (what `bpf_get_netns_cookie` returns).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

/// SO_NETNS_COOKIE (Linux 5.14): libc has no constant for it yet.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The netns cookie of `sock`'s namespace.
#[allow(unsafe_code, reason = "getsockopt(2) with a u64 out-parameter; nix has no SO_NETNS_COOKIE")]
fn cookie_of(sock: &OwnedFd) -> std::io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `sock` is an open socket; `cookie` and `len` are valid for writes and `len`
    // is the size of `cookie`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&raw mut cookie).cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if rc == 0 { Ok(cookie) } else { Err(std::io::Error::last_os_error()) }
}

/// The cookie of the namespace `ip netns` calls `name`.
pub fn netns_cookie(name: &str) -> Result<u64, String> {
    let name = name.to_owned();
    std::thread::spawn(move || {
        let file = std::fs::File::open(kproxy_conformance::netns_path(&name)).map_err(|e| format!("{name}: {e}"))?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {name}: {e}"))?;
        let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)
            .map_err(|e| format!("socket in {name}: {e}"))?;
        cookie_of(&sock).map_err(|e| format!("SO_NETNS_COOKIE in {name}: {e}"))
    })
    .join()
    .map_err(|_| "netns cookie thread panicked".to_owned())?
}
