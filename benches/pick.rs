//! Micro-benchmarks of the balancers: `pick` for every algorithm over 3, 100 and 1,000
//! servers (and, for the hashing ones, with one server down; for the load-aware ones, with
//! every server busy), and `build` over 1,000 servers with weights up to 1,000 (the cost a
//! pool pays when its usable set changes).
//!
//! Run: `cargo bench --bench pick`. Servers have weights 1..=10 (build: 1..=1000), some
//! requests in flight and a latency sample each, so the load-aware algorithms compare real
//! numbers; hashing algorithms get a different key or client address every pick.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use divan::{Bencher, black_box};
use switchyard::balance::{self, PickContext};
use switchyard::config::Algorithm;
use switchyard::upstream::{InFlight, Server};

fn main() {
    divan::main();
}

const SIZES: [usize; 3] = [3, 100, 1000];

/// `n` servers with weights cycling 1..=`max_weight`, latencies 1–5 ms, and a few requests
/// in flight (returned, to keep them in flight for the run).
fn pool(n: usize, max_weight: u32) -> (Vec<Arc<Server>>, Vec<InFlight>) {
    let servers: Vec<Arc<Server>> = (0..n)
        .map(|i| {
            let addr = format!("10.0.{}.{}:80", i / 250, i % 250 + 1)
                .parse()
                .unwrap();
            let s = Arc::new(Server::with_weight(addr, (i as u32 % max_weight) + 1));
            s.record_latency(Duration::from_micros(1000 + (i as u64 * 37) % 4000));
            s
        })
        .collect();
    let guards = servers
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, s)| s.begin())
        .collect();
    (servers, guards)
}

fn bench_pick(bencher: Bencher, algorithm: Algorithm, n: usize) {
    let (servers, _guards) = pool(n, 10);
    run_picks(bencher, algorithm, &*balance::build(algorithm, &servers));
}

/// Picks with a different client and key each time, so hashing is not served from one
/// cache line.
fn run_picks(bencher: Bencher, algorithm: Algorithm, b: &dyn balance::Balancer) {
    let counter = AtomicU64::new(0);
    bencher.bench(|| {
        let c = counter.fetch_add(1, Ordering::Relaxed);
        let key = c.to_le_bytes();
        let ctx = PickContext {
            client: Some(IpAddr::V4(Ipv4Addr::from(c as u32))),
            hash_key: algorithm.uses_hash_key().then_some(&key[..]),
            tried: &[],
        };
        black_box(b.pick(black_box(&ctx)))
    });
}

mod pick {
    use super::*;

    #[divan::bench(args = SIZES)]
    fn round_robin(b: Bencher, n: usize) {
        bench_pick(b, Algorithm::RoundRobin, n);
    }

    #[divan::bench(args = SIZES)]
    fn least_conn(b: Bencher, n: usize) {
        bench_pick(b, Algorithm::LeastConn, n);
    }

    #[divan::bench(args = SIZES)]
    fn least_time(b: Bencher, n: usize) {
        bench_pick(b, Algorithm::LeastTime, n);
    }

    #[divan::bench(args = SIZES)]
    fn p2c(b: Bencher, n: usize) {
        bench_pick(b, Algorithm::P2c, n);
    }

    #[divan::bench(args = SIZES)]
    fn random(b: Bencher, n: usize) {
        bench_pick(b, Algorithm::Random, n);
    }

    #[divan::bench(args = SIZES)]
    fn ip_hash(b: Bencher, n: usize) {
        bench_pick(b, Algorithm::IpHash, n);
    }

    #[divan::bench(args = SIZES)]
    fn hash(b: Bencher, n: usize) {
        bench_pick(b, Algorithm::Hash, n);
    }

    #[divan::bench(args = SIZES)]
    fn maglev(b: Bencher, n: usize) {
        bench_pick(b, Algorithm::Maglev, n);
    }
}

/// The load-aware picks when every server is busy (1–3 requests in flight each): no idle
/// server ends the scan early, so this is their worst case.
fn bench_pick_busy(bencher: Bencher, algorithm: Algorithm, n: usize) {
    let (servers, mut guards) = pool(n, 10);
    for (i, s) in servers.iter().enumerate() {
        for _ in 0..(1 + i % 3) {
            guards.push(s.begin());
        }
    }
    run_picks(bencher, algorithm, &*balance::build(algorithm, &servers));
}

mod pick_all_busy {
    use super::*;

    #[divan::bench(args = SIZES)]
    fn least_conn(b: Bencher, n: usize) {
        bench_pick_busy(b, Algorithm::LeastConn, n);
    }

    #[divan::bench(args = SIZES)]
    fn least_time(b: Bencher, n: usize) {
        bench_pick_busy(b, Algorithm::LeastTime, n);
    }

    #[divan::bench(args = SIZES)]
    fn p2c(b: Bencher, n: usize) {
        bench_pick_busy(b, Algorithm::P2c, n);
    }
}

/// A hashing pick with one server of the tier marked down: the balancer keeps its mapping
/// over every server (`build_tier`) and the keys of the down one take a second candidate.
fn bench_pick_one_down(bencher: Bencher, algorithm: Algorithm, n: usize) {
    let (servers, _guards) = pool(n, 10);
    servers[n / 2].set_admin_down(true);
    run_picks(
        bencher,
        algorithm,
        &*balance::build_tier(algorithm, &servers),
    );
}

mod pick_one_down {
    use super::*;

    #[divan::bench(args = SIZES)]
    fn ip_hash(b: Bencher, n: usize) {
        bench_pick_one_down(b, Algorithm::IpHash, n);
    }

    #[divan::bench(args = SIZES)]
    fn hash(b: Bencher, n: usize) {
        bench_pick_one_down(b, Algorithm::Hash, n);
    }

    #[divan::bench(args = SIZES)]
    fn maglev(b: Bencher, n: usize) {
        bench_pick_one_down(b, Algorithm::Maglev, n);
    }
}

/// Building each balancer over 1,000 servers with weights 1..=1000.
#[divan::bench(
    args = ["round_robin", "least_conn", "least_time", "p2c", "random", "ip_hash", "hash", "maglev"],
    sample_count = 10,
    sample_size = 1
)]
fn build_1000(bencher: Bencher, algorithm: &str) {
    let algorithm = Algorithm::parse(algorithm).expect("known algorithm");
    let (servers, _guards) = pool(1000, 1000);
    bencher.bench(|| black_box(balance::build(algorithm, black_box(&servers))));
}
