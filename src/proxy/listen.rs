//! Binding listening sockets the way a load balancer wants them, and the last accepts of a
//! listener that stops.
//!
//! Every listening socket (TCP and UDP, the admin listener's too) is bound with
//! SO_REUSEPORT, as HAProxy does by default on Linux: a new Switchyard process can bind the
//! same addresses while the old one still serves (during its `shutdown_delay`), so a restart
//! never meets a closed port. Two processes of the same user on one port share its new
//! connections; a process of another program still gets "address in use". So that a
//! second Switchyard started by mistake does not share silently, `runtime::exclusive`
//! probes each address without SO_REUSEPORT before a start binds. A socket handed
//! over by `switchyard run --upgrade` is the same socket in both processes and needs none
//! of this.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::FutureExt;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Bind a TCP listener with SO_REUSEADDR and SO_REUSEPORT, a deep backlog, and IPv6 sockets
/// v6-only so that `0.0.0.0:80` and `[::]:80` can both be configured.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// Bind a UDP listening socket (SO_REUSEPORT; IPv6 sockets v6-only, as for TCP).
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// For an accept loop that was told to stop: the connections the kernel has already
/// completed on `listener` and that nobody else will accept, taken without waiting.
///
/// Closing a listening socket resets the connections still in its accept queue: clients
/// that finished their handshake see a reset instead of an answer. So the last user of a
/// socket serves what is queued before letting it go. When the socket lives on elsewhere (the
/// runtime handed it to the listener's next accept loop, or to a new process in an upgrade),
/// the queue is theirs and this returns nothing. A connection that completes between this
/// call and the close is still reset; on Linux 5.14+ `net.ipv4.tcp_migrate_req = 1` moves
/// it to another socket of the SO_REUSEPORT group instead (see docs/operations.md).
pub fn last_accepts(listener: &Arc<TcpListener>) -> Vec<(TcpStream, SocketAddr)> {
    let mut out = Vec::new();
    if Arc::strong_count(listener) > 1 {
        return out;
    }
    // One poll each: ready connections come at once, an empty queue answers "pending".
    while let Some(Ok(pair)) = listener.accept().now_or_never() {
        out.push(pair);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_user_of_a_socket_takes_what_the_kernel_queued() {
        let listener = Arc::new(bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap());
        let addr = listener.local_addr().unwrap();
        // Three handshakes complete in the kernel while nobody accepts.
        let clients: Vec<_> =
            futures_util::future::join_all((0..3).map(|_| tokio::net::TcpStream::connect(addr)))
                .await;
        assert!(clients.iter().all(|c| c.is_ok()));
        // Shared (a successor or an upgraded process takes the socket): left to them.
        let shared = listener.clone();
        assert!(last_accepts(&listener).is_empty());
        drop(shared);
        // The last user: all three, without waiting.
        assert_eq!(last_accepts(&listener).len(), 3);
        assert!(last_accepts(&listener).is_empty());
    }

    #[test]
    fn two_sockets_can_share_a_port_as_an_old_and_a_new_process_do() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        rt.block_on(async {
            let a = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
            let b = bind_tcp(a.local_addr().unwrap()).expect("SO_REUSEPORT: a second bind works");
            assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
            // Another program (no SO_REUSEPORT) still gets "address in use".
            let e = std::net::TcpListener::bind(a.local_addr().unwrap()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
            let u = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
            assert!(bind_udp(u.local_addr().unwrap()).is_ok());
        });
    }
}
