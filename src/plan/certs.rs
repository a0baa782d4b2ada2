//! Certificates in a plan: which change (a pair replaced by another, names a listener no
//! longer serves) and which expire within [`super::EXPIRY_WARNING_DAYS`] days, read from the
//! PEM files the plans name (`tls::load_pair`, `tls::not_after`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::EXPIRY_WARNING_DAYS;
use crate::config::Plan;
use crate::tls::{self, CertPair};

/// One certificate of a plan, as read from its file now.
#[derive(Debug, Clone, PartialEq)]
pub struct Cert {
    /// `listener "web"` or `pool "api" (client certificate)`.
    pub used_by: String,
    pub file: PathBuf,
    /// DNS names of the leaf's subjectAltName.
    pub names: Vec<String>,
    /// The leaf's notAfter, seconds since the Unix epoch.
    pub not_after: Option<i64>,
    /// SHA-256 of the leaf, hex.
    pub sha256: String,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
}

fn read(used_by: String, pair: &CertPair) -> Cert {
    match tls::load_pair(pair) {
        Ok(loaded) => {
            let leaf = loaded.key.cert.first().map(|c| c.as_ref()).unwrap_or(&[]);
            let d = ring::digest::digest(&ring::digest::SHA256, leaf);
            Cert {
                used_by,
                file: pair.cert.clone(),
                names: loaded.names,
                not_after: tls::not_after(leaf),
                sha256: d.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
                error: None,
            }
        }
        Err(e) => Cert {
            used_by,
            file: pair.cert.clone(),
            names: Vec::new(),
            not_after: None,
            sha256: String::new(),
            error: Some(e.to_string()),
        },
    }
}

/// Every certificate of a plan: each https listener's pairs, then each pool's client
/// certificate (mTLS to its servers).
pub fn of(plan: &Plan) -> Vec<Cert> {
    let mut out = Vec::new();
    for l in &plan.listeners {
        for pair in &l.tls {
            out.push(read(format!("listener {:?}", l.name), pair));
        }
    }
    for p in &plan.pools {
        if let Some(pair) = p.tls.as_ref().and_then(|t| t.client.as_ref()) {
            out.push(read(
                format!("pool {:?} (client certificate)", p.name),
                pair,
            ));
        }
    }
    out
}

/// `2026-12-20` for seconds since the Unix epoch (UTC).
pub fn date(t: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn expiry(c: &Cert) -> String {
    c.not_after.map_or("no readable expiry".into(), |t| {
        format!("expires {}", date(t))
    })
}

/// The lines of the "certificates" section.
pub fn section(old: &Plan, new: &Plan, now: i64) -> Vec<String> {
    let (before, after) = (of(old), of(new));
    let mut out = Vec::new();
    let users: BTreeSet<&String> = before.iter().chain(&after).map(|c| &c.used_by).collect();
    for user in users {
        let was: Vec<&Cert> = before.iter().filter(|c| &c.used_by == user).collect();
        let is: Vec<&Cert> = after.iter().filter(|c| &c.used_by == user).collect();
        let gone: Vec<&&Cert> = was
            .iter()
            .filter(|c| !is.iter().any(|n| n.sha256 == c.sha256))
            .collect();
        let came: Vec<&&Cert> = is
            .iter()
            .filter(|c| !was.iter().any(|o| o.sha256 == c.sha256))
            .collect();
        let mut paired = vec![false; came.len()];
        for g in &gone {
            // The same names in another certificate: a renewal or a replacement.
            let next = came
                .iter()
                .enumerate()
                .find(|(i, c)| !paired[*i] && c.names.iter().any(|n| g.names.contains(n)));
            match next {
                Some((i, c)) => {
                    paired[i] = true;
                    out.push(format!(
                        "~ {user}: certificate for {} replaced: {} ({}) → {} ({})",
                        g.names.join(", "),
                        g.file.display(),
                        expiry(g),
                        c.file.display(),
                        expiry(c)
                    ));
                }
                None => out.push(format!(
                    "- {user}: certificate {} ({}) no longer used",
                    g.file.display(),
                    g.names.join(", ")
                )),
            }
        }
        for (i, c) in came.iter().enumerate() {
            if !paired[i] {
                out.push(format!(
                    "+ {user}: certificate {} ({}; {})",
                    c.file.display(),
                    c.names.join(", "),
                    expiry(c)
                ));
            }
        }
        // Names served before and not now: clients asking for them get the default pair,
        // which does not name them, and their TLS clients refuse it.
        if user.starts_with("listener") && !is.is_empty() {
            let names = |v: &[&Cert]| -> BTreeSet<String> {
                v.iter().flat_map(|c| c.names.iter().cloned()).collect()
            };
            let lost: Vec<String> = names(&was).difference(&names(&is)).cloned().collect();
            if !lost.is_empty() {
                out.push(format!(
                    "! {user}: no longer has a certificate for {}: TLS clients asking for it get the default certificate and refuse it",
                    lost.join(", ")
                ));
            }
        }
    }
    for c in &after {
        if let Some(e) = &c.error {
            out.push(format!("! {}: {}: {e}", c.used_by, c.file.display()));
            continue;
        }
        let Some(t) = c.not_after else { continue };
        let days = (t - now).div_euclid(86_400);
        if t <= now {
            out.push(format!(
                "! {}: certificate {} ({}) EXPIRED on {} ({} day(s) ago)",
                c.used_by,
                c.file.display(),
                c.names.join(", "),
                date(t),
                -days
            ));
        } else if days < EXPIRY_WARNING_DAYS {
            out.push(format!(
                "! {}: certificate {} ({}) expires in {days} day(s), on {}",
                c.used_by,
                c.file.display(),
                c.names.join(", "),
                date(t)
            ));
        }
    }
    out
}
