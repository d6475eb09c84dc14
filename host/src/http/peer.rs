//! Who is at the other end of a connection, as the transport knows it: an address on TCP, or
//! the uid the kernel reports for a Unix socket (`SO_PEERCRED`), which no client can forge.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    /// `None` when the kernel would not say (the connection is then refused).
    Unix { uid: Option<u32> },
}

impl Peer {
    /// The address login attempts are counted against; local socket callers share loopback's.
    pub fn ip(&self) -> IpAddr {
        match self {
            Peer::Tcp(addr) => addr.ip(),
            Peer::Unix { .. } => IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    pub fn of_tcp(_: &tokio::net::TcpStream, addr: &SocketAddr) -> Peer {
        Peer::Tcp(*addr)
    }

    pub fn of_unix(stream: &tokio::net::UnixStream, _: &tokio::net::unix::SocketAddr) -> Peer {
        Peer::Unix { uid: stream.peer_cred().ok().map(|cred| cred.uid()) }
    }
}
