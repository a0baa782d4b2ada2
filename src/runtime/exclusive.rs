//! A start that would share its ports with another process, refused.
//!
//! Every listening socket is bound with SO_REUSEPORT (`proxy::listen`): a binary upgrade,
//! a restart during the old process's `shutdown_delay` and one process per core all need
//! two sockets on one port. The price is that a second Switchyard started by mistake binds
//! too, silently, and the kernel shares the new connections between two configurations.
//!
//! So before binding anything, [`check`] asks the kernel whether another socket already
//! listens on each fixed address: a bind *without* SO_REUSEPORT (TCP with SO_REUSEADDR, so
//! that connections of a stopped process in TIME_WAIT do not count) fails with "address in
//! use" exactly when a listening socket holds the address, or an overlapping one (`0.0.0.0`
//! against `127.0.0.1`), whatever program it belongs to. A connect probe would not do: it
//! opens a connection to the other program, misses UDP, and cannot see a listener on
//! another address of this machine. The probe socket is closed at once; the real bind
//! follows.
//!
//! The one sharing that is expected without asking: a Switchyard that is stopping (SIGTERM,
//! in its `shutdown_delay` or draining) while its successor starts. A stopping process
//! holds, per port it listens on, an abstract Unix socket named `switchyard-draining:tcp:PORT`
//! (Linux; the name lives as long as the process, in the network namespace of its ports).
//! Sockets handed over by `run --upgrade` are not bound again and need no probe. `run
//! --share-ports` skips the check (several processes on one port on purpose).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol as SockProto, Socket, Type};

use super::error::RuntimeError;
use super::listener::Spare;
use crate::config::{Plan, Protocol};

/// How long a start waits for a busy address to become free or to be marked as a stopping
/// Switchyard's (the successor started right after SIGTERM may come first), as nginx tries
/// its binds again for a while before giving up.
const PATIENCE: Duration = Duration::from_secs(1);

/// Every fixed address `plan` listens on that no socket of `spare` serves, with its
/// listener's name, where it is written and whether it is UDP.
fn fixed_addresses(plan: &Plan, spare: &Spare) -> Vec<(String, SocketAddr, Option<String>, bool)> {
    let listeners = plan.listeners.iter().map(|l| {
        let udp = l.protocol == Protocol::Udp;
        (l.name.clone(), l.listen, l.origin.clone(), udp)
    });
    let admin = plan
        .admin
        .iter()
        .map(|a| ("admin".to_string(), a.listen, a.origin.clone(), false));
    listeners
        .chain(admin)
        .filter(|(_, addr, _, udp)| {
            addr.port() != 0
                && !spare
                    .sockets
                    .iter()
                    .any(|s| s.socket.is_udp() == *udp && s.configured == *addr)
        })
        .collect()
}

/// Refuse to start when another process already listens on one of `plan`'s fixed addresses
/// (see the module comment); a stopping Switchyard's addresses are let through.
pub async fn check(plan: &Plan, spare: &Spare) -> Result<(), RuntimeError> {
    let deadline = Instant::now() + PATIENCE;
    for (name, addr, origin, udp) in fixed_addresses(plan, spare) {
        loop {
            let cause = match probe(addr, udp) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => e,
                // Other errors (a foreign address, a low port): the real bind says them.
                Err(_) => break,
            };
            if is_draining(addr.port(), udp) {
                tracing::info!(
                    "{addr}: a stopping Switchyard still listens there; sharing it until it has closed"
                );
                break;
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::InUse {
                    name,
                    addr,
                    origin,
                    udp,
                    cause,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Bind `addr` without SO_REUSEPORT, and let go.
fn probe(addr: SocketAddr, udp: bool) -> io::Result<()> {
    let (kind, proto) = match udp {
        true => (Type::DGRAM, SockProto::UDP),
        false => (Type::STREAM, SockProto::TCP),
    };
    let socket = Socket::new(Domain::for_address(addr), kind, Some(proto))?;
    // UDP: SO_REUSEADDR would let two sockets share the port; TCP: it only passes over
    // connections in TIME_WAIT, and a listening socket still conflicts.
    socket.set_reuse_address(!udp)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())
}

fn marker_name(port: u16, udp: bool) -> String {
    format!(
        "switchyard-draining:{}:{port}",
        if udp { "udp" } else { "tcp" }
    )
}

/// Whether a stopping Switchyard marked `port` (its marker name is taken).
fn is_draining(port: u16, udp: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        let Ok(name) = std::os::unix::net::SocketAddr::from_abstract_name(marker_name(port, udp))
        else {
            return false;
        };
        matches!(
            std::os::unix::net::UnixListener::bind_addr(&name),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (port, udp);
        false
    }
}

/// The markers of a stopping process: held until its listeners close (or, after an upgrade,
/// not at all).
#[derive(Default)]
pub struct Draining {
    #[cfg(target_os = "linux")]
    _held: Vec<std::os::unix::net::UnixListener>,
}

/// Mark the ports of `plan` as those of a stopping Switchyard (see the module comment).
pub fn mark_draining(plan: &Plan) -> Draining {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        let ports = plan
            .listeners
            .iter()
            .map(|l| (l.listen.port(), l.protocol == Protocol::Udp))
            .chain(plan.admin.iter().map(|a| (a.listen.port(), false)));
        let held = ports
            .filter(|(port, _)| *port != 0)
            .filter_map(|(port, udp)| {
                let name =
                    std::os::unix::net::SocketAddr::from_abstract_name(marker_name(port, udp))
                        .ok()?;
                // A starting process's probe holds the name for a moment: try again a
                // few times; taken for longer, another stopping process marks it.
                (0..10).find_map(
                    |_| match std::os::unix::net::UnixListener::bind_addr(&name) {
                        Ok(l) => Some(Some(l)),
                        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                            std::thread::sleep(Duration::from_millis(5));
                            None
                        }
                        Err(_) => Some(None),
                    },
                )?
            })
            .collect();
        Draining { _held: held }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = plan;
        Draining::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::listen;

    #[test]
    fn a_probe_sees_a_listener_bound_with_so_reuseport() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        rt.block_on(async {
            let a = listen::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = a.local_addr().unwrap();
            assert_eq!(
                probe(addr, false).unwrap_err().kind(),
                io::ErrorKind::AddrInUse
            );
            // The wildcard address overlaps it too.
            let any = SocketAddr::from(([0, 0, 0, 0], addr.port()));
            assert!(probe(any, false).is_err());
            drop(a);
            assert!(probe(addr, false).is_ok());
            let u = listen::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
            assert!(probe(u.local_addr().unwrap(), true).is_err());
        });
    }

    #[test]
    fn a_marked_port_reads_as_draining_until_the_mark_is_dropped() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let plan = crate::config::load_str(
            &format!(
                "[[listener]]\nname = \"w\"\nlisten = \"127.0.0.1:{port}\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n"
            ),
            "t.toml",
        )
        .unwrap();
        assert!(!is_draining(port, false));
        let mark = mark_draining(&plan);
        assert_eq!(is_draining(port, false), cfg!(target_os = "linux"));
        assert!(!is_draining(port, true));
        drop(mark);
        assert!(!is_draining(port, false));
    }
}
