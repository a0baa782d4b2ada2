//! socket → pipe → socket with splice(2): the kernel moves page references, no byte is
//! copied through user memory. rustix wraps the calls safely; tokio's readiness drives
//! them with `try_io`, so a would-block parks the task like any other socket wait.
//! Used by `proxy::tcp` for a direction whose read filled its buffer (bulk data, HAProxy's
//! `splice-auto`); short exchanges never make a pipe.

use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The pipe's capacity (the Linux default is 64 KiB; a larger one moves more per call).
const PIPE_SIZE: usize = 256 * 1024;

pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

impl Pipe {
    /// A non-blocking pipe, or `None` when the process is out of descriptors (the caller
    /// then keeps copying through its buffer).
    pub(crate) fn new() -> Option<Pipe> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).ok()?;
        // Best effort: unprivileged processes may be capped by /proc/sys/fs/pipe-max-size.
        let size = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE)
            .unwrap_or(64 * 1024)
            .max(4096);
        Some(Pipe { read, write, size })
    }
}

/// Move everything from `from` to `to` until `from` ends; `moved` sees each chunk.
pub(crate) async fn copy(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    moved: impl Fn(usize),
) -> io::Result<()> {
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    loop {
        // The pipe is empty here, so a would-block can only come from the socket.
        let n = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || {
                splice(from, None, &pipe.write, None, pipe.size, flags).map_err(io::Error::from)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => break r?,
            }
        };
        if n == 0 {
            return Ok(());
        }
        // Drain the pipe fully; here a would-block can only come from the full socket.
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, to, None, left, flags).map_err(io::Error::from)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        moved(n);
    }
}
