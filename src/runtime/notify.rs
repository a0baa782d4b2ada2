//! systemd's service notifications (sd_notify(3)) for `Type=notify` units: `READY=1` once
//! every listener serves, `RELOADING=1` (with `MONOTONIC_USEC`, as systemd 253 and later
//! want) then `READY=1` around a reload, `STOPPING=1` when a shutdown begins, and
//! `MAINPID=` when an upgraded process takes over.
//!
//! A datagram to the Unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the
//! abstract namespace); nothing when the variable is unset (not under systemd). Written by
//! hand: a few lines over std's `UnixDatagram`, where the `sd-notify` crate would bring libc
//! calls in `unsafe` for the clock that rustix already reads safely.

/// `READY=1`: started, or a reload is over.
pub fn ready() {
    send("READY=1\n");
}

/// `RELOADING=1`: a reload begins; [`ready`] ends it.
pub fn reloading() {
    send(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\n",
        monotonic_usec()
    ));
}

/// `STOPPING=1`: a shutdown begins.
pub fn stopping() {
    send("STOPPING=1\n");
}

/// This process, started by an upgrade, is now the service's main process, and ready.
pub fn taken_over() {
    send(&format!("MAINPID={}\nREADY=1\n", std::process::id()));
}

/// A line for `systemctl status`.
pub fn status(text: &str) {
    send(&format!("STATUS={}\n", text.replace('\n', " ")));
}

fn send(message: &str) {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET")
        && let Err(e) = send_to(&socket, message)
    {
        tracing::warn!("cannot notify systemd on {socket:?}: {e}");
    }
}

/// Send one notification to `socket` (a path, or `@name` for the abstract namespace).
#[cfg(unix)]
pub fn send_to(socket: &std::ffi::OsStr, message: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let bytes = socket.as_bytes();
    let sock = UnixDatagram::unbound()?;
    match bytes.first() {
        Some(b'/') => {
            sock.send_to(message.as_bytes(), socket)?;
        }
        #[cfg(target_os = "linux")]
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])?;
            sock.send_to_addr(message.as_bytes(), &addr)?;
        }
        _ => {
            return Err(std::io::Error::other(
                "NOTIFY_SOCKET is neither a path nor an abstract socket",
            ));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn send_to(_: &std::ffi::OsStr, _: &str) -> std::io::Result<()> {
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares reload times on.
fn monotonic_usec() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        (t.tv_sec as u64) * 1_000_000 + (t.tv_nsec as u64) / 1_000
    }
    #[cfg(not(target_os = "linux"))]
    0
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_notification_reaches_the_socket() {
        let dir = std::env::temp_dir().join(format!("sy-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
        assert!(monotonic_usec() > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
