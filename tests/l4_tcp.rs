//! L4 TCP through a real listener: redis-benchmark over two redis-servers, a 1 GiB transfer
//! with checksum and flat memory (splice and plain copy), half-close both ways, a backend
//! killed mid-run, connect timeout failover, idle timeout, max_connections, and the
//! in-flight count that least_conn reads.
mod common;
mod l4_common;

use std::time::{Duration, Instant};

use common::{start_lb, wait_until};
use l4_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xxhash_rust::xxh3::Xxh3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (redis): scripts/test runs it"]
async fn redis_benchmark_through_two_redis_servers_has_no_errors() {
    let r1 = Redis::start().await;
    let r2 = Redis::start().await;
    let lb = start_lb(&l4_config("tcp", "", "", &[r1.addr(), r2.addr()])).await;
    let addr = lb.local_addr("l4").unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
            .args(["-n", "20000", "-c", "20", "-q", "-t", "set,get"])
            .output(),
    )
    .await
    .expect("redis-benchmark within 180 s")
    .expect("cannot run redis-benchmark; install it: apt-get install redis-tools");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "redis-benchmark failed:\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.to_lowercase().contains("error") && !stderr.to_lowercase().contains("error"),
        "errors:\n{stdout}\n{stderr}"
    );
    for t in ["SET:", "GET:"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(t) && l.contains("requests per second")),
            "no {t} result:\n{stdout}"
        );
    }
    // Both servers served: every SET and GET went to one of them.
    let (s1, s2) = (r1.calls("set").await, r2.calls("set").await);
    let (g1, g2) = (r1.calls("get").await, r2.calls("get").await);
    assert!(s1 > 0 && s2 > 0, "SETs per server: {s1} {s2}");
    assert_eq!(s1 + s2, 20000);
    assert_eq!(g1 + g2, 20000);
    let stats = lb.tcp_stats("l4").unwrap();
    assert_eq!(stats.connect_failures(), 0);
    lb.shutdown().await;
}

/// Send `total` pattern bytes, shut down writing, and return the backend's answer line and
/// the checksum we computed, sampling our RSS as we go: (answer, digest, max RSS growth KiB
/// after the first 64 MiB).
async fn upload(addr: std::net::SocketAddr, total: u64) -> (String, u64, u64) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut p = Pattern::new();
    let mut h = Xxh3::new();
    let mut sent = 0u64;
    let mut baseline = 0;
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    while sent < total {
        let chunk = p.next_chunk((total - sent).min(64 * 1024) as usize);
        h.update(chunk);
        s.write_all(chunk).await.unwrap();
        sent += chunk.len() as u64;
        if sent.is_multiple_of(16 << 20) {
            assert!(Instant::now() < deadline, "transfer too slow: {sent} bytes");
            let rss = rss_kib();
            if sent == 64 << 20 {
                baseline = rss;
            }
            peak = peak.max(rss);
        }
    }
    s.shutdown().await.unwrap();
    let answer = read_to_end(&mut s, Duration::from_secs(60)).await;
    (
        String::from_utf8(answer).unwrap(),
        h.digest(),
        peak.saturating_sub(baseline),
    )
}

