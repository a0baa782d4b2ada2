#!/usr/bin/env bash
# Memory side by side: Switchyard vs nginx vs HAProxy in front of the same backend, each with
# its default number of workers/threads and its default buffering. Prints each LB's idle RSS,
# then its peak RSS (VmHWM, summed over the process tree) after a 1 GiB download and a 1 GiB
# upload through it (curl, one at a time), and the bytes that arrived (a short transfer is
# an error). The backend is `switchyard demo` (`/bytes/N` streams N bytes; any body is read
# whole and answered with its length). All three stream both ways: nginx is told not to
# spill to temporary files (proxy_max_temp_file_size 0, proxy_request_buffering off), as
# its defaults would move a large body to disk instead of memory. Bounded: curl's
# --max-time per transfer.
#
#   bench/rss.sh                 # 1 GiB each way
#   BYTES=268435456 bench/rss.sh # 256 MiB each way
set -euo pipefail
cd "$(dirname "$0")/.."
BYTES=${BYTES:-1073741824}
for tool in nginx haproxy curl; do
  command -v "$tool" >/dev/null || { echo "bench/rss.sh: $tool is missing (apt-get install nginx-light haproxy curl)"; exit 1; }
done
cargo build --release --quiet
SY=${SY:-target/release/switchyard}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 ($2) never opened"; exit 1; }

B=$(free_port); BA=$(free_port); P_SY=$(free_port); P_NG=$(free_port); P_HA=$(free_port)
"$SY" --log-level warn demo --listen "127.0.0.1:$B" --admin "127.0.0.1:$BA" >"$work/demo.log" 2>&1 & pids+=($!)

cat > "$work/sy.toml" <<SY
[[listener]]
name = "rss"
listen = "127.0.0.1:$P_SY"
pool = "b"
[log]
access = "off"
[pool.b]
servers = [ { addr = "127.0.0.1:$B" } ]
SY
"$SY" --log-level warn run -c "$work/sy.toml" 2>"$work/sy.log" & PID_SY=$!; pids+=($PID_SY)

mkdir -p "$work/ngx"
cat > "$work/ngx/nginx.conf" <<NGX
worker_processes auto;
daemon off;
error_log $work/ngx/error.log warn;
pid $work/ngx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/ngx; proxy_temp_path $work/ngx; fastcgi_temp_path $work/ngx; uwsgi_temp_path $work/ngx; scgi_temp_path $work/ngx;
  client_max_body_size 0;
  upstream b { server 127.0.0.1:$B; keepalive 32; }
  server { listen 127.0.0.1:$P_NG; location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_max_temp_file_size 0; proxy_request_buffering off; } }
}
NGX
nginx -c "$work/ngx/nginx.conf" & PID_NG=$!; pids+=($PID_NG)

cat > "$work/haproxy.cfg" <<HA
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend f
  bind 127.0.0.1:$P_HA
  default_backend b
backend b
  server b1 127.0.0.1:$B
HA
haproxy -q -f "$work/haproxy.cfg" & PID_HA=$!; pids+=($PID_HA)

wait_port "$B" backend; wait_port "$P_SY" switchyard; wait_port "$P_NG" nginx; wait_port "$P_HA" haproxy

tree() { echo "$1"; pgrep -P "$1" || true; }
kib() { # $1 pid, $2 VmRSS or VmHWM: summed over the process and its children
  for p in $(tree "$1"); do awk -v k="$2:" '$1 == k {print $2}' "/proc/$p/status" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'
}
names=(switchyard nginx haproxy)
declare -A PORT=([switchyard]=$P_SY [nginx]=$P_NG [haproxy]=$P_HA) PID=([switchyard]=$PID_SY [nginx]=$PID_NG [haproxy]=$PID_HA)

echo "peak memory after $((BYTES >> 20)) MiB down and $((BYTES >> 20)) MiB up through each LB ($(date -u +%F), $(git rev-parse --short HEAD))"
printf '%-12s %14s %14s %12s %12s\n' lb "idle RSS MiB" "peak RSS MiB" "down bytes" "up answer"
for name in "${names[@]}"; do
  idle=$(kib "${PID[$name]}" VmRSS)
  down=$(curl -s --max-time 300 -o /dev/null -w '%{size_download}' "http://127.0.0.1:${PORT[$name]}/bytes/$BYTES")
  up=$(head -c "$BYTES" /dev/zero | curl -s --max-time 300 -H 'Expect:' -T - -X POST "http://127.0.0.1:${PORT[$name]}/upload" | awk '{print $2}')
  peak=$(kib "${PID[$name]}" VmHWM)
  printf '%-12s %14.1f %14.1f %12s %12s\n' "$name" "$(awk -v k="$idle" 'BEGIN {print k / 1024}')" "$(awk -v k="$peak" 'BEGIN {print k / 1024}')" "$down" "${up:-none}"
  [ "$down" = "$BYTES" ] && [ "${up:-}" = "$BYTES" ] || echo "  $name: a transfer came out short" >&2
done
