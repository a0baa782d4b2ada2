//! Handing the listening sockets of a running Switchyard to a new one (`switchyard run
//! --upgrade`), as HAProxy's `-x` and Envoy's hot restart do: not one connection is refused,
//! because the sockets never close — both processes hold the same sockets while the new one
//! starts, then the old one stops accepting and finishes its connections.
//!
//! The running process listens on a Unix socket (`--upgrade-socket PATH`, mode 0600). The
//! new process, its config already checked, connects and says `SWITCHYARD-UPGRADE 1`; the
//! old one answers with a length-prefixed JSON list of its sockets (listener name, TCP or
//! UDP, configured and bound address; the admin listener as `admin`) and the descriptors
//! themselves in the same message (`SCM_RIGHTS`). The new process takes the sockets its
//! config asks for (by name and configured address; a port 0 by name only), binds the rest,
//! starts serving and writes `READY`. Only then does the old process stop accepting and
//! drain; if the new one dies first, the old one goes on as if nothing happened.
//!
//! Linux only (the descriptors are passed with rustix, free of `unsafe`).

use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

use super::listener::{Socket, Spare, SpareSocket};

const HELLO: &str = "SWITCHYARD-UPGRADE 1";
const READY: &str = "READY";
/// SCM_MAX_FD: the most descriptors one message may carry.
const MAX_SOCKETS: usize = 253;
/// The largest description the new process accepts.
const MAX_HEADER: usize = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    pid: u32,
    sockets: Vec<Described>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Described {
    name: String,
    udp: bool,
    configured: SocketAddr,
    bound: Option<SocketAddr>,
}

/// A socket received from the running process, not yet registered with tokio.
#[derive(Debug)]
pub struct Handed {
    pub name: String,
    pub udp: bool,
    pub configured: SocketAddr,
    pub bound: Option<SocketAddr>,
    fd: OwnedFd,
}

/// The new process's side of a hand-over in progress: the sockets, and the line back to the
/// old process for [`Taking::ready`].
#[derive(Debug)]
pub struct Taking {
    pub sockets: Vec<Handed>,
    /// The old process's pid.
    pub from: u32,
    stream: UnixStream,
}

/// Connect to the running process at `path` and receive its sockets.
pub fn take(path: &Path) -> io::Result<Taking> {
    let mut stream = UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "no running Switchyard answers on {}: {e} (start the running one with --upgrade-socket {0})",
                path.display()
            ),
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    writeln!(stream, "{HELLO} {}", std::process::id())?;
    // The first bytes carry the descriptors; then the rest of the description.
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        stream.as_fd(),
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    let mut data = buf[..got.bytes].to_vec();
    while data.len() < 4 {
        let mut more = [0u8; 4];
        let n = stream.read(&mut more)?;
        if n == 0 {
            return Err(io::Error::other("the running process closed the hand-over"));
        }
        data.extend_from_slice(&more[..n]);
    }
    let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if len > MAX_HEADER {
        return Err(io::Error::other(
            "the running process sent a description too large",
        ));
    }
    while data.len() < 4 + len {
        let mut more = vec![0u8; 4 + len - data.len()];
        let n = stream.read(&mut more)?;
        if n == 0 {
            return Err(io::Error::other("the running process closed the hand-over"));
        }
        data.extend_from_slice(&more[..n]);
    }
    let header: Header = serde_json::from_slice(&data[4..4 + len])
        .map_err(|e| io::Error::other(format!("the running process's description: {e}")))?;
    if header.sockets.len() != fds.len() {
        return Err(io::Error::other(format!(
            "the running process described {} sockets but passed {}",
            header.sockets.len(),
            fds.len()
        )));
    }
    let sockets = header
        .sockets
        .into_iter()
        .zip(fds)
        .map(|(d, fd)| Handed {
            name: d.name,
            udp: d.udp,
            configured: d.configured,
            bound: d.bound,
            fd,
        })
        .collect();
    Ok(Taking {
        sockets,
        from: header.pid,
        stream,
    })
}

impl Taking {
    /// The sockets as spares for the runtime (in a tokio runtime: they are registered with
    /// its reactor). One that cannot be used is left out (and the listener binds anew).
    pub fn spare(&mut self) -> Spare {
        let mut spare = Spare::default();
        for h in self.sockets.drain(..) {
            let socket = if h.udp {
                let s = std::net::UdpSocket::from(h.fd);
                s.set_nonblocking(true)
                    .and_then(|()| tokio::net::UdpSocket::from_std(s))
                    .map(|s| Socket::Udp(Arc::new(s)))
            } else {
                let s = std::net::TcpListener::from(h.fd);
                s.set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(s))
                    .map(|s| Socket::Tcp(Arc::new(s)))
            };
            match socket {
                Ok(socket) => spare.sockets.push(SpareSocket {
                    name: h.name,
                    configured: h.configured,
                    socket,
                }),
                Err(e) => {
                    tracing::warn!(listener = %h.name, "cannot use the socket handed over: {e}")
                }
            }
        }
        spare
    }

    /// Tell the old process that this one serves: it stops accepting and drains.
    pub fn ready(mut self) -> io::Result<()> {
        writeln!(self.stream, "{READY}")?;
        self.stream.flush()
    }
}

/// Bind the Unix socket a later `switchyard run --upgrade` connects to. `take_over`: this
/// process is itself an upgrade, and replaces the socket the old process listened on;
/// otherwise a socket that a live process still answers on is an error.
pub fn listen(path: &Path, take_over: bool) -> io::Result<tokio::net::UnixListener> {
    if path.exists() {
        if !take_over && UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "a running Switchyard listens on {}; to take over from it, run with --upgrade",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The old process's side of one hand-over on `stream` (a blocking socket): read the hello,
/// send `sockets`, and wait for the new process's `READY` (true) or its going away (false).
pub fn give(stream: UnixStream, sockets: &[SpareSocket]) -> io::Result<bool> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut lines = BufReader::new(stream.try_clone()?);
    let mut hello = String::new();
    lines.read_line(&mut hello)?;
    if !hello.starts_with(HELLO) {
        return Err(io::Error::other(format!(
            "not an upgrade request: {:?}",
            hello.trim()
        )));
    }
    if sockets.len() > MAX_SOCKETS {
        return Err(io::Error::other(format!(
            "{} sockets are more than one hand-over carries ({MAX_SOCKETS})",
            sockets.len()
        )));
    }
    let header = Header {
        pid: std::process::id(),
        sockets: sockets
            .iter()
            .map(|s| Described {
                name: s.name.clone(),
                udp: s.socket.is_udp(),
                configured: s.configured,
                bound: s.socket.local_addr(),
            })
            .collect(),
    };
    let json = serde_json::to_vec(&header).map_err(io::Error::other)?;
    let mut message = (json.len() as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&json);
    let fds: Vec<_> = sockets.iter().map(|s| s.socket.fd()).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for the descriptors"));
    }
    let sent = rustix::net::sendmsg(
        stream.as_fd(),
        &[IoSlice::new(&message)],
        &mut control,
        SendFlags::empty(),
    )?;
    (&stream).write_all(&message[sent..])?;
    // The new process binds what it did not get and starts serving: give it time.
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut answer = String::new();
    lines.read_line(&mut answer)?;
    Ok(answer.trim() == READY)
}
