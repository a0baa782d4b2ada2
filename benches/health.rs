//! What health, retry and stickiness add to the hot path: the per-request calls a pick and
//! a successful request make (`admits_pick`, `report_success`, `RetryBudget::deposit`), a
//! whole `Pool::pick` with one server passively failed, stick-table lookups, and a rate
//! limit's check (local, and shared with other balancers, which also counts).
//!
//! Run: `cargo bench --bench health`.

use std::net::IpAddr;
use std::time::Duration;

use switchyard::balance::PickContext;
use switchyard::guard::{Rate, RateLimiter};
use switchyard::proxy::http::budget::RetryBudget;
use switchyard::upstream::{Pool, Server, StickTable};
use tokio::time::Instant;

fn main() {
    divan::main();
}

fn pool() -> Pool {
    let src = "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:1\" }, { addr = \"127.0.0.1:2\" }, { addr = \"127.0.0.1:3\" } ]\n";
    let plan = switchyard::config::load_str(src, "bench.toml").unwrap();
    Pool::new(&plan.pools[0], None)
}

#[divan::bench]
fn admits_pick_healthy(b: divan::Bencher) {
    let s = Server::with_weight("127.0.0.1:1".parse().unwrap(), 1);
    b.bench(|| divan::black_box(&s).admits_pick());
}

#[divan::bench]
fn report_success_clean(b: divan::Bencher) {
    let s = Server::with_weight("127.0.0.1:1".parse().unwrap(), 1);
    let now = Instant::now();
    b.bench(|| divan::black_box(&s).report_success(now));
}

#[divan::bench]
fn retry_budget_deposit(b: divan::Bencher) {
    let budget = RetryBudget::new(0.2);
    b.bench(|| divan::black_box(&budget).deposit());
}

#[divan::bench(args = [false, true])]
fn pool_pick(b: divan::Bencher, one_failed: bool) {
    let p = pool();
    if one_failed {
        p.servers()[1].report_failure(Instant::now());
    }
    let ctx = PickContext::default();
    b.bench(|| p.pick(divan::black_box(&ctx)));
}

#[divan::bench]
fn stick_table_hit(b: divan::Bencher) {
    let t: StickTable<IpAddr> = StickTable::new(65_536, Duration::from_secs(3600));
    let now = Instant::now();
    for i in 0..10_000u32 {
        t.insert(IpAddr::from(i.to_be_bytes()), u64::from(i % 3), now);
    }
    let key = IpAddr::from(1234u32.to_be_bytes());
    b.bench(|| t.get(divan::black_box(&key), now));
}

#[divan::bench]
fn stick_table_insert_new_keys(b: divan::Bencher) {
    let t: StickTable<u64> = StickTable::new(65_536, Duration::from_secs(3600));
    let now = Instant::now();
    let mut k = 0u64;
    b.bench_local(|| {
        k += 1;
        t.insert(k, k % 3, now);
    });
}

/// The 10,000 keys tracked, checked in turn (allowed: the rate is far above; each key sits
/// somewhere else in its bucket, so the cost is an average and repeatable under callgrind).
fn rate_check(b: divan::Bencher, shared: bool) {
    let mut l = RateLimiter::new(Rate::parse("1000000/s").unwrap(), 1_000_000, 16_384);
    if shared {
        l = l.shared(switchyard::guard::rate::IDENTITY_SEED);
    }
    let now = std::time::Instant::now();
    for i in 0..10_000u32 {
        l.check(&i.to_be_bytes(), now);
    }
    let mut k = 0u32;
    b.bench_local(|| {
        k = (k + 1) % 10_000;
        l.check(divan::black_box(&k.to_be_bytes()), now)
    });
}

#[divan::bench]
fn rate_check_local(b: divan::Bencher) {
    rate_check(b, false);
}

/// Shared with other balancers: the check also counts the request for the next sync.
#[divan::bench]
fn rate_check_shared(b: divan::Bencher) {
    rate_check(b, true);
}
