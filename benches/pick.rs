//! Micro-benchmarks of the balancers, every algorithm over 3, 100 and 1,000 servers:
//!
//! - `pick_idle`: no request in flight anywhere;
//! - `pick`: a third of the servers with a request in flight;
//! - `pick_all_busy`: every server with 1–3 in flight (no idle server ends a scan early);
//! - `pick_one_down`: as `pick`, with one server of the tier marked down and the balancer
//!   built as a pool builds it (`build_tier`: hashing algorithms keep it in their mapping);
//! - `begin_end`: what a request's start and end cost on a server of such a pool
//!   (`Server::begin` and dropping its guard), every server busy;
//! - `request`: a whole request's share of balancing, pick + begin + end, every server busy;
//! - `build_1000`: building each balancer over 1,000 servers with weights up to 1,000 (the
//!   cost a pool pays when its usable set changes).
//!
//! Run: `cargo bench --bench pick` (a filter narrows it: `cargo bench --bench pick --
//! pick_all_busy`). For instruction counts, see [`count`]. Servers have weights 1..=10 (build: 1..=1000) and a latency sample each,
//! so the load-aware algorithms compare real numbers; hashing algorithms get a different key
//! or client address every pick. Each benchmark warms up (up to 2^18 picks or 50 ms) and takes
//! samples of 64 picks: with divan's own tuning, one slow first pick (cold caches over a
//! ring of megabytes) made it time picks one at a time, which measured the timer, and longer
//! samples of the slow picks were cut by other processes on a shared machine.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use divan::{Bencher, black_box};
use switchyard::balance::{self, Balancer, PickContext};
use switchyard::config::Algorithm;
use switchyard::upstream::{InFlight, Server};

fn main() {
    match std::env::var("PICK_COUNT") {
        Ok(spec) => count(&spec),
        Err(_) => divan::main(),
    }
}

/// Picks (or requests, or begin/end pairs) that `count` makes, for instruction counts.
const COUNT: u64 = 10_000;

/// `PICK_COUNT=ALGORITHM,WHAT,N` (`WHAT`: `idle`, `mixed`, `busy`, `down`, `begin_end` or
/// `request`, as the groups above): 10,000 warm-up rounds of it, then 10,000 more in
/// `counted`, for `valgrind --tool=callgrind --toggle-collect='*counted*'`, whose total
/// divided by 10,000 is the instructions per round (repeatable, unlike times on a shared
/// machine).
fn count(spec: &str) {
    let parts: Vec<&str> = spec.split(',').collect();
    let [algorithm, what, n] = parts[..] else {
        panic!("PICK_COUNT=ALGORITHM,WHAT,N, not {spec:?}");
    };
    let algorithm = Algorithm::parse(algorithm).expect("an algorithm");
    let n: usize = n.parse().expect("a number of servers");
    let load = match what {
        "idle" => Load::Idle,
        "mixed" | "down" => Load::Mixed,
        _ => Load::Busy,
    };
    let (servers, _guards) = pool(n, 10, load);
    let b = if what == "down" {
        servers[n / 2].set_admin_down(true);
        balance::build_tier(algorithm, &servers)
    } else {
        balance::build(algorithm, &servers)
    };
    uncounted(algorithm, &*b, &servers, what);
    counted(algorithm, &*b, &servers, what);
}

#[inline(never)]
fn uncounted(algorithm: Algorithm, b: &dyn Balancer, servers: &[Arc<Server>], what: &str) {
    rounds(algorithm, b, servers, what, 0);
}

#[inline(never)]
fn counted(algorithm: Algorithm, b: &dyn Balancer, servers: &[Arc<Server>], what: &str) {
    rounds(algorithm, b, servers, what, COUNT);
}

