// Switchyard's dashboard. It asks GET /status once a second, keeps five minutes of answers,
// and shows rates from the differences of the counters between them: requests per second,
// the share of 5xx, latency, and the split of each pool's traffic over its servers. Drain and
// ready go through the admin API (PUT /api/pools/{pool}/servers/{server}), with the bearer
// token when one is entered. Served by the admin listener from the binary itself: no CDN, no
// framework, no build step.
'use strict';

const PERIOD_MS = 1000;
const KEEP_S = 300;
const RATE_WINDOW_S = 5;
const CHECKS_SHOWN = 12;
const COLORS = ['#3466c2', '#1f9d55', '#c98a00', '#8e44ad', '#d33a2c', '#16a2b8', '#7f8c8d',
  '#e67e22', '#2c3e50', '#27ae60', '#c0392b', '#9b59b6'];

/** The answers of /status: {t: seconds (monotonic), doc}. */
const samples = [];
/** Each server's last active checks seen, by "pool/server": [{at, success}]. */
const checkHistory = new Map();
let token = sessionStorage.getItem('switchyard-token') || '';

const $ = (id) => document.getElementById(id);
const last = () => samples[samples.length - 1];
const serverKey = (pool, s) => `${pool}/${s.name}`;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The child of `parent` with data-key `key`, made by `make` the first time. */
function keyed(parent, key, make) {
  for (const c of parent.children) if (c.dataset.key === key) return c;
  const e = make();
  e.dataset.key = key;
  parent.appendChild(e);
  return e;
}

/** Remove the keyed children of `parent` whose key is not in `keys`. */
function prune(parent, keys) {
  for (const c of [...parent.children]) if (c.dataset.key && !keys.has(c.dataset.key)) c.remove();
}

function setText(root, selector, text) {
  const e = root.querySelector(selector);
  if (e && e.textContent !== text) e.textContent = text;
}

// ---- numbers ------------------------------------------------------------------------------

