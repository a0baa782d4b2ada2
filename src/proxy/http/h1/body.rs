//! Buffers that live as long as their connection, and the body copy of the direct HTTP/1
//! path: from one side's read buffer and socket to the other side, by `Content-Length`,
//! chunked (each chunk checked and its size line written anew, extensions dropped) or to
//! the close, re-framed for the receiving side (chunked to an HTTP/1.1 peer that gets no
//! length, raw to an HTTP/1.0 client).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::parse::Framing;

/// The first size of a connection's read buffer; it grows to hold a head of up to
/// [`super::parse::MAX_HEAD`] and is kept at that size for the connection's life.
pub const READ_BUF: usize = 16 * 1024;
/// Output is written once this much has gathered (or before waiting to read).
pub const FLUSH_AT: usize = 32 * 1024;
/// The longest chunk-size line (size and extensions) or trailer section we read.
const CHUNK_LINE_MAX: usize = 4096;
const TRAILERS_MAX: usize = 16 * 1024;

/// A read buffer: bytes `start..end` of `buf` are read and not yet used.
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        ReadBuf {
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }
}

impl ReadBuf {
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Read more from `io` (at most `limit` bytes held in all); `Ok(0)` at end of stream.
    pub async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        limit: usize,
    ) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx, io, limit)).await
    }

    /// [`ReadBuf::fill`] as a poll (for a body hyper polls: `h1/client.rs`).
    pub fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        io: &mut R,
        limit: usize,
    ) -> std::task::Poll<io::Result<usize>> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < limit {
                let to = (self.buf.len() * 2).min(limit);
                self.buf.resize(to, 0);
            } else {
                return std::task::Poll::Ready(Err(io::Error::other("buffer full")));
            }
        }
        let mut rb = tokio::io::ReadBuf::new(&mut self.buf[self.end..]);
        std::task::ready!(std::pin::Pin::new(io).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        self.end += n;
        std::task::Poll::Ready(Ok(n))
    }

    /// [`ReadBuf::fill`] within `wait` (none: no limit).
    pub async fn fill_within<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        limit: usize,
        wait: Option<Duration>,
    ) -> Result<usize, ReadFailed> {
        let r = match wait {
            None => self.fill(io, limit).await,
            Some(d) => match tokio::time::timeout(d, self.fill(io, limit)).await {
                Ok(r) => r,
                Err(_) => return Err(ReadFailed::TimedOut),
            },
        };
        r.map_err(ReadFailed::Io)
    }

    /// Bytes the buffer holds in all (its capacity), for the head limit.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

/// A read that failed.
#[derive(Debug)]
pub enum ReadFailed {
    TimedOut,
    Io(io::Error),
}

/// How a body copy failed, and on which side.
#[derive(Debug)]
pub enum CopyError {
    /// The sending side: it stopped (end of stream, error) or sent nothing for the timeout.
    Read(ReadFailed),
    /// The sending side's framing is broken (a bad chunk): nothing more may be read from it.
    Framing(&'static str),
    /// The receiving side took no more.
    Write(io::Error),
    /// A chunked body went past the copy's `max`.
    TooLarge,
}

/// Write `out` whole to `io` and empty it.
pub async fn flush<W: AsyncWrite + Unpin>(io: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        send(io, out).await?;
        out.clear();
    }
    Ok(())
}

