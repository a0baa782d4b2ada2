//! Ports for processes a test starts, and addresses nothing listens on.
//!
//! A port bound and let go (`bind 127.0.0.1:0`) goes back to the kernel's ephemeral range,
//! where the next `bind(…:0)` of a test running beside this one may get it. The demo
//! backends and Switchyard's listeners bind with SO_REUSEPORT, so a process started on such
//! a port can end up sharing it with another test's backend (a CI run saw the admin API of a
//! started process answered by a backend). These ports come from below the ephemeral range,
//! which port-0 binds and outgoing connections never use, and each is handed out once per
//! test process, starting at an offset of its pid (test binaries run one after another).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The first port of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A port of 127.0.0.1 free for TCP and UDP now, outside the ephemeral range.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 10_000;
    let span = ephemeral_low().saturating_sub(FIRST).max(1000);
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + n) % span) as u16;
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port of 127.0.0.1 in {FIRST}..{}", FIRST + span)
}

/// A free UDP port (the same ports as `free_port`).
pub fn free_udp_port() -> u16 {
    free_port()
}

/// An address of 127.0.0.1 nothing listens on.
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}