function fmtRate(v) {
  if (v === null || v === undefined || !isFinite(v)) return '–';
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return v >= 10 ? v.toFixed(0) : v.toFixed(1);
}
function fmtPct(v) {
  if (v === null || v === undefined || !isFinite(v)) return '–';
  return v === 0 ? '0%' : v < 0.001 ? '<0.1%' : `${(v * 100).toFixed(1)}%`;
}
function fmtMs(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return '–';
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return ms >= 10 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`;
}
function fmtCount(n) {
  return n === undefined || n === null ? '–' : Number(n).toLocaleString('en-US');
}
function fmtAgo(ms) {
  if (ms < 1500) return 'just now';
  if (ms < 90000) return `${Math.round(ms / 1000)} s ago`;
  return `${Math.round(ms / 60000)} min ago`;
}

// ---- rates --------------------------------------------------------------------------------

/** The newest sample at least `seconds` older than the last one (else the oldest). */
function sampleAgo(seconds) {
  const now = last();
  for (let i = samples.length - 2; i >= 0; i--) {
    if (now.t - samples[i].t >= seconds) return samples[i];
  }
  return samples[0];
}

/** Per second over the last few seconds, of a counter read by `f` (null: no value yet). */
function rate(f) {
  const b = last();
  const a = sampleAgo(RATE_WINDOW_S);
  if (!a || a === b) return null;
  const x = f(a.doc);
  const y = f(b.doc);
  if (x === undefined || y === undefined) return null;
  return Math.max(0, y - x) / (b.t - a.t);
}

function findPool(doc, name) {
  return (doc.pools || []).find((p) => p.name === name);
}
function findServer(doc, pool, name) {
  const p = findPool(doc, pool);
  return p && p.servers.find((s) => s.name === name);
}
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const responses = (s) => sum(Object.values(s.responses || {}));

/** Requests per second, 5xx share and latency of some servers of each sample. */
function traffic(pick) {
  const rps = rate((doc) => { const ss = pick(doc); return ss && sum(ss.map((s) => s.requests)); });
  const r5 = rate((doc) => { const ss = pick(doc); return ss && sum(ss.map((s) => s.responses['5xx'] || 0)); });
  const rall = rate((doc) => { const ss = pick(doc); return ss && sum(ss.map(responses)); });
  const now = pick(last().doc) || [];
  // Latency: the servers' moving averages, weighted by the requests each gets now.
  let w = 0;
  let acc = 0;
  for (const s of now) {
    const r = rate((doc) => { const x = findServerIn(pick(doc), s.name); return x && x.requests; }) || 0;
    if (s.latency_ewma_ms > 0) { acc += s.latency_ewma_ms * (r || 1e-6); w += r || 1e-6; }
  }
  return {
    rps,
    errors: rall ? r5 / rall : rall === 0 ? 0 : null,
    latency: w > 0 ? acc / w : null,
  };
}
function findServerIn(servers, name) {
  return servers && servers.find((s) => s.name === name);
}

/** The answer rows (listener, route, pool) of a document that `keep` accepts. */
function answerRows(doc, keep) {
  return (doc.listeners || []).flatMap((l) => (l.answers || []).map((a) => ({ listener: l.name, ...a })))
    .filter(keep);
}
const codesSum = (rows, test) => sum(rows.map((r) => sum(Object.entries(r.requests || {})
  .filter(([code]) => test(code)).map(([, n]) => n))));

/**
 * What clients got, from the answers the balancer counted (its own errors included): answers
 * per second, the share of 5xx, and the 50th and 99th percentile of their duration over the
 * last few seconds (from the histograms' buckets), for the rows `keep` accepts.
 */
function answers(keep) {
  const rps = rate((doc) => codesSum(answerRows(doc, keep), () => true));
  const r5 = rate((doc) => codesSum(answerRows(doc, keep), (c) => c.startsWith('5')));
  const b = last();
  const a = sampleAgo(RATE_WINDOW_S);
  let q50 = null;
  let q99 = null;
  if (a && a !== b) {
    const buckets = (doc) => {
      const out = new Map();
      for (const r of answerRows(doc, keep)) {
        for (const [le, n] of Object.entries((r.duration || {}).buckets || {})) {
          out.set(le, (out.get(le) || 0) + n);
        }
      }
      return out;
    };
    const now = buckets(b.doc);
    const then = buckets(a.doc);
    const bounds = [...now.keys()].sort((x, y) => (x === '+Inf' ? 1 : y === '+Inf' ? -1 : x - y));
    const cum = bounds.map((le) => [le, Math.max(0, (now.get(le) || 0) - (then.get(le) || 0))]);
    const total = cum.length ? cum[cum.length - 1][1] : 0;
    const quantile = (q) => {
      if (!total) return null;
      let prevBound = 0;
      let prevCount = 0;
      for (const [le, c] of cum) {
        if (c >= q * total) {
          if (le === '+Inf') return prevBound * 1000;
          const upper = Number(le);
          const within = c - prevCount;
          const f = within > 0 ? (q * total - prevCount) / within : 1;
          return (prevBound + (upper - prevBound) * f) * 1000;
        }
        prevBound = le === '+Inf' ? prevBound : Number(le);
        prevCount = c;
      }
      return null;
    };
    q50 = quantile(0.5);
    q99 = quantile(0.99);
  }
  return { rps, errors: rps ? r5 / rps : rps === 0 ? 0 : null, q50, q99 };
}

// ---- the page -----------------------------------------------------------------------------

function render() {
  const doc = last().doc;
  const ready = $('ready');
  ready.textContent = doc.ready ? 'ready' : 'not ready';
  ready.className = `badge ${doc.ready ? 'ok' : 'bad'}`;
  $('about').textContent = `v${doc.version} · pid ${doc.pid}`;

  const all = answers(() => true);
  $('rps').textContent = fmtRate(all.rps);
  $('rps-note').textContent = 'HTTP answers to clients, the balancer\'s own errors included';
  $('errors').textContent = fmtPct(all.errors);
  $('errors-note').textContent = 'of the answers clients got';
  $('latency').textContent = all.q50 === null ? '–' : `${fmtMs(all.q50)} / ${fmtMs(all.q99)}`;
  $('latency-note').textContent = 'p50 / p99, request head to last byte';
  const pools = doc.pools || [];
  $('usable').textContent = `${sum(pools.map((p) => p.servers_usable))} / ${sum(pools.map((p) => p.servers_configured))}`;
  const empty = pools.filter((p) => p.servers_usable === 0).map((p) => p.name);
  $('usable-note').textContent = empty.length ? `no server in ${empty.join(', ')}` : 'in every pool';
  $('usable-note').className = empty.length ? 'bad-text' : 'muted';

  renderListeners(doc);
  const seen = new Set();
  for (const p of pools) {
    seen.add(p.name);
    renderPool(p);
  }
  prune($('pools'), seen);
  renderConfig(doc);
}

function renderListeners(doc) {
  const body = $('listeners').tBodies[0];
  const seen = new Set();
  for (const l of doc.listeners || []) {
    seen.add(l.name);
    const row = keyed(body, l.name, () => {
      const tr = el('tr');
      for (const c of ['name', 'protocol', 'addr', 'now', 'counters']) tr.appendChild(el('td', c));
      return tr;
    });
    const c = l.counters || {};
    let now = '';
    let counters = '';
    if (l.protocol === 'tcp') {
      now = `${fmtCount(c.active)} open`;
      const b = c.bytes || {};
      counters = `${fmtCount(c.accepted)} accepted · ${fmtCount(c.rejected_over_limit)} over limit · ${fmtCount(c.connect_failures)} connect failures · ${fmtCount(b.client_to_server)} B in · ${fmtCount(b.server_to_client)} B out`;
    } else if (l.protocol === 'udp') {
      now = `${fmtCount(c.sessions)} sessions`;
      const d = c.datagrams || {};
      counters = `${fmtCount(d.client_to_server)} datagrams in · ${fmtCount(d.server_to_client)} out · ${fmtCount(c.no_server)} dropped (no server)`;
    } else {
      const r = answers((a) => a.listener === l.name);
      now = `${fmtCount(c.open)} open · ${fmtRate(r.rps)} req/s`;
      const b = c.bytes || {};
      counters = `${fmtCount(c.connections)} connections · ${fmtCount(b.received)} B in · ${fmtCount(b.sent)} B out`;
      if (l.protocol === 'https') {
        counters += ` · TLS ${fmtCount(c.tls_handshakes)} handshakes, ${fmtCount(c.tls_failures)} failed`;
      }
      if (c.proxy_protocol) {
        const pp = c.proxy_protocol;
        counters += ` · PROXY headers: ${fmtCount(pp.accepted)} accepted, ${fmtCount(pp.malformed)} malformed`;
      }
    }
    setText(row, '.name', l.name);
    setText(row, '.protocol', l.protocol);
    setText(row, '.addr', l.addr);
    setText(row, '.now', now);
    setText(row, '.counters', counters);
  }
  prune(body, seen);
}

function renderPool(p) {
  const card = keyed($('pools'), p.name, () => makePool(p.name));
  const t = traffic((d) => { const x = findPool(d, p.name); return x && x.servers; });
  const a = answers((r) => r.pool === p.name);
  const http = answerRows(last().doc, (r) => r.pool === p.name).length > 0;
  setText(card, '.pname', p.name);
  setText(card, '.algorithm', p.algorithm);
  setText(card, '.usable', `${p.servers_usable} / ${p.servers_configured}`);
  // HTTP pools: what clients got; L4 pools: connections sent to the servers.
  setText(card, '.prps', fmtRate(http ? a.rps : t.rps));
  setText(card, '.perrors', fmtPct(http ? a.errors : t.errors));
  setText(card, '.platency', http && a.q50 !== null ? `${fmtMs(a.q50)} p50, ${fmtMs(a.q99)} p99` : fmtMs(t.latency));
  setText(card, '.pretries', fmtCount(p.retries));
  setText(card, '.sticky', p.sticky ? `sticky: ${p.sticky.mode}, ${fmtCount(p.sticky.broken)} moved` : '');
  const body = card.querySelector('tbody');
  const seen = new Set();
  const rates = new Map();
  for (const s of p.servers) {
    rates.set(s.name, rate((d) => { const x = findServer(d, p.name, s.name); return x && x.requests; }));
  }
  const total = sum([...rates.values()].map((r) => r || 0));
  p.servers.forEach((s, i) => {
    const key = serverKey(p.name, s);
    seen.add(key);
    const row = keyed(body, key, () => makeServerRow(p.name, s.name));
    row.dataset.server = key;
    row.querySelector('.swatch').style.background = COLORS[i % COLORS.length];
    setText(row, '.sname', s.name);
    setText(row, '.saddr', s.backup ? `${s.addr} · backup` : s.addr);
    badge(row.querySelector('.health'), 'health', s.state, { healthy: 'ok', unhealthy: 'bad', failed: 'bad', disabled: '' }[s.state]);
    badge(row.querySelector('.admin'), 'admin', s.admin_state, { ready: 'ok', drain: 'warn', maint: 'bad' }[s.admin_state]);
    setText(row, '.weight', s.slow_start ? `${s.weight} (slow start)` : String(s.weight));
    setText(row, '.inflight', fmtCount(s.in_flight));
    setText(row, '.requests', fmtCount(s.requests));
    const r = rates.get(s.name);
    setText(row, '.srps', fmtRate(r));
    setText(row, '.share', total > 0 ? fmtPct((r || 0) / total) : '–');
    setText(row, '.s5xx', fmtCount(s.responses['5xx']));
    setText(row, '.slatency', s.latency_ewma_ms > 0 ? fmtMs(s.latency_ewma_ms) : '–');
    renderChecks(row.querySelector('.lastcheck'), key, s);
    row.querySelector('button.drain').disabled = s.admin_state === 'drain';
    row.querySelector('button.ready').disabled = s.admin_state === 'ready';
  });
  prune(body, seen);
  drawSplit(card.querySelector('canvas'), card.querySelector('.legend'), p);
}

/** A badge of kind `what` (its class, kept) saying `text`, coloured by `cls`. */
function badge(e, what, text, cls) {
  if (e.textContent !== text) e.textContent = text;
  const c = `${what} badge ${cls || ''}`.trim();
  if (e.className !== c) e.className = c;
}

function makePool(name) {
  const card = el('div', 'pool');
  card.dataset.pool = name;
  const head = el('div', 'head');
  head.appendChild(el('h3', 'pname'));
  for (const [label, cls] of [['algorithm', 'algorithm'], ['usable', 'usable'], ['req/s', 'prps'],
    ['5xx', 'perrors'], ['latency', 'platency'], ['retries', 'pretries']]) {
    const s = el('span', 'stat');
    s.appendChild(el('span', 'muted', `${label} `));
    s.appendChild(el('b', cls));
    head.appendChild(s);
  }
  head.appendChild(el('span', 'sticky muted'));
  card.appendChild(head);
  const chart = el('div', 'chart');
  const canvas = el('canvas');
  canvas.title = 'Requests per second to each server, the last five minutes (stacked)';
  chart.appendChild(canvas);
  chart.appendChild(el('div', 'legend'));
  card.appendChild(chart);
  const table = el('table');
  const head2 = el('tr');
  for (const h of ['server', 'health', 'admin', 'weight', 'in flight', 'requests', 'req/s', 'share',
    '5xx', 'latency', 'last checks', '']) head2.appendChild(el('th', '', h));
  table.appendChild(el('thead')).appendChild(head2);
  table.appendChild(el('tbody'));
  card.appendChild(table);
  return card;
}

function makeServerRow(pool, server) {
  const tr = el('tr');
  const name = el('td');
  name.appendChild(el('span', 'swatch'));
  name.appendChild(document.createTextNode(' '));
  name.appendChild(el('b', 'sname'));
  name.appendChild(el('div', 'saddr muted'));
  tr.appendChild(name);
  const h = el('td'); h.appendChild(el('span', 'health badge')); tr.appendChild(h);
  const a = el('td'); a.appendChild(el('span', 'admin badge')); tr.appendChild(a);
  for (const c of ['weight', 'inflight', 'requests', 'srps', 'share', 's5xx', 'slatency']) tr.appendChild(el('td', `num ${c}`));
  tr.appendChild(el('td', 'lastcheck'));
  const act = el('td');
  for (const st of ['drain', 'ready']) {
    const b = el('button', st, st === 'drain' ? 'Drain' : 'Ready');
    b.dataset.action = st;
    b.addEventListener('click', () => setState(pool, server, st, b));
    act.appendChild(b);
    act.appendChild(document.createTextNode(' '));
  }
  tr.appendChild(act);
  return tr;
}

function renderChecks(td, key, s) {
  const c = s.last_check;
  if (!c || c.at_unix_ms === undefined) {
    if (td.textContent !== 'no active checks') td.textContent = 'no active checks';
    return;
  }
  const h = checkHistory.get(key) || [];
  if (!h.length || h[h.length - 1].at !== c.at_unix_ms) {
    h.push({ at: c.at_unix_ms, success: c.success });
    if (h.length > CHECKS_SHOWN) h.shift();
    checkHistory.set(key, h);
  }
  td.textContent = '';
  const dots = el('span', 'checks');
  for (const x of h) {
    const i = el('i', x.success ? '' : 'fail');
    i.title = new Date(x.at).toLocaleTimeString();
    dots.appendChild(i);
  }
  td.appendChild(dots);
  td.appendChild(el('span', c.success ? '' : 'bad-text', `${c.detail} · ${fmtAgo(c.ago_ms)}`));
  if (s.checks) td.title = `${s.checks.pass} passed, ${s.checks.fail} failed since start`;
}

/** A stacked area chart of each server's requests per second, up to the last five minutes. */
function drawSplit(canvas, legend, p) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) {
    canvas.width = w * dpr;
    canvas.height = h * dpr;
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const names = p.servers.map((s) => s.name);
  const now = last().t;
  // One point per pair of consecutive samples: each server's rate between them.
  const points = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = b.t - a.t;
    if (dt <= 0) continue;
    points.push({
      t: b.t,
      v: names.map((n) => {
        const x = findServer(a.doc, p.name, n);
        const y = findServer(b.doc, p.name, n);
        return x && y ? Math.max(0, y.requests - x.requests) / dt : 0;
      }),
    });
  }
  const top = Math.max(1, ...points.map((q) => sum(q.v)));
  // The span shown: the history there is, from one minute up to five.
  const span = Math.min(KEEP_S, Math.max(60, now - samples[0].t));
  const X = (t) => w - ((now - t) / span) * w;
  const Y = (v) => h - 14 - (v / top) * (h - 28);
  for (let k = names.length - 1; k >= 0; k--) {
    if (!points.length) break;
    g.beginPath();
    g.moveTo(X(points[0].t), Y(0));
    for (const q of points) g.lineTo(X(q.t), Y(sum(q.v.slice(0, k + 1))));
    g.lineTo(X(points[points.length - 1].t), Y(0));
    g.closePath();
    g.fillStyle = COLORS[k % COLORS.length];
    g.globalAlpha = 0.75;
    g.fill();
  }
  g.globalAlpha = 1;
  g.fillStyle = '#6b7385';
  g.font = '11px system-ui, sans-serif';
  g.fillText(`${fmtRate(top)} req/s`, 4, 11);
  g.fillText(span >= 120 ? `−${Math.round(span / 60)} min` : `−${Math.round(span)} s`, 4, h - 3);
  g.fillText('now', w - 24, h - 3);
  // The legend: each server's share of the pool's requests over the chart's span.
  const totals = names.map((_, k) => sum(points.map((q) => q.v[k])));
  const all = sum(totals);
  legend.textContent = '';
  names.forEach((n, k) => {
    const row = el('div');
    const sw = el('span', 'swatch');
    sw.style.background = COLORS[k % COLORS.length];
    row.appendChild(sw);
    row.appendChild(el('span', '', `${n} ${all > 0 ? fmtPct(totals[k] / all) : ''}`));
    legend.appendChild(row);
  });
}

function renderConfig(doc) {
  const c = doc.config || {};
  const r = c.reloads || {};
  const at = c.loaded_at_unix_ms ? new Date(c.loaded_at_unix_ms).toLocaleString() : '–';
  $('config').textContent = `${c.path || '(no file)'} · sha256 ${(c.sha256 || '–').slice(0, 12)} · applied ${at} · `
    + `reloads ${fmtCount(r.ok)} ok, ${fmtCount(r.error)} failed${c.last_reload_successful === false ? ' (the last one failed: the file on disk is not what runs)' : ''}`
    + ` · ${fmtCount(c.api_changes)} API changes kept`;
}

// ---- actions ------------------------------------------------------------------------------

function say(text, error) {
  const m = $('message');
  m.textContent = text;
  m.className = error ? 'error' : '';
  m.hidden = false;
}

async function setState(pool, server, state, button) {
  button.disabled = true;
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const url = `/api/pools/${encodeURIComponent(pool)}/servers/${encodeURIComponent(server)}`;
  try {
    const r = await fetch(url, { method: 'PUT', headers, body: JSON.stringify({ state }) });
    const body = await r.json().catch(() => ({}));
    if (r.status === 401) {
      say('The admin API needs the token of [admin] token: enter it above, then click again.', true);
      $('token').focus();
    } else if (!r.ok) {
      say(`${pool}/${server}: ${body.error || r.status}${body.help ? ` — ${body.help}` : ''}`, true);
    } else {
      say(`${pool}/${server}: ${state === 'drain' ? 'draining (no new requests; running ones finish)' : 'ready'}`);
    }
  } catch (e) {
    say(`${pool}/${server}: ${e}`, true);
  }
  poll();
}

// ---- the loop -----------------------------------------------------------------------------

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const r = await fetch('/status', { cache: 'no-store' });
    if (!r.ok) throw new Error(`status ${r.status}`);
    const doc = await r.json();
    samples.push({ t: performance.now() / 1000, doc });
    while (samples.length > 2 && last().t - samples[0].t > KEEP_S + 2) samples.shift();
    render();
    const live = $('live');
    live.textContent = `live · ${new Date().toLocaleTimeString()}`;
    live.className = 'muted';
  } catch (e) {
    const live = $('live');
    live.textContent = `no answer from /status (${e.message || e})`;
    live.className = 'badge bad';
  } finally {
    polling = false;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  const t = $('token');
  t.value = token;
  t.addEventListener('input', () => {
    token = t.value.trim();
    sessionStorage.setItem('switchyard-token', token);
  });
  poll();
  setInterval(poll, PERIOD_MS);
});