/// Write `bytes` whole to `io`, and out: over TLS a write can leave its last records queued
/// in rustls when the socket is full (tokio-rustls says they are written), and nothing
/// sends them while the connection waits to read, so every write before a read is flushed
/// (a no-op on plain TCP).
pub async fn send<W: AsyncWrite + Unpin>(io: &mut W, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

/// The size line of one chunk (lower-case hex, CRLF).
pub fn chunk_size_line(out: &mut Vec<u8>, n: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = HEX[v & 15];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The size of the chunk whose size line starts `b`: `Ok(Some((line_len, size)))`, `Ok(None)`
/// when the line is not all there. As hyper reads it: hex digits, optional spaces or tabs,
/// optional `;` extensions without a bare LF, then CRLF.
pub fn chunk_line(b: &[u8]) -> Result<Option<(usize, u64)>, &'static str> {
    let mut size: u64 = 0;
    let mut i = 0;
    let mut digits = 0;
    while i < b.len() {
        let d = match b[i] {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or("chunk size too large")?;
        digits += 1;
        i += 1;
    }
    if i == b.len() {
        return if i > 16 {
            Err("chunk size too large")
        } else {
            Ok(None)
        };
    }
    if digits == 0 {
        return Err("invalid chunk size");
    }
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    if i < b.len() && b[i] == b';' {
        while i < b.len() && b[i] != b'\r' {
            if b[i] == b'\n' {
                return Err("bare LF in a chunk extension");
            }
            i += 1;
        }
    }
    if i == b.len() || (i + 1 == b.len() && b[i] == b'\r') {
        return if b.len() > CHUNK_LINE_MAX {
            Err("chunk size line too long")
        } else {
            Ok(None)
        };
    }
    if b[i] != b'\r' || b[i + 1] != b'\n' {
        return Err("invalid chunk size line");
    }
    Ok(Some((i + 2, size)))
}

/// Whether `b` starts with a whole chunked body: `Some(bytes of data)` when it does, or when
/// it is malformed (the copy will say how), `None` while more is to come.
pub fn chunked_whole(b: &[u8]) -> Option<u64> {
    let (mut i, mut total) = (0usize, 0u64);
    loop {
        match chunk_line(&b[i..]) {
            Err(_) => return Some(total),
            Ok(None) => return None,
            Ok(Some((line, 0))) => {
                return trailers(&b[i + line..]).map_or(Some(total), |t| t.map(|_| total));
            }
            Ok(Some((line, size))) => {
                total = total.saturating_add(size);
                i = (i + line)
                    .checked_add(usize::try_from(size).ok()?)?
                    .checked_add(2)?;
                if i > b.len() {
                    return None;
                }
            }
        }
    }
}

/// The trailer section at the start of `b` (after the last chunk's size line): its length
/// with the final empty line, or `None` when not all there.
pub fn trailers(b: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut i = 0;
    loop {
        let Some(eol) = b[i..].iter().position(|&c| c == b'\n') else {
            return if b.len() > TRAILERS_MAX {
                Err("trailers too large")
            } else {
                Ok(None)
            };
        };
        let line = &b[i..i + eol];
        let Some(line) = line.strip_suffix(b"\r") else {
            return Err("bare LF in trailers");
        };
        i += eol + 1;
        if line.is_empty() {
            return Ok(Some(i));
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            return Err("invalid trailer line");
        };
        let name = &line[..colon];
        let valid_name = !name.is_empty()
            && name
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
        if !valid_name || line[colon + 1..].iter().any(|&c| c == b'\r' || c == 0) {
            return Err("invalid trailer line");
        }
    }
}

/// The two ends of a body copy and the buffers it uses.
pub struct Copy<'a, R, W> {
    pub src: &'a mut R,
    pub rb: &'a mut ReadBuf,
    pub dst: &'a mut W,
    pub out: &'a mut Vec<u8>,
    /// Most time to wait for the sending side's next bytes.
    pub wait: Option<Duration>,
    /// Re-frame as chunked for the receiving side (else raw bytes).
    pub chunked_out: bool,
    /// Pass trailers on (chunked to chunked only).
    pub trailers: bool,
    /// The most data a chunked body may carry (`client_max_body_size`; `u64::MAX`: no
    /// limit). A declared length is checked before the copy.
    pub max: u64,
    /// Body bytes passed on so far (for the access log).
    pub moved: u64,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Copy<'_, R, W> {
    fn emit(&mut self, n: usize) {
        if self.chunked_out {
            chunk_size_line(self.out, n);
        }
        self.out.extend_from_slice(&self.rb.data()[..n]);
        if self.chunked_out {
            self.out.extend_from_slice(b"\r\n");
        }
        self.rb.consume(n);
        self.moved += n as u64;
    }

    async fn flush(&mut self) -> Result<(), CopyError> {
        flush(self.dst, self.out).await.map_err(CopyError::Write)
    }

    /// Flush what is gathered, then read more from the sender; a close is an error here.
    async fn more(&mut self) -> Result<(), CopyError> {
        self.flush().await?;
        match self
            .rb
            .fill_within(self.src, self.rb.capacity(), self.wait)
            .await
        {
            Ok(0) => Err(CopyError::Read(ReadFailed::Io(
                io::ErrorKind::UnexpectedEof.into(),
            ))),
            Ok(_) => Ok(()),
            Err(e) => Err(CopyError::Read(e)),
        }
    }

    /// Copy one body framed as `framing`; what is gathered in `out` (a head, perhaps) goes
    /// with its first bytes. Returns when the body has been written whole.
    pub async fn body(&mut self, framing: Framing) -> Result<(), CopyError> {
        match framing {
            Framing::Empty => {}
            Framing::Length(mut left) => {
                while left > 0 {
                    if self.rb.is_empty() {
                        self.more().await?;
                    }
                    let n = (self.rb.data().len() as u64).min(left) as usize;
                    self.emit(n);
                    left -= n as u64;
                    if self.out.len() >= FLUSH_AT {
                        self.flush().await?;
                    }
                }
            }
            Framing::Close => loop {
                if self.rb.is_empty() {
                    self.flush().await?;
                    match self
                        .rb
                        .fill_within(self.src, self.rb.capacity(), self.wait)
                        .await
                    {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => return Err(CopyError::Read(e)),
                    }
                }
                let n = self.rb.data().len();
                self.emit(n);
            },
            Framing::Chunked => return self.chunked().await,
        }
        if self.chunked_out && framing != Framing::Empty {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
        self.flush().await
    }

    async fn chunked(&mut self) -> Result<(), CopyError> {
        let mut total: u64 = 0;
        loop {
            let (line, size) = loop {
                match chunk_line(self.rb.data()).map_err(CopyError::Framing)? {
                    Some(found) => break found,
                    None => self.more().await?,
                }
            };
            self.rb.consume(line);
            if size == 0 {
                let len = loop {
                    match trailers(self.rb.data()).map_err(CopyError::Framing)? {
                        Some(n) => break n,
                        None => self.more().await?,
                    }
                };
                if self.chunked_out {
                    self.out.extend_from_slice(b"0\r\n");
                    if self.trailers {
                        self.out.extend_from_slice(&self.rb.data()[..len - 2]);
                    }
                    self.out.extend_from_slice(b"\r\n");
                }
                self.rb.consume(len);
                return self.flush().await;
            }
            total = total.saturating_add(size);
            if total > self.max {
                return Err(CopyError::TooLarge);
            }
            let mut left = size;
            while left > 0 {
                if self.rb.is_empty() {
                    self.more().await?;
                }
                let n = (self.rb.data().len() as u64).min(left) as usize;
                self.emit(n);
                left -= n as u64;
                if self.out.len() >= FLUSH_AT {
                    self.flush().await?;
                }
            }
            while self.rb.data().len() < 2 {
                self.more().await?;
            }
            if &self.rb.data()[..2] != b"\r\n" {
                return Err(CopyError::Framing("chunk data not followed by CRLF"));
            }
            self.rb.consume(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lines_read_as_hyper_reads_them() {
        assert_eq!(chunk_line(b"5\r\nhello"), Ok(Some((3, 5))));
        assert_eq!(chunk_line(b"0005;a=b\r\n"), Ok(Some((10, 5))));
        assert_eq!(chunk_line(b"A \r\n"), Ok(Some((4, 10))));
        assert_eq!(chunk_line(b"5"), Ok(None));
        assert_eq!(chunk_line(b"5\r"), Ok(None));
        assert!(chunk_line(b"zz\r\n").is_err());
        assert!(chunk_line(b"-5\r\n").is_err());
        assert!(chunk_line(b"5;a\nb\r\n").is_err());
        assert!(chunk_line(b"1ffffffffffffffff\r\n").is_err());
        assert!(chunk_line(b"5\n").is_err());
    }

    #[test]
    fn a_whole_chunked_body_is_seen_whole() {
        assert_eq!(chunked_whole(b"5\r\nhello\r\n0\r\n\r\n"), Some(5));
        assert_eq!(
            chunked_whole(b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\nNEXT"),
            Some(5)
        );
        assert_eq!(chunked_whole(b"5\r\nhello\r\n0\r\n"), None);
        assert_eq!(chunked_whole(b"5\r\nhel"), None);
        assert_eq!(chunked_whole(b"zz\r\n"), Some(0), "malformed: stop waiting");
    }

    #[test]
    fn size_lines_are_hex() {
        let mut out = Vec::new();
        chunk_size_line(&mut out, 0);
        chunk_size_line(&mut out, 255);
        chunk_size_line(&mut out, 65536);
        assert_eq!(out, b"0\r\nff\r\n10000\r\n");
    }

    #[tokio::test]
    async fn a_chunked_body_is_checked_and_framed_again() {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut src: &[u8] = input;
        let mut rb = ReadBuf::default();
        let mut dst = Vec::new();
        let mut out = Vec::new();
        Copy {
            src: &mut src,
            rb: &mut rb,
            dst: &mut dst,
            out: &mut out,
            wait: None,
            chunked_out: true,
            trailers: true,
            max: u64::MAX,
            moved: 0,
        }
        .body(Framing::Chunked)
        .await
        .unwrap();
        assert_eq!(dst, b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n");
        assert_eq!(rb.data(), b"NEXT", "the next message stays in the buffer");
    }
}
