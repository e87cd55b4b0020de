//! Network namespace cookies: what `bpf_get_netns_cookie` returns for a socket, read for a
//! namespace given by its file (`--ebpf-netns`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

/// `SO_NETNS_COOKIE` (Linux 5.14); libc has no constant for it.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the network namespace whose file is `path` (`/run/netns/<name>`,
/// `/proc/<pid>/ns/net`): a thread enters it (needs `CAP_SYS_ADMIN`) and reads the cookie
/// of a socket made there. The calling thread stays where it is.
pub fn netns_cookie(path: &Path) -> std::io::Result<u64> {
    let file = std::fs::File::open(path)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET)?;
                let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
                socket_netns_cookie(&sock)
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the netns cookie thread panicked")))
    })
}

/// The netns cookie of `sock`'s namespace.
#[allow(unsafe_code, reason = "getsockopt(2) with a u64 out-parameter; nix has no SO_NETNS_COOKIE")]
fn socket_netns_cookie(sock: &OwnedFd) -> std::io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = libc::socklen_t::try_from(size_of::<u64>()).map_err(std::io::Error::other)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_file_is_an_error() {
        let error = netns_cookie(Path::new("/nonexistent/kproxy-netns")).expect_err("no such file");
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    }
}
