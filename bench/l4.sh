#!/usr/bin/env bash
# L4 TCP side by side: Switchyard (splice and plain copy) and HAProxy (mode tcp, with and
# without splice) in front of the same backend on 127.0.0.1, plus the backend direct.
# Runs a bulk download (BULK bytes, best of REPEAT) and a many-small-connections run
# (CONC loops of connect / 64-byte answer / close for SECS seconds, ROUNDS interleaved rounds,
# medians) through each, and prints ratios against HAProxy (each row against HAProxy without
# splice, then like for like: splice against splice, plain copy against plain copy). For the
# small connections it also prints the LB's CPU time per connection (user + system from
# /proc): on a busy machine the steadier figure; and the TCP segments per connection
# (nstat's TcpOutSegs, both connections of a proxied one counted), which load does not
# move. Bounded: about two minutes after the release build.
#
#   bench/l4.sh            # defaults: BULK=1 GiB, REPEAT=3, SECS=4, CONC=32, ROUNDS=3, WORKERS=2
#   SY=/path/to/other/switchyard bench/l4.sh   # another build
#   BASE=/path/to/older/switchyard bench/l4.sh # adds that build's row (splice on), e.g. before a change
#   NETNS=1 bench/l4.sh    # as root: in a network namespace of its own, so that no other
#                          # program's loopback traffic enters the segment counts
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${NETNS:-}" = 1 ] && [ -z "${L4BENCH_IN_NETNS:-}" ]; then
  exec env L4BENCH_IN_NETNS=1 unshare -n bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi

BULK=${BULK:-1073741824}
REPEAT=${REPEAT:-3}
SECS=${SECS:-4}
ROUNDS=${ROUNDS:-3}
CONC=${CONC:-32}
WORKERS=${WORKERS:-2}

command -v haproxy >/dev/null || { echo "haproxy is missing: apt-get install haproxy" >&2; exit 1; }
LB=${L4BENCH:-target/release/examples/l4bench}
[ -n "${SY:-}" ] && [ -x "$LB" ] || cargo build --release --quiet --bin switchyard --example l4bench
SY=${SY:-target/release/switchyard}

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; cat "$TMP"/*.log >&2 2>/dev/null; exit 1
}

BACKEND=$(free_port)
"$LB" server "127.0.0.1:$BACKEND" >/dev/null & PIDS+=($!)
wait_port "$BACKEND"

start_switchyard() { # name port splice target [binary]
  cat >"$TMP/$1.toml" <<TOML
workers = $WORKERS
[[listener]]
name = "bench"
listen = "127.0.0.1:$2"
protocol = "tcp"
pool = "b"
splice = $3
max_connections = 4000
[pool.b]
servers = [ { addr = "127.0.0.1:$BACKEND" } ]
TOML
  "${5:-$SY}" --log-level error run -c "$TMP/$1.toml" & PIDS+=($!)
  PID[$4]=$!
  wait_port "$2"
}

start_haproxy() { # name port extra-option target
  cat >"$TMP/$1.cfg" <<CFG
global
  maxconn 4000
  nbthread $WORKERS
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  $3
frontend fe
  bind 127.0.0.1:$2
  default_backend be
backend be
  server s1 127.0.0.1:$BACKEND
CFG
  haproxy -db -f "$TMP/$1.cfg" >"$TMP/$1.log" 2>&1 & PIDS+=($!)
  PID[$4]=$!
  wait_port "$2"
}

declare -A PORT PID
PORT[direct]=$BACKEND
PORT[switchyard_splice]=$(free_port); start_switchyard sy_splice "${PORT[switchyard_splice]}" true switchyard_splice
PORT[switchyard_plain]=$(free_port);  start_switchyard sy_plain "${PORT[switchyard_plain]}" false switchyard_plain
PORT[haproxy]=$(free_port);           start_haproxy hap "${PORT[haproxy]}" "" haproxy
PORT[haproxy_splice]=$(free_port);    start_haproxy hap_splice "${PORT[haproxy_splice]}" "option splice-auto" haproxy_splice

ORDER=(direct switchyard_splice switchyard_plain haproxy haproxy_splice)
if [ -n "${BASE:-}" ]; then
  PORT[base_splice]=$(free_port); start_switchyard base "${PORT[base_splice]}" true base_splice "$BASE"
  ORDER+=(base_splice)
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A BULKR CONNR ERRS CPU SEG
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
for t in "${ORDER[@]}"; do
  best=0
  for _ in $(seq "$REPEAT"); do
    r=$("$LB" bulk "127.0.0.1:${PORT[$t]}" "$BULK" | field mib_per_s)
    best=$(python3 -c "print(max($best, $r))")
  done
  BULKR[$t]=$best
done
# Small connections: ROUNDS rounds, the targets in a rotating order, medians.
declare -A RATES CPUS SEGS
# Segments sent over every TCP socket of this network namespace (loopback: sent = received).
tcp_out_segs() { awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "OutSegs") c = i; h = 1 } else print $c }' /proc/net/snmp; }
for round in $(seq "$ROUNDS"); do
  n=${#ORDER[@]}
  for k in $(seq 0 $((n - 1))); do
    t=${ORDER[$(( (k + round) % n ))]}
    pid=${PID[$t]:-}
    [ -z "$pid" ] || before=$(cpu_ticks "$pid")
    segs_before=$(tcp_out_segs)
    out=$("$LB" conns "127.0.0.1:${PORT[$t]}" "$SECS" "$CONC")
    segs_after=$(tcp_out_segs)
    rate=$(echo "$out" | field conns_per_s)
    RATES[$t]="${RATES[$t]:-} $rate"
    ERRS[$t]=$(( ${ERRS[$t]:-0} + $(echo "$out" | field errors) ))
    if [ -n "$pid" ]; then
      after=$(cpu_ticks "$pid")
      conns=$(echo "$out" | sed -n 's/.*conns=\([0-9]*\).*/\1/p')
      CPUS[$t]="${CPUS[$t]:-} $(python3 -c "print(($after - $before) / $HZ * 1e6 / max($conns, 1))")"
    fi
    conns=$(echo "$out" | sed -n 's/.*conns=\([0-9]*\).*/\1/p')
    SEGS[$t]="${SEGS[$t]:-} $(python3 -c "print(($segs_after - $segs_before) / max($conns, 1))")"
  done
