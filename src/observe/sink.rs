//! Where access-log lines go, without a request ever waiting on a disk or a pipe.
//!
//! A request (or an L4 connection) formats its line into its thread's own buffer, under a
//! lock only that thread and the writer take. A writer thread per log takes the buffers
//! every [`FLUSH_EVERY`] (sooner when one is half full) and writes each in one `write`. A
//! buffer holds at most `[log] buffer` bytes: when the writer falls behind (a full disk, a
//! pipe nobody reads), lines are dropped and counted instead of waiting, and a failed write
//! counts its lines as dropped too. SIGUSR1 makes the writer open the file again (after
//! logrotate moved it away).
//!
//! [`AccessLog`] is what the runtime holds and hands to every listener: its [`Sink`] (one
//! destination with its writer) is swapped whole when a reload changes `[log]`, and its
//! counters stay.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::config::{AccessTarget, LogFormat, LogPlan};

/// How often the writer takes the lines gathered.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// The lines of one log, ever.
#[derive(Debug, Default)]
pub struct Counters {
    /// Lines taken into a buffer (written, or about to be).
    pub lines: AtomicU64,
    /// Lines dropped because their thread's buffer was full: the writer fell behind.
    pub dropped_full: AtomicU64,
    /// Lines lost because a write failed (disk full, a closed pipe).
    pub dropped_write: AtomicU64,
}

/// The access log of a running Switchyard.
#[derive(Debug, Default)]
pub struct AccessLog {
    sink: ArcSwapOption<Sink>,
    /// Whether `sink` is set: asked of every request, an atomic load where a load of `sink`
    /// costs about a hundred instructions.
    on: AtomicBool,
    counters: Arc<Counters>,
}

impl AccessLog {
    /// A log as `plan` says (see [`AccessLog::set`]).
    pub fn open(plan: &LogPlan) -> std::io::Result<AccessLog> {
        let log = AccessLog::default();
        log.set(plan)?;
        Ok(log)
    }

    /// Write where `plan` says from now on; the sink before writes what it holds and ends.
    /// A file that cannot be opened changes nothing. Standard output and error follow the
    /// process's log filter (target `switchyard::access` at INFO): filtered out, the log
    /// is off and nothing is gathered.
    pub fn set(&self, plan: &LogPlan) -> std::io::Result<()> {
        let next = self.prepare(plan)?;
        self.commit(next);
        Ok(())
    }

    /// The first half of [`AccessLog::set`], which can fail: open what `plan` names.
    pub fn prepare(&self, plan: &LogPlan) -> std::io::Result<Opened> {
        Ok(Opened(Sink::open(plan, self.counters.clone())?))
    }

    /// The second half, which cannot: write there from now on.
    pub fn commit(&self, next: Opened) {
        let on = next.0.is_some();
        self.sink.store(next.0.map(Arc::new));
        self.on.store(on, Ordering::Release);
    }

    /// Whether lines are written at all: when not, a caller need not gather their fields.
    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Append one line, written by `line` in the log's format into this thread's buffer
    /// (it must end with `\n`); nothing when the log is off. Never waits on I/O.
    pub fn write(&self, line: impl FnOnce(&mut Vec<u8>, LogFormat)) {
        if !self.enabled() {
            return;
        }
        if let Some(sink) = self.sink.load().as_ref() {
            sink.write(line);
        }
    }

    /// Open the file again (SIGUSR1, after logrotate moved it).
    pub fn reopen(&self) {
        if let Some(sink) = self.sink.load().as_ref() {
            sink.reopen.store(true, Ordering::Relaxed);
            let _ = sink.wake.try_send(Msg::Wake);
        }
    }

