//! The random parts of a workload: gaps between arrivals, service times, which key (client)
//! sends a request. Seeded, so one workload gives the same run every time.

use std::net::{IpAddr, Ipv4Addr};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::workload::{Class, Dist, Workload, Z99};

/// Draws for one run.
pub struct Draws {
    rng: SmallRng,
    /// Mean gap between arrivals, in ns.
    gap_ns: f64,
    burst: Burst,
    /// Cumulative shares of the request classes, ending at 1.
    classes: Vec<(f64, Dist)>,
    /// Cumulative popularity of the keys (Zipf), or empty for uniform.
    key_cdf: Vec<f64>,
    keys: u64,
}

/// How gaps between arrivals are drawn for a coefficient of variation `c`.
enum Burst {
    /// c = 0: evenly spaced.
    Even,
    /// 0 < c < 1: Erlang-k (the sum of k exponential gaps), c = 1/sqrt(k).
    Erlang(u32),
    /// c = 1: Poisson arrivals.
    Poisson,
    /// c > 1: a balanced two-phase hyperexponential: with probability `p` a short gap of
    /// mean `m1`, else a long one of mean `m2` (in units of the mean gap): bursts and lulls.
    Hyper { p: f64, m1: f64, m2: f64 },
}

impl Draws {
    pub fn new(w: &Workload, seed: u64) -> Draws {
        let c = w.burstiness;
        let burst = if c == 0.0 {
            Burst::Even
        } else if (c - 1.0).abs() < 1e-9 {
            Burst::Poisson
        } else if c < 1.0 {
            Burst::Erlang(((1.0 / (c * c)).round() as u32).max(1))
        } else {
            let c2 = c * c;
            let p = 0.5 * (1.0 + ((c2 - 1.0) / (c2 + 1.0)).sqrt());
            Burst::Hyper {
                p,
                m1: 1.0 / (2.0 * p),
                m2: 1.0 / (2.0 * (1.0 - p)),
            }
        };
        let total: f64 = w.mix.iter().map(|c: &Class| c.share).sum();
        let mut acc = 0.0;
        let classes = w
            .mix
            .iter()
            .map(|c| {
                acc += c.share / total;
                (acc, c.service)
            })
            .collect();
        let key_cdf = if w.key_skew > 0.0 {
            let mut acc = 0.0;
            let mut v: Vec<f64> = (1..=w.keys)
                .map(|k| {
                    acc += (k as f64).powf(-w.key_skew);
                    acc
                })
                .collect();
            for x in &mut v {
                *x /= acc;
            }
            v
        } else {
            Vec::new()
        };
        Draws {
            rng: SmallRng::seed_from_u64(seed),
            gap_ns: 1e9 / w.rate,
            burst,
            classes,
            key_cdf,
            keys: w.keys,
        }
    }

    /// A uniform number in (0, 1].
    fn unit(&mut self) -> f64 {
        1.0 - self.rng.random::<f64>()
    }

    fn exp(&mut self, mean: f64) -> f64 {
        -self.unit().ln() * mean
    }

    /// The gap before the next arrival, in ns.
    pub fn gap(&mut self) -> u64 {
        let g = match self.burst {
            Burst::Even => self.gap_ns,
            Burst::Poisson => self.exp(self.gap_ns),
            Burst::Erlang(k) => {
                let m = self.gap_ns / f64::from(k);
                (0..k).map(|_| self.exp(m)).sum()
            }
            Burst::Hyper { p, m1, m2 } => {
                let m = if self.rng.random::<f64>() < p { m1 } else { m2 };
                self.exp(m * self.gap_ns)
            }
        };
        g.round() as u64
    }

    /// The service time of a new request on a server of speed 1, in ns.
    pub fn service(&mut self) -> u64 {
        let r = self.rng.random::<f64>();
        let dist = self
            .classes
            .iter()
            .find(|(cum, _)| r < *cum)
            .or(self.classes.last())
            .map(|(_, d)| *d)
            .expect("a workload has at least one class");
        let secs = match dist {
            Dist::Fixed(d) => d.as_secs_f64(),
            Dist::Exp(m) => self.exp(m.as_secs_f64()),
            Dist::LogNormal { median, p99 } => {
                let sigma = (p99.as_secs_f64() / median.as_secs_f64()).ln() / Z99;
                median.as_secs_f64() * (sigma * self.normal()).exp()
            }
            Dist::Uniform(a, b) => {
                a.as_secs_f64() + (b.as_secs_f64() - a.as_secs_f64()) * self.rng.random::<f64>()
            }
        };
        (secs * 1e9).round().max(1.0) as u64
    }

