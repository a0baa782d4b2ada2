//! `[traffic]`: how many requests arrive, how fast and how bursty, which keys they carry,
//! and what each costs on a server (one distribution, or a mix of kinds of request).

use super::check::Checker;
use super::file::{S, TrafficFile};
use super::spec::Class;

#[allow(clippy::type_complexity)]
pub(super) fn traffic(
    c: &mut Checker<'_>,
    t: Option<&S<TrafficFile>>,
) -> Option<(u64, f64, f64, u64, f64, Vec<Class>)> {
    let Some(t) = t else {
        c.error(
            0..0,
            "the workload has no [traffic]".into(),
            "add [traffic] with requests = 100000, rate = 1000 and service = \"10ms\"",
        );
        return None;
    };
    let span = t.span();
    let t = t.get_ref();
    let requests = t
        .requests
        .as_ref()
        .map_or(Some(100_000), |v| c.int(v, "requests", 1, 100_000_000));
    let rate = t
        .rate
        .as_ref()
        .map_or(Some(1000.0), |v| c.float(v, "rate", 0.001, 1e8));
    let burstiness = t
        .burstiness
        .as_ref()
        .map_or(Some(1.0), |v| c.float(v, "burstiness", 0.0, 10.0));
    let keys = t
        .keys
        .as_ref()
        .map_or(Some(10_000), |v| c.int(v, "keys", 1, 10_000_000));
    let key_skew = t
        .key_skew
        .as_ref()
        .map_or(Some(0.0), |v| c.float(v, "key_skew", 0.0, 5.0));
    let mix = match (&t.service, t.mix.is_empty()) {
        (Some(s), true) => c.dist(s, "service").map(|d| {
            vec![Class {
                share: 1.0,
                service: d,
            }]
        }),
        (None, false) => {
            let mut v = Vec::new();
            let mut ok = true;
            for m in &t.mix {
                let share = match &m.get_ref().share {
                    Some(s) => c.float(s, "share", 0.0, 1e9),
                    None => {
                        c.error(
                            m.span(),
                            "this [[traffic.mix]] has no share".into(),
                            "add share = 0.9 (shares are relative to each other)",
                        );
                        None
                    }
                };
                let service = match &m.get_ref().service {
                    Some(s) => c.dist(s, "service"),
                    None => {
                        c.error(
                            m.span(),
                            "this [[traffic.mix]] has no service".into(),
                            "add service = \"10ms\"",
                        );
                        None
                    }
                };
                match (share, service) {
                    (Some(share), Some(service)) => v.push(Class { share, service }),
                    _ => ok = false,
                }
            }
            let total: f64 = v.iter().map(|c| c.share).sum();
            if ok && total <= 0.0 {
                c.error(
                    t.mix[0].span(),
                    "the shares of [[traffic.mix]] add up to 0".into(),
                    "give at least one kind of request a share above 0",
                );
                ok = false;
            }
            ok.then_some(v)
        }
        (Some(s), false) => {
            c.error(
                s.span(),
                "[traffic] has both service and [[traffic.mix]]".into(),
                "keep one: service for one kind of request, [[traffic.mix]] for several",
            );
            None
        }
        (None, true) => {
            c.error(
                span,
                "[traffic] says nothing of what a request costs".into(),
                "add service = \"10ms\" (time on a server of speed 1), or [[traffic.mix]] entries",
            );
            None
        }
    };
    Some((requests?, rate?, burstiness?, keys?, key_skew?, mix?))
}
