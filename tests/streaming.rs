//! Bodies stream both ways with bounded memory: 1 GiB up and 1 GiB down through the real
//! binary, whose peak RSS must stay under 64 MiB and grow by less than 4 MiB over its idle
//! size.
mod common;

use std::time::Duration;

use common::*;
use switchyard::demo::pattern_byte;
use tokio::io::AsyncReadExt;

const GIB: u64 = 1 << 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (1 GiB each way, curl): scripts/test runs it"]
async fn one_gib_each_way_with_flat_memory() {
    let b = backends(1).await;
    let lb = LbProcess::start(&simple_config("round_robin", &b, &[]));
    let addr = lb.addr;
    // Mostly the binary's own pages (a debug build maps about 14 MiB of them).
    let idle = lb.peak_rss_kib();

    // Download: curl fetches 1 GiB; the test checks every byte against the pattern.
    let mut child = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "300"])
        .arg(format!("http://{addr}/bytes/{GIB}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl must be installed (scripts/test installs it)");
    let mut out = child.stdout.take().unwrap();
    let mut expected = xxhash_rust::xxh3::Xxh3::new();
    let mut got = xxhash_rust::xxh3::Xxh3::new();
    let mut n = 0u64;
    let pattern: Vec<u8> = (0..251u64).map(pattern_byte).collect();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let k = out.read(&mut buf).await.unwrap();
        if k == 0 {
            break;
        }
        got.update(&buf[..k]);
        // The same bytes, made from the pattern independently of the server.
        let mut off = 0;
        while off < k {
            let start = ((n + off as u64) % 251) as usize;
            let take = (251 - start).min(k - off);
            expected.update(&pattern[start..start + take]);
            off += take;
        }
        n += k as u64;
    }
    assert!(child.wait().await.unwrap().success());
    assert_eq!(n, GIB, "downloaded bytes");
    assert_eq!(
        got.digest(),
        expected.digest(),
        "downloaded content differs"
    );

    // Upload: curl streams 1 GiB of zeros (chunked); the backend counts and hashes them.
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c {GIB} /dev/zero | curl -sS --max-time 300 -T - http://{addr}/upload"
        ))
        .output()
        .await
        .unwrap();
    let mut zeros = xxhash_rust::xxh3::Xxh3::new();
    let block = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        zeros.update(&block);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!("received {GIB} bytes xxh3={:016x}", zeros.digest()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let peak = lb.peak_rss_kib();
    eprintln!("switchyard peak RSS after 2 GiB through it: {peak} KiB ({idle} KiB idle)");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB is over 64 MiB");
    // What streaming added: a few buffers per connection, not the bodies.
    assert!(
        peak - idle < 4 * 1024,
        "streaming grew RSS by {} KiB (over 4 MiB)",
        peak - idle
    );
    // Still serving afterwards.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(get(addr, "/").await.status, 200);
}
