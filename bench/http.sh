#!/usr/bin/env bash
# HTTP/1.1 keep-alive proxying, side by side: Switchyard vs nginx vs HAProxy in one run.
#
# The same two nginx backends (a small fixed answer) sit behind each load balancer; each LB
# gets one worker pinned to CPU 0, wrk and the backends share CPU 1. Switchyard runs twice,
# with its access log on (the default, written to a file) and off (--log-level warn). Each
# LB is measured ROUNDS times, interleaved, and the medians are compared. Prints, per LB:
# requests/s, p99 latency, the LB's CPU time per request (user + system, from /proc, for
# the whole process tree), and its idle RSS before the first run; then the ratios.
# Bounded: DURATION seconds per run.
#
#   bench/http.sh                 # defaults: 5 rounds of 8 s, 50 connections
#   ROUNDS=3 DURATION=5 CONNS=64 bench/http.sh
#   BASE=/path/to/older/switchyard bench/http.sh   # adds that build's rows (base, base+log)
#   RATE=20000 bench/http.sh      # the same offered load to each LB: examples/h1load sends
#                                 # RATE requests/s over CONNS connections on a fixed schedule
#                                 # (open loop) instead of wrk's closed loop, and the latencies
#                                 # are read at that load (p50 and p999 printed beside p99);
#                                 # pick a RATE below every LB's top rate
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
CONNS=${CONNS:-50}
if [ -n "${RATE:-}" ]; then
  [[ $RATE =~ ^[1-9][0-9]*$ ]] || { echo "bench/http.sh: RATE is requests per second, a whole number (RATE=20000)"; exit 1; }
  tools="nginx haproxy taskset"
else
  tools="nginx haproxy wrk taskset"
fi
for tool in $tools; do
  command -v "$tool" >/dev/null || { echo "bench/http.sh: $tool is missing (apt-get install nginx-light haproxy wrk)"; exit 1; }
done

cargo build --release --quiet
[ -z "${RATE:-}" ] || cargo build --release --quiet --example h1load
SY=${SY:-target/release/switchyard}   # SY=path/to/another/build compares another build
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
B1=$(free_port); B2=$(free_port); P_SY=$(free_port); P_SYL=$(free_port); P_NG=$(free_port); P_HA=$(free_port)

nginx_conf() { # $1 = dir, $2 = body of http {}
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<NGX
worker_processes 1;
daemon off;
error_log $1/error.log warn;
pid $1/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;
  keepalive_requests 1000000;
  $2
}
NGX
}

# Backends: one nginx process answering on two ports (CPU 1).
nginx_conf "$work/backend" "server { listen 127.0.0.1:$B1; listen 127.0.0.1:$B2; location / { return 200 'hello from the backend\n'; } }"
taskset -c 1 nginx -c "$work/backend/nginx.conf" & pids+=($!)

# nginx as the load balancer (CPU 0).
nginx_conf "$work/lb" "upstream b { server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 32; }
  server { listen 127.0.0.1:$P_NG; location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }"
taskset -c 0 nginx -c "$work/lb/nginx.conf" & PID_NG=$!; pids+=($PID_NG)

# HAProxy (CPU 0).
cat > "$work/haproxy.cfg" <<HA
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend f
  bind 127.0.0.1:$P_HA
  default_backend b
backend b
  balance roundrobin
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
HA
taskset -c 0 haproxy -q -f "$work/haproxy.cfg" & PID_HA=$!; pids+=($PID_HA)

# Switchyard (CPU 0, one worker): access log off, and on (written to a file, as in production).
sy_conf() { # $1 port
  cat <<SY
workers = 1
[[listener]]
name = "bench"
listen = "127.0.0.1:$1"
pool = "b"
keepalive_requests = 1000000   # as the nginx configs here
[pool.b]
keepalive = 32
servers = [ { addr = "127.0.0.1:$B1" }, { addr = "127.0.0.1:$B2" } ]
SY
}
sy_conf "$P_SY" > "$work/sy.toml"; sy_conf "$P_SYL" > "$work/syl.toml"
taskset -c 0 "$SY" --log-level warn run -c "$work/sy.toml" 2>"$work/sy.log" & PID_SY=$!; pids+=($PID_SY)
taskset -c 0 "$SY" --log-level info run -c "$work/syl.toml" 2>"$work/access.log" & PID_SYL=$!; pids+=($PID_SYL)
if [ -n "${BASE:-}" ]; then
  P_B=$(free_port); P_BL=$(free_port)
  sy_conf "$P_B" > "$work/b.toml"; sy_conf "$P_BL" > "$work/bl.toml"
  taskset -c 0 "$BASE" --log-level warn run -c "$work/b.toml" 2>"$work/b.log" & PID_B=$!; pids+=($PID_B)
  taskset -c 0 "$BASE" --log-level info run -c "$work/bl.toml" 2>"$work/base-access.log" & PID_BL=$!; pids+=($PID_BL)
