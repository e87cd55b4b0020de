//! UDP datagrams with their local address: received with `IP_PKTINFO` (or
//! `IPV6_RECVPKTINFO`) so that a reply can leave from the very address the client sent to,
//! which is what the client's conntrack entry (and a connected client socket) expects.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use nix::libc;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg};

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Its length.
    pub len: usize,
    /// Who sent it.
    pub from: SocketAddr,
    /// The address it was sent to (after any redirect), when the kernel said.
    pub to: Option<IpAddr>,
}

/// Room for either family's packet-info control message.
pub fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(libc::in6_pktinfo)
}

/// Receives one datagram into `buf` (non-blocking socket `fd`).
pub fn recv(fd: RawFd, buf: &mut [u8], control: &mut [u8]) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(control), MsgFlags::empty())?;
    let from = msg.address.as_ref().and_then(socket_addr).ok_or_else(|| io::Error::other("datagram without sender"))?;
    let mut to = None;
    for cmsg in msg.cmsgs()? {
        match cmsg {
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                to = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr))));
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => to = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr))),
            _ => {}
        }
    }
    Ok(Datagram { len: msg.bytes, from, to })
}

/// Sends `data` to `to` from local address `from` (any, when `None`).
pub fn send(fd: RawFd, data: &[u8], to: SocketAddr, from: Option<IpAddr>) -> io::Result<usize> {
    let iov = [IoSlice::new(data)];
    let dest = SockaddrStorage::from(to);
    let sent = match from {
        Some(IpAddr::V4(ip)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr { s_addr: u32::from(ip).to_be() },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            sendmsg(fd, &iov, &[ControlMessage::Ipv4PacketInfo(&info)], MsgFlags::empty(), Some(&dest))
        }
        Some(IpAddr::V6(ip)) => {
            let info = libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: ip.octets() }, ipi6_ifindex: 0 };
            sendmsg(fd, &iov, &[ControlMessage::Ipv6PacketInfo(&info)], MsgFlags::empty(), Some(&dest))
        }
        None => sendmsg(fd, &iov, &[], MsgFlags::empty(), Some(&dest)),
    };
    Ok(sent?)
}

fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    let v6 = addr.as_sockaddr_in6()?;
    Some(SocketAddr::V6(SocketAddrV6::new(v6.ip(), v6.port(), v6.flowinfo(), v6.scope_id())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_destination_address_comes_with_the_datagram_and_replies_leave_from_it() {
        let server = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        nix::sys::socket::setsockopt(&server, nix::sys::socket::sockopt::Ipv4PacketInfo, &true).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(("127.0.0.2", port)).unwrap();
        client.send(b"ping").unwrap();
        let (mut buf, mut control) = ([0u8; 64], control_buffer());
        let d = recv(server.as_raw_fd(), &mut buf, &mut control).unwrap();
        assert_eq!((d.len, d.from, d.to), (4, client.local_addr().unwrap(), Some("127.0.0.2".parse().unwrap())));
        // A connected client only takes replies from the address it sent to.
        send(server.as_raw_fd(), b"pong", d.from, d.to).unwrap();
        client.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong");
    }
}
