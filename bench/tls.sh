#!/usr/bin/env bash
# HTTPS side by side: Switchyard (release build), nginx and HAProxy terminate TLS on
# 127.0.0.1 with the same certificate (ECDSA P-256) in front of the same backend (an nginx
# answering a 13-byte "hello, world\n"). Measures, per proxy:
#   keep-alive  wrk over HTTPS/1.1, connections reused
#   handshakes  wrk with "Connection: close": a full TLS handshake per request
#   h2          h2load over TLS (ALPN h2), many streams per connection
# requests/s and the LB's CPU time per request (user + system from /proc/PID/stat over each
# run, the whole process tree), each test ROUNDS times per proxy in a rotating order, and
# prints the medians and Switchyard's ratios to each. With wrk, the backend and three LBs on
# 2 cores, requests/s is capped by the load generator's share of the machine; CPU per
# request is the margin ("per core" = the peer's CPU per request / Switchyard's).
#
#   bench/tls.sh            # 2 workers each, unpinned; DURATION=5 ROUNDS=3 CONNS=32
#   PIN=1 bench/tls.sh      # one worker each, every LB pinned to CPU 0; wrk (one thread)
#                           # and the backend on CPU 1, as bench/http.sh
#   SY=path bench/tls.sh    # measures another build (e.g. main's, as the before)
#   BASE=path bench/tls.sh  # adds another build as a fourth LB "base", in the same rounds
#                           # (before -> after on this shared machine)
# Bounded: about 3 minutes in all.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
PIN=${PIN:-0}
CONNS=${CONNS:-32}
H2_REQUESTS=${H2_REQUESTS:-60000}

for tool in wrk h2load nginx haproxy openssl curl taskset; do
  command -v "$tool" >/dev/null || { echo "bench/tls.sh needs $tool (scripts/test installs it)"; exit 1; }
done
[ -n "${SY:-}" ] || cargo build --release --quiet
SY=${SY:-target/release/switchyard}   # SY=path/to/another/build measures that build

if [ "$PIN" = 1 ]; then
  WORKERS=1; LB_CPU=(taskset -c 0); GEN_CPU=(taskset -c 1); WRK_THREADS=1; H2_THREADS=1
else
  WORKERS=2; LB_CPU=(); GEN_CPU=(); WRK_THREADS=2; H2_THREADS=2
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BACKEND=$(free_port); P_SY=$(free_port); P_NGINX=$(free_port); P_HAPROXY=$(free_port); P_BASE=$(free_port)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=bench.example.com -addext subjectAltName=DNS:bench.example.com \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" > "$work/combined.pem"

# The backend: nginx, one worker, a fixed answer.
mkdir -p "$work/backend" "$work/nginx"
cat > "$work/backend/nginx.conf" <<CONF
worker_processes 1;
error_log $work/backend/error.log;
pid $work/backend/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACKEND; location / { return 200 "hello, world\n"; } }
}
CONF
"${GEN_CPU[@]}" nginx -c "$work/backend/nginx.conf" -p "$work/backend" -g 'daemon off;' & pids+=($!)

sy_conf() { # $1 port
  cat <<CONF
workers = $WORKERS
[[listener]]
name = "https"
listen = "127.0.0.1:$1"
protocol = "https"
pool = "b"
# As nginx's keepalive_requests below: h2load does not reconnect after a GOAWAY.
keepalive_requests = 1000000
  [[listener.tls]]
  cert = "$work/cert.pem"
  key = "$work/key.pem"
[pool.b]
keepalive = 256
servers = [ { addr = "127.0.0.1:$BACKEND" } ]
CONF
}
sy_conf "$P_SY" > "$work/switchyard.toml"
RUST_LOG=warn "${LB_CPU[@]}" "$SY" run -c "$work/switchyard.toml" >"$work/switchyard.log" 2>&1 &
PID_SY=$!; pids+=($PID_SY)
if [ -n "${BASE:-}" ]; then
  sy_conf "$P_BASE" > "$work/base.toml"
  RUST_LOG=warn "${LB_CPU[@]}" "$BASE" run -c "$work/base.toml" >"$work/base.log" 2>&1 &
  PID_BASE=$!; pids+=($PID_BASE)
fi