fi

wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 ($2) never opened"; cat "$work"/*/error.log 2>/dev/null; exit 1; }
wait_port $B1 backend; wait_port $B2 backend; wait_port $P_SY switchyard; wait_port $P_SYL switchyard-log; wait_port $P_NG nginx; wait_port $P_HA haproxy

names=(switchyard switchyard+log nginx haproxy)
declare -A PORT=([switchyard]=$P_SY [switchyard+log]=$P_SYL [nginx]=$P_NG [haproxy]=$P_HA)
declare -A PID=([switchyard]=$PID_SY [switchyard+log]=$PID_SYL [nginx]=$PID_NG [haproxy]=$PID_HA)
if [ -n "${BASE:-}" ]; then
  wait_port "$P_B" base; wait_port "$P_BL" base+log
  names+=(base base+log); PORT[base]=$P_B; PORT[base+log]=$P_BL; PID[base]=$PID_B; PID[base+log]=$PID_BL
fi

# A process and its children (nginx's master and worker).
tree() { echo "$1"; pgrep -P "$1" || true; }
cpu_ticks() { for p in $(tree "$1"); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'; }
rss_kib() { for p in $(tree "$1"); do awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'; }
HZ=$(getconf CLK_TCK)

declare -A IDLE_RSS
for name in "${names[@]}"; do IDLE_RSS[$name]=$(rss_kib "${PID[$name]}"); done
for name in "${names[@]}"; do
  curl -sf "http://127.0.0.1:${PORT[$name]}/" | grep -q "hello from the backend" || { echo "$name does not proxy"; exit 1; }
done

# wrk's latency at a percentile ("99%"), in milliseconds.
wrk_ms() { awk -v q="$1" '$1==q {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' "$work/wrk.out"; }
# A field of h1load's line ("p99"), as it printed it.
load_field() { sed -n -E "s/(^|.* )$1=([0-9.]+).*/\2/p" "$work/load.out"; }
run_wrk() { # $1 name -> "rps p99_ms cpu_us_per_request p50_ms p999_ms" (the last two with RATE)
  local port=${PORT[$1]} pid=${PID[$1]} before after
  before=$(cpu_ticks "$pid")
  if [ -n "${RATE:-}" ]; then
    # Bounded: a stalled LB fails the run after three times its length.
    if ! timeout $((3 * DURATION + 10)) taskset -c 1 target/release/examples/h1load "127.0.0.1:$port" \
      $((RATE * DURATION)) "$CONNS" --rate "$RATE" > "$work/load.out" 2>&1; then
      echo "bench/http.sh: h1load through $1 failed: $(cat "$work/load.out")" >&2
      exit 1
    fi
    after=$(cpu_ticks "$pid")
    [ "$(load_field errors)" = 0 ] || echo "  note ($1): $(cat "$work/load.out")" >&2
    # Below the rate asked: the LB (or the generator) could not keep up, and its latencies
    # are not of the same load as the others'.
    awk -v n="$(load_field requests)" -v s="$(load_field secs)" -v r="$RATE" -v lb="$1" \
      'BEGIN { if (n / s < 0.97 * r) printf "  note (%s): %.0f requests/s, under RATE=%d: not the same load\n", lb, n / s, r > "/dev/stderr" }'
    awk -v n="$(load_field requests)" -v s="$(load_field secs)" -v p="$(load_field p99)" -v t=$((after - before)) -v hz="$HZ" \
      -v p50="$(load_field p50)" -v p999="$(load_field p999)" 'BEGIN {printf "%.0f %s %.2f %s %s\n", n / s, p, t / hz * 1e6 / n, p50, p999}'
    return
  fi
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/" > "$work/wrk.out" 2>&1
  after=$(cpu_ticks "$pid")
  local rps p99 p50 reqs errs
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  p99=$(wrk_ms 99%)
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$work/wrk.out" | tr '\n' ' ')
  [ -z "$errs" ] || echo "  note ($1): $errs" >&2
  p50=$(wrk_ms 50%)
  awk -v r="$rps" -v p="$p99" -v t=$((after - before)) -v n="$reqs" -v hz="$HZ" -v p50="$p50" 'BEGIN {printf "%s %s %.2f %s -\n", r, p, t / hz * 1e6 / n, p50}'
}

declare -A RPS P99 CPU P50 P999
for name in "${names[@]}"; do RPS[$name]=""; P99[$name]=""; CPU[$name]=""; P50[$name]=""; P999[$name]=""; done
for r in $(seq "$ROUNDS"); do
  # A rotating order, so a burst of other load on this shared machine does not always land
  # on the same LB.
  for k in $(seq 0 $(( ${#names[@]} - 1 ))); do
    name=${names[$(( (k + r) % ${#names[@]} ))]}
    read -r rps p99 cpu p50 p999 < <(run_wrk "$name")
    RPS[$name]+="$rps "; P99[$name]+="$p99 "; CPU[$name]+="$cpu "; P50[$name]+="$p50 "; P999[$name]+="$p999 "
    printf 'round %d %-14s %9.0f req/s  p99 %6.2f ms  LB CPU %6.2f us/req\n' "$r" "$name" "$rps" "$p99" "$cpu"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
load="wrk closed loop"; [ -z "${RATE:-}" ] || load="an open load of $RATE requests/s (h1load)"
echo "HTTP/1.1 keep-alive, $CONNS connections, $load, 1 LB core, median of $ROUNDS x ${DURATION}s ($(date -u +%F), $(git rev-parse --short HEAD))"
printf '%-14s %10s %8s %8s %8s %16s %12s\n' lb "req/s" "p50 ms" "p99 ms" "p999 ms" "LB CPU us/req" "idle RSS MiB"
declare -A M_RPS M_CPU M_P99
for name in "${names[@]}"; do
  M_RPS[$name]=$(echo "${RPS[$name]}" | median); M_CPU[$name]=$(echo "${CPU[$name]}" | median)
  M_P99[$name]=$(echo "${P99[$name]}" | median)
  printf '%-14s %10.0f %8s %8.2f %8s %16.2f %12.1f\n' "$name" "${M_RPS[$name]}" "$(echo "${P50[$name]}" | median)" \
    "${M_P99[$name]}" "$(echo "${P999[$name]}" | median)" "${M_CPU[$name]}" "$(awk -v k="${IDLE_RSS[$name]}" 'BEGIN {print k / 1024}')"
done
sys=(switchyard switchyard+log); [ -z "${BASE:-}" ] || sys+=(base base+log)
for sy in "${sys[@]}"; do
  awk -v s="${M_RPS[$sy]}" -v n="${M_RPS[nginx]}" -v h="${M_RPS[haproxy]}" \
      -v cs="${M_CPU[$sy]}" -v cn="${M_CPU[nginx]}" -v ch="${M_CPU[haproxy]}" -v name="$sy" \
      -v ps="${M_P99[$sy]}" -v pn="${M_P99[nginx]}" -v ph="${M_P99[haproxy]}" 'BEGIN {
    printf "%-14s req/s %.2fx nginx, %.2fx haproxy; CPU/req %.2fx nginx, %.2fx haproxy; p99 %.2fx nginx, %.2fx haproxy\n", name, s/n, s/h, cs/cn, cs/ch, ps/pn, ps/ph }'
done
awk -v a="${M_CPU[switchyard+log]}" -v b="${M_CPU[switchyard]}" 'BEGIN {printf "access log costs %.2f us/request\n", a - b}'
[ -z "${BASE:-}" ] || awk -v a="${M_CPU[base+log]}" -v b="${M_CPU[base]}" 'BEGIN {printf "base: access log costs %.2f us/request\n", a - b}'