done
for t in "${ORDER[@]}"; do
  CONNR[$t]=$(median ${RATES[$t]})
  if [ -n "${CPUS[$t]:-}" ]; then CPU[$t]=$(python3 -c "print(f'{$(median ${CPUS[$t]}):.1f}')"); else CPU[$t]=-; fi
  SEG[$t]=$(python3 -c "print(f'{$(median ${SEGS[$t]}):.2f}')")
done

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo
echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (other programs share these cores: read the CPU per connection, not the rates)"
echo "L4 TCP on 127.0.0.1, $(nproc) cores, workers/nbthread=$WORKERS; bulk = $((BULK / 1048576)) MiB download (best of $REPEAT); small = $CONC loops x ${SECS}s of connect + 64 B + close (median of $ROUNDS interleaved rounds)"
printf "%-18s %12s %14s %12s %10s %8s %12s %12s %12s\n" target bulk_MiB/s small_conn/s cpu_us/conn segs/conn errors bulk/haproxy small/haproxy cpu/haproxy
for t in "${ORDER[@]}"; do
  cr=-; [ "${CPU[$t]}" = - ] || cr=$(ratio "${CPU[$t]}" "${CPU[haproxy]}")
  printf "%-18s %12s %14s %12s %10s %8s %12s %12s %12s\n" "$t" "${BULKR[$t]}" "${CONNR[$t]}" "${CPU[$t]}" "${SEG[$t]}" "${ERRS[$t]}" \
    "$(ratio "${BULKR[$t]}" "${BULKR[haproxy]}")" "$(ratio "${CONNR[$t]}" "${CONNR[haproxy]}")" "$cr"
done
echo
echo "splice vs plain copy (Switchyard): bulk $(ratio "${BULKR[switchyard_splice]}" "${BULKR[switchyard_plain]}")x, small $(ratio "${CONNR[switchyard_splice]}" "${CONNR[switchyard_plain]}")x"
echo "like for like: Switchyard splice / HAProxy splice: bulk $(ratio "${BULKR[switchyard_splice]}" "${BULKR[haproxy_splice]}")x, small $(ratio "${CONNR[switchyard_splice]}" "${CONNR[haproxy_splice]}")x;" \
  "Switchyard plain / HAProxy plain: bulk $(ratio "${BULKR[switchyard_plain]}" "${BULKR[haproxy]}")x, small $(ratio "${CONNR[switchyard_plain]}" "${CONNR[haproxy]}")x"