cat > "$work/nginx/nginx.conf" <<CONF
worker_processes $WORKERS;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  ssl_session_cache shared:SSL:10m;
  upstream b { server 127.0.0.1:$BACKEND; keepalive 256; }
  server {
    listen 127.0.0.1:$P_NGINX ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://b;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
CONF
"${LB_CPU[@]}" nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' & PID_NG=$!; pids+=($PID_NG)

cat > "$work/haproxy.cfg" <<CONF
global
  nbthread $WORKERS
  maxconn 8000
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend f
  bind 127.0.0.1:$P_HAPROXY ssl crt $work/combined.pem alpn h2,http/1.1
  http-request set-header X-Forwarded-Proto https
  default_backend b
backend b
  server s1 127.0.0.1:$BACKEND
CONF
"${LB_CPU[@]}" haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & PID_HA=$!; pids+=($PID_HA)

lbs="$P_SY $P_NGINX $P_HAPROXY"; [ -z "${BASE:-}" ] || lbs+=" $P_BASE"
for port in $BACKEND $lbs; do
  for _ in $(seq 100); do
    curl -sk -o /dev/null "https://127.0.0.1:$port/" 2>/dev/null && break
    curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
    sleep 0.1
  done
done
for port in $lbs; do
  body=$(curl -sk --http2 "https://127.0.0.1:$port/" || true)
  [ "$body" = "hello, world" ] || { echo "proxy on $port answers ${body:-nothing}"; cat "$work"/*.log; exit 1; }
done

# A process and its children (nginx's master and workers): CPU ticks, user + system.
cpu_ticks() {
  for p in "$1" $(pgrep -P "$1" || true); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done |
    awk '{s += $1} END {print s + 0}'
}
HZ=$(getconf CLK_TCK)
# Each prints "requests_done requests_per_second".
wrk_run() {
  "${GEN_CPU[@]}" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" "$@" > "$work/wrk.out" 2>&1
  awk '/Non-2xx|Socket errors/ {print "  note: " $0 > "/dev/stderr"}' "$work/wrk.out"
  awk '/requests in/ {n = $1} /Requests\/sec/ {r = int($2)} END {print n + 0, r + 0}' "$work/wrk.out"
}
h2_run() {
  "${GEN_CPU[@]}" h2load -n "$H2_REQUESTS" -c 16 -m 32 -t "$H2_THREADS" -T 60 "$1" > "$work/h2.out" 2>&1
  awk '/^requests:/ && ($10 != 0 || $12 != 0) {print "ERRORS: " $0 > "/dev/stderr"}' "$work/h2.out"
  awk '/^requests:/ {n = $8} /^finished in/ {gsub(",", "", $4); r = int($4)} END {print n + 0, r + 0}' "$work/h2.out"
}

# Interleaved and repeated: each test runs ROUNDS times per proxy, the proxies in a changing
# order, so a burst of other load on this shared machine does not land on one proxy only;
# the medians count.
declare -A RPS CPU
names=(switchyard nginx haproxy)
declare -A port_of=([switchyard]=$P_SY [nginx]=$P_NGINX [haproxy]=$P_HAPROXY)
declare -A pid_of=([switchyard]=$PID_SY [nginx]=$PID_NG [haproxy]=$PID_HA)
if [ -n "${BASE:-}" ]; then names+=(base); port_of[base]=$P_BASE; pid_of[base]=$PID_BASE; fi
for t in ka hs h2; do
  for round in $(seq "$ROUNDS"); do
    for k in $(seq 0 $(( ${#names[@]} - 1 ))); do
      # Rotated each round, and reversed every other round, so no LB always runs after the
      # same one.
      i=$(( (k + round) % ${#names[@]} )); [ $((round % 2)) = 1 ] || i=$(( ${#names[@]} - 1 - i ))
      n=${names[$i]}; p=${port_of[$n]}
      before=$(cpu_ticks "${pid_of[$n]}")
      case $t in
        ka) read -r done rps < <(wrk_run "https://127.0.0.1:$p/");;
        hs) read -r done rps < <(wrk_run -H "Connection: close" "https://127.0.0.1:$p/");;
        h2) read -r done rps < <(h2_run "https://127.0.0.1:$p/");;
      esac
      after=$(cpu_ticks "${pid_of[$n]}")
      cpu=$(awk -v t=$((after - before)) -v n="$done" -v hz="$HZ" 'BEGIN {if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print 0}')
      printf 'round %d %-3s %-10s %8d req/s  LB CPU %6.2f us/req\n' "$round" "$t" "$n" "$rps" "$cpu" >&2
      RPS[$n,$t]+="$rps "; CPU[$n,$t]+="$cpu "
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
pinning="2 workers each, unpinned"; [ "$PIN" = 1 ] && pinning="1 worker each on CPU 0, wrk and backend on CPU 1"
echo "HTTPS through a proxy, 127.0.0.1, ECDSA P-256, $pinning; median of $ROUNDS; wrk ${DURATION}s, $CONNS connections ($(date -u +%F), $(git rev-parse --short HEAD 2>/dev/null || echo -))"
printf "%-26s %9s %9s %9s %6s %6s | %8s %8s %8s %6s %6s\n" "test" "sy req/s" nginx haproxy "÷ng" "÷ha" "sy us/rq" nginx haproxy "ng÷sy" "ha÷sy"
for t in ka hs h2; do
  case $t in
    ka) label="keep-alive HTTPS/1.1";;
    hs) label="new TLS handshake each";;
    h2) label="HTTP/2 (h2load -c16 -m32)";;
  esac
  declare -A M=()
  for n in "${names[@]}"; do
    M[$n,r]=$(echo "${RPS[$n,$t]}" | median); M[$n,c]=$(echo "${CPU[$n,$t]}" | median)
  done
  printf "%-26s %9s %9s %9s %6s %6s | %8s %8s %8s %6s %6s\n" "$label" \
    "${M[switchyard,r]}" "${M[nginx,r]}" "${M[haproxy,r]}" \
    "$(ratio "${M[switchyard,r]}" "${M[nginx,r]}")" "$(ratio "${M[switchyard,r]}" "${M[haproxy,r]}")" \
    "${M[switchyard,c]}" "${M[nginx,c]}" "${M[haproxy,c]}" \
    "$(ratio "${M[nginx,c]}" "${M[switchyard,c]}")" "$(ratio "${M[haproxy,c]}" "${M[switchyard,c]}")"
  [ -z "${BASE:-}" ] || printf "%-26s %9s %33s | %8s %28s  (base: %s req/s ÷ng, %s ng÷base)\n" "  base" "${M[base,r]}" "" \
    "${M[base,c]}" "" "$(ratio "${M[base,r]}" "${M[nginx,r]}")" "$(ratio "${M[nginx,c]}" "${M[base,c]}")"
done
echo "(÷ng, ÷ha: Switchyard's requests/s over the peer's; ng÷sy, ha÷sy: the peer's LB CPU per request over Switchyard's, i.e. requests per core relative to the peer)"