    /// A standard normal draw (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.rng.random::<f64>());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// The key of a new request: uniform, or Zipf-popular when `key_skew` > 0.
    pub fn key(&mut self) -> u64 {
        if self.key_cdf.is_empty() {
            self.rng.random_range(0..self.keys)
        } else {
            let r = self.rng.random::<f64>();
            (self.key_cdf.partition_point(|&c| c < r) as u64).min(self.keys - 1)
        }
    }
}

/// The client address of key `k`: in 10.0.0.0/8, a /24 of its own for most keys (so that
/// `ip_hash`, which hashes the /24, sees distinct clients, as on the Internet).
pub fn client_of(k: u64) -> IpAddr {
    let m = mix64(k);
    IpAddr::V4(Ipv4Addr::new(
        10,
        (m >> 8) as u8,
        m as u8,
        (k % 254 + 1) as u8,
    ))
}

/// The hash key bytes of key `k` (a session cookie, user id, URI: `key-<k>`).
pub fn key_bytes(k: u64, buf: &mut [u8; 24]) -> &[u8] {
    use std::io::Write;
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cur, "key-{k}");
    let n = cur.position() as usize;
    &buf[..n]
}

/// A 64-bit mixer (SplitMix64's finaliser).
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::workload::load_str;

    fn draws(extra: &str) -> Draws {
        let w = load_str(
            &format!("[traffic]\nrate = 1000\n{extra}\n[[server]]\nname = \"a\"\n"),
            "w.toml",
            None,
        )
        .unwrap();
        Draws::new(&w, 3)
    }

    fn cv(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn gaps_have_the_asked_mean_and_burstiness() {
        for (b, want) in [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0), (3.0, 3.0)] {
            let mut d = draws(&format!("service = \"1ms\"\nburstiness = {b:?}"));
            let gaps: Vec<f64> = (0..200_000).map(|_| d.gap() as f64).collect();
            let (mean, c) = cv(&gaps);
            assert!(
                (mean / 1e6 - 1.0).abs() < 0.03,
                "burstiness {b}: mean {mean}"
            );
            assert!(
                (c - want).abs() < 0.08 * want.max(1.0),
                "burstiness {b}: cv {c}"
            );
        }
    }

    #[test]
    fn service_times_follow_their_distribution() {
        let mut d = draws("service = { median = \"10ms\", p99 = \"100ms\" }");
        let mut s: Vec<u64> = (0..100_000).map(|_| d.service()).collect();
        s.sort_unstable();
        let (p50, p99) = (s[50_000] as f64 / 1e6, s[99_000] as f64 / 1e6);
        assert!((p50 - 10.0).abs() < 0.5, "median {p50}");
        assert!((p99 - 100.0).abs() < 10.0, "p99 {p99}");
        let mut d = draws(
            "[[traffic.mix]]\nshare = 9\nservice = \"1ms\"\n[[traffic.mix]]\nshare = 1\nservice = \"100ms\"",
        );
        let long = (0..100_000).filter(|_| d.service() > 50_000_000).count();
        assert!((9_000..11_000).contains(&long), "{long} long of 100,000");
    }

    #[test]
    fn skewed_keys_favour_the_first() {
        let mut d = draws("service = \"1ms\"\nkeys = 1000\nkey_skew = 1.0");
        let first = (0..100_000).filter(|_| d.key() == 0).count();
        // Zipf(1) over 1,000 keys: the first has 1/H(1000) = 13.4 %.
        assert!((12_500..14_500).contains(&first), "{first}");
        assert_ne!(client_of(1), client_of(2));
        let mut buf = [0u8; 24];
        assert_eq!(key_bytes(42, &mut buf), b"key-42");
    }
}