    /// Wait (at most `limit`) until every line gathered so far has been written.
    pub fn flush(&self, limit: Duration) {
        let Some(sink) = self.sink.load_full() else {
            return;
        };
        let (ack, done) = mpsc::sync_channel(1);
        if sink.wake.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(limit);
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// A destination opened by [`AccessLog::prepare`], not written to yet.
#[derive(Debug)]
pub struct Opened(Option<Sink>);

/// One thread's lines for one sink.
#[derive(Debug, Default)]
struct Lines {
    bytes: Vec<u8>,
    /// The writer was asked to come sooner for these lines: once per batch, not per line.
    asked: bool,
}

type Buffer = Arc<Mutex<Lines>>;

enum Msg {
    Wake,
    Flush(mpsc::SyncSender<()>),
}

/// One destination and its writer thread, which ends (after writing what is left) when the
/// sink is dropped.
#[derive(Debug)]
pub struct Sink {
    /// Tells this sink's buffers from another's in a thread's list.
    id: u64,
    format: LogFormat,
    cap: usize,
    buffers: Arc<Mutex<Vec<Buffer>>>,
    reopen: Arc<AtomicBool>,
    wake: mpsc::SyncSender<Msg>,
    counters: Arc<Counters>,
}

thread_local! {
    /// This thread's buffer of each sink it wrote to.
    static LOCAL: RefCell<Vec<(u64, Buffer)>> = const { RefCell::new(Vec::new()) };
}

impl Sink {
    /// The sink `plan` names, or `None` when the log is off.
    fn open(plan: &LogPlan, counters: Arc<Counters>) -> std::io::Result<Option<Sink>> {
        let stdio = || tracing::enabled!(target: "switchyard::access", tracing::Level::INFO);
        let out = match &plan.access {
            AccessTarget::Off => return Ok(None),
            AccessTarget::Stdout if !stdio() => return Ok(None),
            AccessTarget::Stderr if !stdio() => return Ok(None),
            AccessTarget::Stdout => Out::Stdout,
            AccessTarget::Stderr => Out::Stderr,
            AccessTarget::File(path) => Out::File {
                file: append(path)?,
                path: path.clone(),
            },
        };
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let (wake, woken) = mpsc::sync_channel(16);
        let sink = Sink {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            format: plan.format,
            cap: plan.buffer,
            buffers: Arc::default(),
            reopen: Arc::default(),
            wake,
            counters: counters.clone(),
        };
        let writer = Writer {
            out,
            buffers: sink.buffers.clone(),
            reopen: sink.reopen.clone(),
            counters,
            spare: Vec::new(),
        };
        std::thread::Builder::new()
            .name("switchyard-log".into())
            .spawn(move || writer.run(woken))?;
        Ok(Some(sink))
    }

    fn write(&self, line: impl FnOnce(&mut Vec<u8>, LogFormat)) {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let i = match local.iter().position(|(id, _)| *id == self.id) {
                Some(i) => i,
                None => {
                    // Buffers of sinks that have ended are held by this list alone.
                    local.retain(|(_, b)| Arc::strong_count(b) > 1);
                    let b: Buffer = Arc::new(Mutex::new(Lines {
                        bytes: Vec::with_capacity(self.cap.min(64 << 10)),
                        asked: false,
                    }));
                    self.buffers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(b.clone());
                    local.push((self.id, b));
                    local.len() - 1
                }
            };
            let mut held = local[i].1.lock().unwrap_or_else(|e| e.into_inner());
            let Lines { bytes, asked } = &mut *held;
            let start = bytes.len();
            if start < self.cap {
                line(bytes, self.format);
                if bytes.len() <= self.cap {
                    self.counters.lines.fetch_add(1, Ordering::Relaxed);
                    if bytes.len() >= self.cap / 2 && !*asked {
                        *asked = true;
                        let _ = self.wake.try_send(Msg::Wake);
                    }
                    return;
                }
                bytes.truncate(start);
            }
            self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// Open `path` for appending, creating it.
fn append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

enum Out {
    Stdout,
    Stderr,
    File { path: PathBuf, file: File },
}

struct Writer {
    out: Out,
    buffers: Arc<Mutex<Vec<Buffer>>>,
    reopen: Arc<AtomicBool>,
    counters: Arc<Counters>,
    /// Swapped with a full buffer, so neither allocates again.
    spare: Vec<u8>,
}

impl Writer {
    fn run(mut self, woken: mpsc::Receiver<Msg>) {
        loop {
            let msg = woken.recv_timeout(FLUSH_EVERY);
            if self.reopen.swap(false, Ordering::Relaxed) {
                self.reopen_file();
            }
            self.drain();
            match msg {
                Ok(Msg::Flush(ack)) => {
                    let _ = ack.try_send(());
                }
                Err(RecvTimeoutError::Disconnected) => return,
                _ => {}
            }
        }
    }

    fn reopen_file(&mut self) {
        if let Out::File { path, file } = &mut self.out {
            match append(path) {
                Ok(f) => *file = f,
                Err(e) => tracing::warn!(
                    "access log {}: cannot open it again ({e}); writing on to the file open before",
                    path.display()
                ),
            }
        }
    }

    /// Write every thread's lines, one write per buffer; forget the buffers of threads that
    /// have ended.
    fn drain(&mut self) {
        let buffers: Vec<Buffer> = {
            let mut all = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
            let list = all.clone();
            all.retain(|b| Arc::strong_count(b) > 2);
            list
        };
        for b in buffers {
            {
                let mut lines = b.lock().unwrap_or_else(|e| e.into_inner());
                lines.asked = false;
                if lines.bytes.is_empty() {
                    continue;
                }
                std::mem::swap(&mut lines.bytes, &mut self.spare);
            }
            let written = match &mut self.out {
                Out::Stdout => std::io::stdout().lock().write_all(&self.spare),
                Out::Stderr => std::io::stderr().lock().write_all(&self.spare),
                Out::File { file, .. } => file.write_all(&self.spare),
            };
            if written.is_err() {
                let lost = self.spare.iter().filter(|&&c| c == b'\n').count() as u64;
                self.counters
                    .dropped_write
                    .fetch_add(lost, Ordering::Relaxed);
            }
            self.spare.clear();
        }
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Out::Stdout => f.write_str("stdout"),
            Out::Stderr => f.write_str("stderr"),
            Out::File { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(path: &Path, buffer: usize) -> LogPlan {
        LogPlan {
            access: AccessTarget::File(path.to_path_buf()),
            format: LogFormat::Combined,
            buffer,
        }
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("switchyard-sink-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lines_from_many_threads_reach_the_file_and_a_reopen_follows_a_rename() {
        let d = dir("reopen");
        let path = d.join("access.log");
        let log = Arc::new(AccessLog::open(&plan(&path, 1 << 20)).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        log.write(|out, _| {
                            out.extend_from_slice(format!("t{t} line {i}\n").as_bytes())
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        log.flush(Duration::from_secs(5));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 400);
        assert!(text.contains("t3 line 99\n"));
        assert_eq!(log.counters().lines.load(Ordering::Relaxed), 400);

        // logrotate: the file moves away, SIGUSR1, new lines go to a new file.
        std::fs::rename(&path, d.join("access.log.1")).unwrap();
        log.write(|out, _| out.extend_from_slice(b"before the reopen\n"));
        log.flush(Duration::from_secs(5));
        log.reopen();
        log.write(|out, _| out.extend_from_slice(b"after the reopen\n"));
        log.flush(Duration::from_secs(5));
        let old = std::fs::read_to_string(d.join("access.log.1")).unwrap();
        assert!(old.ends_with("before the reopen\n"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "after the reopen\n"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_writer_that_cannot_write_makes_lines_drop_and_count_never_wait() {
        // The log is a FIFO nobody reads (opened for reading without blocking, so the
        // writer's open succeeds): once the pipe's 64 KiB are full the writer blocks, the
        // thread's 4 KiB buffer fills, and every further line is dropped and counted.
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let d = dir("full");
        let fifo = d.join("a.log");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        const O_NONBLOCK: i32 = 0o4000;
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let log = AccessLog::open(&plan(&fifo, 4096)).unwrap();
        let line = [b'x'; 99];
        let started = std::time::Instant::now();
        let mut tries = 0u64;
        // Until the pipe is full (64 KiB, or one page when the user's pipes are over
        // their quota) and lines drop: 500 dropped, and none taken for the last 200 tries.
        let c = log.counters();
        let mut taken_at = 0;
        let mut last_lines = 0;
        while c.dropped_full.load(Ordering::Relaxed) < 500 || tries - taken_at < 200 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the pipe never filled"
            );
            log.write(|out, _| {
                out.extend_from_slice(&line);
                out.push(b'\n');
            });
            tries += 1;
            let lines = c.lines.load(Ordering::Relaxed);
            if lines != last_lines {
                (last_lines, taken_at) = (lines, tries);
            }
            if tries.is_multiple_of(40) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let (lines, dropped) = (
            c.lines.load(Ordering::Relaxed),
            c.dropped_full.load(Ordering::Relaxed),
        );
        assert_eq!(lines + dropped, tries, "each line taken or dropped, once");
        assert!(
            lines < 800,
            "at most the pipe's worth and two buffers: {lines}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        // Read it all: the writer unblocks, writes what it holds, and closes at drop.
        let read = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 65536];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => return all,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        });
        drop(log);
        let all = read.join().unwrap();
        assert_eq!(
            all.len() as u64,
            lines * 100,
            "every line taken is written whole"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn off_gathers_nothing_and_a_bad_path_is_an_error() {
        let log = AccessLog::open(&LogPlan {
            access: AccessTarget::Off,
            ..LogPlan::default()
        })
        .unwrap();
        assert!(!log.enabled());
        log.write(|_, _| panic!("not called when off"));
        let bad = plan(Path::new("/nonexistent-dir/x/access.log"), 4096);
        assert!(AccessLog::open(&bad).is_err());
        // A failed change keeps what runs.
        let d = dir("keep");
        let log = AccessLog::open(&plan(&d.join("a.log"), 4096)).unwrap();
        assert!(log.set(&bad).is_err());
        assert!(log.enabled());
        let _ = std::fs::remove_dir_all(&d);
    }
}