#[inline(always)]
fn rounds(algorithm: Algorithm, b: &dyn Balancer, servers: &[Arc<Server>], what: &str, from: u64) {
    for c in from..from + COUNT {
        let key = c.to_le_bytes();
        match what {
            "begin_end" => drop(black_box(servers[c as usize % servers.len()].begin())),
            "request" => drop(black_box(
                b.pick(&context(algorithm, c, &key)).map(|s| s.begin()),
            )),
            _ => drop(black_box(b.pick(black_box(&context(algorithm, c, &key))))),
        }
    }
}

const SIZES: [usize; 3] = [3, 100, 1000];

/// Picks before measuring, so that what a pick touches is as warm as in a running proxy
/// (a ring of 1,000 servers holds 2^18 points), within [`WARM_UP_TIME`].
const WARM_UP: u64 = 1 << 18;
const WARM_UP_TIME: Duration = Duration::from_millis(50);

/// How many servers have requests in flight, and how many.
#[derive(Clone, Copy)]
enum Load {
    /// None.
    Idle,
    /// One request on every third server.
    Mixed,
    /// 1–3 requests on every server (plus one on every third).
    Busy,
}

/// `n` servers with weights cycling 1..=`max_weight`, latencies 1–5 ms, and `load` (the
/// guards are returned, to keep the requests in flight for the run).
fn pool(n: usize, max_weight: u32, load: Load) -> (Vec<Arc<Server>>, Vec<InFlight>) {
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
    let mut guards = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let mixed = usize::from(i % 3 == 0);
        let count = match load {
            Load::Idle => 0,
            Load::Mixed => mixed,
            Load::Busy => mixed + 1 + i % 3,
        };
        guards.extend((0..count).map(|_| s.begin()));
    }
    (servers, guards)
}

/// The context of pick number `c`: a different client and key each time, so hashing is not
/// served from one cache line.
fn context(algorithm: Algorithm, c: u64, key: &[u8; 8]) -> PickContext<'_> {
    PickContext {
        client: Some(IpAddr::V4(Ipv4Addr::from(c as u32))),
        hash_key: algorithm.uses_hash_key().then_some(&key[..]),
        tried: &[],
    }
}

/// Pick up to [`WARM_UP`] times or for [`WARM_UP_TIME`], with `then` after each pick; the
/// number of picks made.
fn warm_up(algorithm: Algorithm, b: &dyn Balancer, then: impl Fn(Option<Arc<Server>>)) -> u64 {
    let began = std::time::Instant::now();
    let mut c = 0;
    while c < WARM_UP && (c % 1024 != 0 || began.elapsed() < WARM_UP_TIME) {
        then(b.pick(&context(algorithm, c, &c.to_le_bytes())));
        c += 1;
    }
    c
}

fn run_picks(bencher: Bencher, algorithm: Algorithm, b: &dyn Balancer) {
    let counter = AtomicU64::new(warm_up(algorithm, b, |s| drop(black_box(s))));
    bencher.bench(|| {
        let c = counter.fetch_add(1, Ordering::Relaxed);
        let key = c.to_le_bytes();
        black_box(b.pick(black_box(&context(algorithm, c, &key))))
    });
}

/// A pick over `n` servers under `load`; with `down`, one server marked down and the
/// balancer built as a pool builds a tier.
fn bench_pick(bencher: Bencher, algorithm: Algorithm, n: usize, load: Load, down: bool) {
    let (servers, _guards) = pool(n, 10, load);
    let b = if down {
        servers[n / 2].set_admin_down(true);
        balance::build_tier(algorithm, &servers)
    } else {
        balance::build(algorithm, &servers)
    };
    run_picks(bencher, algorithm, &*b);
}

/// `Server::begin` and the guard's drop, on each server of a busy pool in turn, with the
/// pool's balancer built (a balancer may watch its servers' load).
fn bench_begin_end(bencher: Bencher, algorithm: Algorithm, n: usize) {
    let (servers, _guards) = pool(n, 10, Load::Busy);
    let _b = balance::build(algorithm, &servers);
    let counter = AtomicU64::new(0);
    bencher.bench(|| {
        let c = counter.fetch_add(1, Ordering::Relaxed) as usize;
        drop(black_box(servers[c % n].begin()));
    });
}