async fn gigabyte(splice: bool) {
    const GIB: u64 = 1 << 30;
    let b = TcpBackend::start("s1", Mode::Digest).await;
    let extra = format!("splice = {splice}");
    let lb = start_lb(&l4_config("tcp", &extra, "", &[b.addr])).await;
    let addr = lb.local_addr("l4").unwrap();
    let started = Instant::now();
    let (answer, digest, growth) = upload(addr, GIB).await;
    eprintln!(
        "1 GiB upload (splice = {splice}, debug build): {:.1} s, RSS growth after the first 64 MiB: {growth} KiB",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(answer, format!("s1 {GIB} {digest:016x}\n"));
    // Flat memory: after the first 64 MiB the process grew by less than 32 MiB while the
    // next 960 MiB went through.
    assert!(
        growth < 32 * 1024,
        "RSS grew by {growth} KiB during the transfer"
    );
    let stats = lb.tcp_stats("l4").unwrap();
    if splice {
        assert!(
            stats.spliced() >= 1,
            "bulk direction did not switch to splice"
        );
    } else {
        assert_eq!(stats.spliced(), 0);
    }

    // And the other way: 256 MiB from the server, checksummed on arrival.
    let src = TcpBackend::start("src", Mode::Source).await;
    let lb2 = start_lb(&l4_config("tcp", &extra, "", &[src.addr])).await;
    let mut s = TcpStream::connect(lb2.local_addr("l4").unwrap())
        .await
        .unwrap();
    let n: u64 = 256 << 20;
    s.write_all(format!("{n}\n").as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    let mut want = Xxh3::new();
    let mut p = Pattern::new();
    let mut left = n;
    while left > 0 {
        let c = p.next_chunk(left.min(64 * 1024) as usize);
        left -= c.len() as u64;
        want.update(c);
    }
    let mut got = Xxh3::new();
    let mut count = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let r = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("data keeps coming")
            .unwrap();
        if r == 0 {
            break;
        }
        got.update(&buf[..r]);
        count += r as u64;
    }
    assert_eq!((count, got.digest()), (n, want.digest()));
    lb.shutdown().await;
    lb2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (1 GiB through TCP): scripts/test runs it"]
async fn a_gigabyte_arrives_intact_with_flat_memory_spliced() {
    gigabyte(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (1 GiB through TCP): scripts/test runs it"]
async fn a_gigabyte_arrives_intact_with_flat_memory_plain_copy() {
    gigabyte(false).await;
}

#[tokio::test]
async fn half_close_passes_fin_on_and_the_other_direction_keeps_flowing() {
    // The client finishes first: it sends a request, shuts down writing, gets the answer.
    let src = TcpBackend::start("src", Mode::Source).await;
    let lb = start_lb(&l4_config("tcp", "", "", &[src.addr])).await;
    let mut s = TcpStream::connect(lb.local_addr("l4").unwrap())
        .await
        .unwrap();
    s.write_all(b"5000000\n").await.unwrap();
    s.shutdown().await.unwrap();
    let answer = read_to_end(&mut s, Duration::from_secs(30)).await;
    assert_eq!(answer.len(), 5_000_000);

    // The server finishes first: it greets and shuts down writing; the client sees the end
    // of stream and still sends 1 MB, which the server receives whole.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let greet = TcpBackend::start("g", Mode::GreetThenCount(tx)).await;
    let lb2 = start_lb(&l4_config("tcp", "", "", &[greet.addr])).await;
    let mut s = TcpStream::connect(lb2.local_addr("l4").unwrap())
        .await
        .unwrap();
    let hello = read_to_end(&mut s, Duration::from_secs(10)).await;
    assert_eq!(hello, b"hello from g\n");
    let mb = vec![7u8; 1_000_000];
    s.write_all(&mb).await.unwrap();
    s.shutdown().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("server counted")
        .unwrap();
    assert_eq!(got, 1_000_000);
    lb.shutdown().await;
    lb2.shutdown().await;
}

async fn exchange(addr: std::net::SocketAddr, payload: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect to LB");
    s.write_all(payload).await.unwrap();
    s.shutdown().await.unwrap();
    String::from_utf8(read_to_end(&mut s, Duration::from_secs(10)).await).unwrap()
}

#[tokio::test]
async fn a_backend_killed_mid_run_is_never_seen_by_clients() {
    let mut bs = Vec::new();
    for n in ["s1", "s2", "s3"] {
        bs.push(TcpBackend::start(n, Mode::Digest).await);
    }
    let addrs: Vec<_> = bs.iter().map(|b| b.addr).collect();
    let lb = start_lb(&l4_config("tcp", "", "", &addrs)).await;
    let addr = lb.local_addr("l4").unwrap();
    let mut served = Vec::new();
    for i in 0..60 {
        if i == 20 {
            bs[1].kill().await;
        }
        let answer = exchange(addr, b"ping").await;
        let name = answer.split(' ').next().unwrap_or("").to_string();
        assert!(
            answer.starts_with(&format!("{name} 4 ")),
            "connection {i}: bad answer {answer:?}"
        );
        served.push(name);
    }
    assert!(served[..20].iter().any(|n| n == "s2"));
    assert!(served[20..].iter().all(|n| n != "s2"), "{served:?}");
    assert!(served[20..].iter().any(|n| n == "s1") && served[20..].iter().any(|n| n == "s3"));
    let stats = lb.tcp_stats("l4").unwrap();
    assert!(stats.connect_failures() >= 1);
    lb.shutdown().await;
}

#[tokio::test]
async fn a_connect_timeout_tries_the_next_server() {
    // A listener whose accept queue is full and never drained: the kernel drops further SYNs,
    // so a connect to it hangs until our connect timeout.
    let hole = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    hole.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    hole.listen(0).unwrap();
    let hole_addr = hole.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    // Fill the queue: connects that complete (or hang) are kept open.
    for _ in 0..4 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(hole_addr)).await
        {
            fillers.push(s);
        }
    }
    let good = TcpBackend::start("good", Mode::Digest).await;
    let lb = start_lb(&l4_config(
        "tcp",
        "",
        "timeouts = { connect = \"200ms\" }",
        &[hole_addr, good.addr],
    ))
    .await;
    let addr = lb.local_addr("l4").unwrap();
    for _ in 0..4 {
        let answer = exchange(addr, b"x").await;
        assert!(answer.starts_with("good 1 "), "{answer:?}");
    }
    let stats = lb.tcp_stats("l4").unwrap();
    assert!(
        stats.connect_failures() >= 1,
        "the full listener was never tried"
    );
    lb.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_and_busy_ones_kept() {
    let b = TcpBackend::start("e", Mode::Echo).await;
    let lb = start_lb(&l4_config("tcp", "idle_timeout = \"1s\"", "", &[b.addr])).await;
    let addr = lb.local_addr("l4").unwrap();
    let stats = lb.tcp_stats("l4").unwrap();

    // Busy: a ping every 100 ms for 2 s (twice the idle timeout) stays open.
    let mut busy = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 4];
    let mut last_echo = Instant::now();
    for _ in 0..20 {
        busy.write_all(b"ping").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), busy.read_exact(&mut buf))
            .await
            .expect("echo")
            .expect("still open");
        last_echo = Instant::now();
        assert_eq!(&buf, b"ping");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats.idle_timeouts(), 0);

    // Quiet: closed by the balancer, about a second after the last byte (the balancer's
    // clock started when it wrote the last echo, a hair before we read it).
    assert!(closed_within(&mut busy, Duration::from_secs(10)).await);
    assert!(last_echo.elapsed() >= Duration::from_millis(900));
    assert_eq!(stats.idle_timeouts(), 1);
    wait_until(
        Duration::from_secs(5),
        "connection count back to 0",
        || async { stats.active() == 0 },
    )
    .await;
    lb.shutdown().await;
}

