#!/usr/bin/env bash
# HTTP/1.1 keep-alive proxying, side by side: Switchyard vs nginx vs HAProxy in one run.
#
# The same two nginx backends (a small fixed answer) sit behind each load balancer; each LB
# gets one worker pinned to CPU 0, wrk and the backends share CPU 1. Each LB is measured
# ROUNDS times, interleaved, and the medians are compared. Prints requests/s, p99 latency
# and the ratio to nginx and HAProxy. Bounded: DURATION seconds per run.
#
#   bench/http.sh                 # defaults: 3 rounds of 8 s, 64 connections
#   ROUNDS=5 DURATION=10 CONNS=128 bench/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNS=${CONNS:-64}
for tool in nginx haproxy wrk taskset; do
  command -v "$tool" >/dev/null || { echo "bench/http.sh: $tool is missing (apt-get install nginx-light haproxy wrk)"; exit 1; }
done

cargo build --release --quiet
SY=target/release/switchyard
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
B1=$(free_port); B2=$(free_port); P_SY=$(free_port); P_NG=$(free_port); P_HA=$(free_port)

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
taskset -c 0 nginx -c "$work/lb/nginx.conf" & pids+=($!)

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
taskset -c 0 haproxy -q -f "$work/haproxy.cfg" & pids+=($!)

# Switchyard (CPU 0, one worker).
cat > "$work/switchyard.toml" <<SY
workers = 1
[[listener]]
name = "bench"
listen = "127.0.0.1:$P_SY"
pool = "b"
[pool.b]
keepalive = 32
servers = [ { addr = "127.0.0.1:$B1" }, { addr = "127.0.0.1:$B2" } ]
SY
taskset -c 0 "$SY" --log-level warn run -c "$work/switchyard.toml" & pids+=($!)

wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 ($2) never opened"; cat "$work"/*/error.log 2>/dev/null; exit 1; }
wait_port $B1 backend; wait_port $B2 backend; wait_port $P_SY switchyard; wait_port $P_NG nginx; wait_port $P_HA haproxy
for p in $P_SY $P_NG $P_HA; do
  curl -sf "http://127.0.0.1:$p/" | grep -q "hello from the backend" || { echo "port $p does not proxy"; exit 1; }
done

run_wrk() { # $1 port -> "rps p99_ms"
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$1/" > "$work/wrk.out" 2>&1
  local rps p99 errs
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' "$work/wrk.out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$work/wrk.out" | tr '\n' ' ')
  [ -z "$errs" ] || echo "  note ($1): $errs" >&2
  echo "$rps $p99"
}

declare -A RPS P99
for name in switchyard nginx haproxy; do RPS[$name]=""; P99[$name]=""; done
for r in $(seq "$ROUNDS"); do
  for name in switchyard nginx haproxy; do
    case $name in switchyard) port=$P_SY;; nginx) port=$P_NG;; haproxy) port=$P_HA;; esac
    read -r rps p99 < <(run_wrk "$port")
    RPS[$name]+="$rps "; P99[$name]+="$p99 "
    printf 'round %d %-10s %10.0f req/s  p99 %7.2f ms\n' "$r" "$name" "$rps" "$p99"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "HTTP/1.1 keep-alive, $CONNS connections, 1 LB core, median of $ROUNDS x ${DURATION}s"
printf '%-10s %12s %10s\n' lb "req/s" "p99 ms"
for name in switchyard nginx haproxy; do
  m=$(echo "${RPS[$name]}" | median); p=$(echo "${P99[$name]}" | median)
  printf '%-10s %12.0f %10.2f\n' "$name" "$m" "$p"
  eval "M_$name=$m"
done
awk -v s="$M_switchyard" -v n="$M_nginx" -v h="$M_haproxy" 'BEGIN {
  printf "ratio switchyard/nginx   %.2f\nratio switchyard/haproxy %.2f\n", s/n, s/h }'
