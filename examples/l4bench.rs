//! Load tool for `bench/l4.sh`: a TCP backend and two clients, for comparing L4 balancers
//! (Switchyard, HAProxy) side by side on the same backend.
//!
//! ```text
//! l4bench server ADDR                  # backend: "DOWN n\n" -> n bytes, then close
//! l4bench bulk ADDR BYTES              # one download of BYTES; prints MiB/s
//! l4bench conns ADDR SECONDS CONC      # CONC loops of connect/DOWN 64/read/close
//! ```
//! Every run is bounded in time; results go to stdout as `key=value` for the script.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("usage: l4bench server ADDR | bulk ADDR BYTES | conns ADDR SECONDS CONC");
            std::process::exit(2)
        })
    };
    let addr: SocketAddr = arg(1).parse().expect("ADDR as ip:port");
    match arg(0) {
        "server" => rt.block_on(server(addr)),
        "bulk" => rt.block_on(bulk(addr, arg(2).parse().expect("BYTES"))),
        "conns" => rt.block_on(conns(
            addr,
            Duration::from_secs(arg(2).parse().expect("SECONDS")),
            arg(3).parse().expect("CONC"),
        )),
        other => panic!("unknown command {other}"),
    }
}

async fn server(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let block = Arc::new(vec![0x5au8; 256 * 1024]);
    println!("listening={}", listener.local_addr().unwrap());
    loop {
        let Ok((s, _)) = listener.accept().await else {
            continue;
        };
        let block = block.clone();
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let mut r = BufReader::new(s);
            let mut line = String::new();
            if r.read_line(&mut line).await.is_err() {
                return;
            }
            let n: u64 = line
                .trim()
                .strip_prefix("DOWN ")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut s = r.into_inner();
            let mut left = n;
            while left > 0 {
                let k = left.min(block.len() as u64) as usize;
                if s.write_all(&block[..k]).await.is_err() {
                    return;
                }
                left -= k as u64;
            }
            let _ = s.shutdown().await;
        });
    }
}

async fn bulk(addr: SocketAddr, bytes: u64) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("DOWN {bytes}\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("data within 30 s")
            .expect("read");
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    assert_eq!(got, bytes, "short transfer");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "bytes={got} secs={secs:.3} mib_per_s={:.1}",
        got as f64 / secs / 1048576.0
    );
}

async fn conns(addr: SocketAddr, limit: Duration, conc: usize) {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + limit;
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (ok, errors) = (ok.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 256];
            while Instant::now() < deadline {
                let one = async {
                    let mut s = TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    s.write_all(b"DOWN 64\n").await?;
                    let mut got = 0;
                    loop {
                        let n = s.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        got += n;
                    }
                    if got == 64 {
                        Ok(())
                    } else {
                        Err(std::io::Error::other("short answer"))
                    }
                };
                match tokio::time::timeout(Duration::from_secs(5), one).await {
                    Ok(Ok(())) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "conns={ok} errors={} secs={secs:.3} conns_per_s={:.0}",
        errors.load(Ordering::Relaxed),
        ok as f64 / secs
    );
}