#[tokio::test]
async fn over_max_connections_clients_are_accepted_and_closed_at_once() {
    let b = TcpBackend::start("e", Mode::Echo).await;
    let lb = start_lb(&l4_config("tcp", "max_connections = 2", "", &[b.addr])).await;
    let addr = lb.local_addr("l4").unwrap();
    let stats = lb.tcp_stats("l4").unwrap();
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).await.unwrap();
        open.push(s);
    }
    let mut third = TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(b"hi").await;
    assert!(closed_within(&mut third, Duration::from_secs(5)).await);
    assert_eq!(stats.rejected_over_limit(), 1);
    assert_eq!(
        b.connections(),
        2,
        "the rejected client must not reach a server"
    );

    drop(open.pop());
    wait_until(Duration::from_secs(5), "a slot frees up", || async {
        stats.active() < 2
    })
    .await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    again.write_all(b"ok").await.unwrap();
    let mut buf = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), again.read_exact(&mut buf))
        .await
        .expect("echo")
        .unwrap();
    assert_eq!(&buf, b"ok");
    lb.shutdown().await;
}

#[tokio::test]
async fn an_open_connection_counts_on_its_server_for_least_conn() {
    let b1 = TcpBackend::start("a", Mode::Echo).await;
    let b2 = TcpBackend::start("b", Mode::Echo).await;
    let lb = start_lb(&l4_config(
        "tcp",
        "",
        "algorithm = \"least_conn\"",
        &[b1.addr, b2.addr],
    ))
    .await;
    let addr = lb.local_addr("l4").unwrap();
    let pool = lb.pool("p").unwrap();
    let in_flight = || pool.servers().iter().map(|s| s.in_flight()).sum::<u32>();
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).await.unwrap();
        conns.push(s);
    }
    assert_eq!(in_flight(), 3);
    // Spread over both servers (2 + 1), whatever the pool's picker.
    let per: Vec<u32> = pool.servers().iter().map(|s| s.in_flight()).collect();
    assert!(per.iter().all(|n| *n >= 1), "{per:?}");
    conns.clear();
    wait_until(Duration::from_secs(5), "in-flight back to 0", || async {
        in_flight() == 0
    })
    .await;
    lb.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_open_connections_finish() {
    let b = TcpBackend::start("e", Mode::Echo).await;
    let toml = format!(
        "grace_period = \"10s\"\n{}",
        l4_config("tcp", "", "", &[b.addr])
    );
    let lb = start_lb(&toml).await;
    let addr = lb.local_addr("l4").unwrap();
    let stats = lb.tcp_stats("l4").unwrap();
    let mut open = TcpStream::connect(addr).await.unwrap();
    open.write_all(b"1").await.unwrap();
    let mut buf = [0u8; 1];
    open.read_exact(&mut buf).await.unwrap();

    let stopping = tokio::spawn(lb.shutdown());
    wait_until(
        Duration::from_secs(5),
        "the listener stops accepting",
        || async { TcpStream::connect(addr).await.is_err() },
    )
    .await;
    // The open connection still works during the grace period.
    open.write_all(b"2").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"2");
    assert!(!stopping.is_finished());
    drop(open);
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown ends once the last connection closed")
        .unwrap();
    assert_eq!(stats.active(), 0);
}
