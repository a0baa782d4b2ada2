//! How fast `switchyard simulate` runs: one million requests over 100 servers (concurrency
//! 8 each, exponential 10 ms service, Poisson arrivals at 80 % of capacity) per algorithm,
//! reported by divan as simulated requests per second (`items/s`).
//!
//! Run: `cargo bench --bench simulate`. Each sample is one whole run of a million
//! requests (a few samples only: this is a throughput figure, not a nanosecond one).

use divan::Bencher;
use divan::counter::ItemsCount;
use switchyard::config::Algorithm;
use switchyard::simulate;

fn main() {
    divan::main();
}

const REQUESTS: u64 = 1_000_000;

fn workload() -> simulate::Workload {
    simulate::load_str(
        &format!(
            "seed = 1\n[traffic]\nrequests = {REQUESTS}\nrate = 64000\nservice = {{ mean = \"10ms\" }}\nkeys = 100000\n\
             [[server]]\nname = \"s\"\ncount = 100\nconcurrency = 8\n"
        ),
        "bench.toml",
        None,
    )
    .expect("the benchmark workload is valid")
}

#[divan::bench(
    args = ["round_robin", "least_conn", "least_time", "p2c", "random", "hash", "maglev"],
    sample_count = 3,
    sample_size = 1
)]
fn million_requests_100_servers(bencher: Bencher, algorithm: &str) {
    let w = workload();
    let a = Algorithm::parse(algorithm).expect("known algorithm");
    bencher
        .counter(ItemsCount::new(REQUESTS))
        .bench(|| simulate::run(&w, Some(&[a])));
}