/// A request's balancing: pick, begin, end, over a busy pool.
fn bench_request(bencher: Bencher, algorithm: Algorithm, n: usize) {
    let (servers, _guards) = pool(n, 10, Load::Busy);
    let b = balance::build(algorithm, &servers);
    for c in 0..WARM_UP {
        drop(
            b.pick(&context(algorithm, c, &c.to_le_bytes()))
                .map(|s| s.begin()),
        );
    }
    let counter = AtomicU64::new(WARM_UP);
    bencher.bench(|| {
        let c = counter.fetch_add(1, Ordering::Relaxed);
        let key = c.to_le_bytes();
        let server = b.pick(black_box(&context(algorithm, c, &key)));
        drop(black_box(server.map(|s| s.begin())));
    });
}

/// One benchmark per algorithm, each over `SIZES`, calling `$run(bencher, algorithm, n)`.
macro_rules! every_algorithm {
    ($run:expr) => {
        #[divan::bench(args = SIZES)]
        fn round_robin(b: Bencher, n: usize) {
            $run(b, Algorithm::RoundRobin, n);
        }

        #[divan::bench(args = SIZES)]
        fn least_conn(b: Bencher, n: usize) {
            $run(b, Algorithm::LeastConn, n);
        }

        #[divan::bench(args = SIZES)]
        fn least_time(b: Bencher, n: usize) {
            $run(b, Algorithm::LeastTime, n);
        }

        #[divan::bench(args = SIZES)]
        fn p2c(b: Bencher, n: usize) {
            $run(b, Algorithm::P2c, n);
        }

        #[divan::bench(args = SIZES)]
        fn random(b: Bencher, n: usize) {
            $run(b, Algorithm::Random, n);
        }

        #[divan::bench(args = SIZES)]
        fn ip_hash(b: Bencher, n: usize) {
            $run(b, Algorithm::IpHash, n);
        }

        #[divan::bench(args = SIZES)]
        fn hash(b: Bencher, n: usize) {
            $run(b, Algorithm::Hash, n);
        }

        #[divan::bench(args = SIZES)]
        fn maglev(b: Bencher, n: usize) {
            $run(b, Algorithm::Maglev, n);
        }
    };
}

#[divan::bench_group(sample_size = 64)]
mod pick_idle {
    use super::*;
    every_algorithm!(|b, a, n| bench_pick(b, a, n, Load::Idle, false));
}

#[divan::bench_group(sample_size = 64)]
mod pick {
    use super::*;
    every_algorithm!(|b, a, n| bench_pick(b, a, n, Load::Mixed, false));
}

#[divan::bench_group(sample_size = 64)]
mod pick_all_busy {
    use super::*;
    every_algorithm!(|b, a, n| bench_pick(b, a, n, Load::Busy, false));
}

#[divan::bench_group(sample_size = 64)]
mod pick_one_down {
    use super::*;
    every_algorithm!(|b, a, n| bench_pick(b, a, n, Load::Mixed, true));
}

#[divan::bench_group(sample_size = 64)]
mod begin_end {
    use super::*;
    every_algorithm!(bench_begin_end);
}

#[divan::bench_group(sample_size = 64)]
mod request {
    use super::*;
    every_algorithm!(bench_request);
}

/// Building each balancer over 1,000 servers with weights 1..=1000.
#[divan::bench(
    args = ["round_robin", "least_conn", "least_time", "p2c", "random", "ip_hash", "hash", "maglev"],
    sample_count = 10,
    sample_size = 1
)]
fn build_1000(bencher: Bencher, algorithm: &str) {
    let algorithm = Algorithm::parse(algorithm).expect("known algorithm");
    let (servers, _guards) = pool(1000, 1000, Load::Mixed);
    bencher.bench(|| black_box(balance::build(algorithm, black_box(&servers))));
}
