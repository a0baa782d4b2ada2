#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's callgrind: repeatable
# on a busy machine where wall-clock figures are not. Each LB (Switchyard with the access
# log off and on, nginx, HAProxy; all one worker) runs under callgrind in front of the same
# nginx backend; after a warm-up, counting is switched on for exactly REQUESTS keep-alive
# requests (examples/h1load.rs over CONNS connections) and the total is divided by them.
# Kernel time is not counted (it is about the same for every design: see bench/http.sh).
# Beside it: the connections the backend accepted during the count (its stub_status), per
# request: how often the LB opens a server connection under steady load.
#
#   bench/callgrind.sh                      # REQUESTS=5000 CONNS=10
#   SY=/path/to/other/switchyard bench/callgrind.sh   # another build, e.g. before a change
#   KEEP=/some/dir bench/callgrind.sh       # keep the profiles (callgrind_annotate FILE)
#   MODE=h2 bench/callgrind.sh              # HTTP/2 cleartext (h2c, prior knowledge) from
#                                           # h2load -c CONNS -m STREAMS (10 x 10), HTTP/1.1
#                                           # to the backend; each LB one worker
#                                           # then the floor: hyper's HTTP/2 server answering
#                                           # itself (examples/h2floor.rs), and HAProxy and
#                                           # nginx answering themselves, no backend
#   MODE=tls bench/callgrind.sh             # HTTPS/1.1 keep-alive (TLS 1.3, ECDSA P-256
#                                           # certificate from a CA of the run, h1load over
#                                           # rustls); each of the CONNS connections makes
#                                           # its handshake inside the count, for every LB
#   MODE=tls REQUESTS=300 CONNS=300 bench/callgrind.sh   # one request per connection:
#                                           # about the cost of a full handshake
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-5000}
CONNS=${CONNS:-10}
MODE=${MODE:-h1}
STREAMS=${STREAMS:-10}
for tool in valgrind callgrind_control nginx haproxy $([ "$MODE" = h2 ] && echo h2load); do
  command -v "$tool" >/dev/null || { echo "bench/callgrind.sh: $tool is missing (apt-get install valgrind nginx-light haproxy)"; exit 1; }
done
case $MODE in h1|h2|tls) ;; *) echo "bench/callgrind.sh: MODE is h1, h2 or tls"; exit 1;; esac
# h2 with SY given needs no Switchyard build (h2load is the load); the floor's example is
# built in h2 mode.
[ "$MODE" = h2 ] && [ -n "${SY:-}" ] || cargo build --release --quiet --bin switchyard --example h1load
[ "$MODE" != h2 ] || cargo build --release --quiet --example h2floor
SY=${SY:-target/release/switchyard}
LOAD=target/release/examples/h1load
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened"; exit 1; }

B=$(free_port)
S=$(free_port)  # the backend's stub_status: connections it accepted (opened by the LB)
mkdir -p "$work/backend"
cat > "$work/backend/nginx.conf" <<NGX
worker_processes 1;
daemon off;
error_log $work/backend/error.log warn;
pid $work/backend/nginx.pid;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$B; location / { return 200 'hello from the backend\n'; } }
  server { listen 127.0.0.1:$S; location / { stub_status; } } }
NGX
nginx -c "$work/backend/nginx.conf" & pids+=($!)
wait_port "$B"

# MODE=tls: a CA of this run, and a certificate for bench.example.com it signed.
TLS_ARGS=()
if [ "$MODE" = tls ]; then
  ( cd "$work"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
      -keyout ca.key -out ca.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench.example.com \
      -keyout key.pem -out leaf.csr
    printf 'subjectAltName=DNS:bench.example.com\nbasicConstraints=CA:FALSE\n' > leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out cert.pem
    cat cert.pem key.pem > combined.pem ) 2>/dev/null
  TLS_ARGS=("$work/ca.pem" bench.example.com)
fi

# Connections the backend has accepted so far.
accepts() { curl -s "http://127.0.0.1:$S/" | awk 'NR == 3 {print $1}'; }

# REQUESTS requests to port $1, printing "errors=N" as h1load does.
load() {
  if [ "$MODE" = h2 ]; then
    h2load -n "$2" -c "$CONNS" -m "$STREAMS" "http://127.0.0.1:$1/" |
      awk '/^requests:/ {print "requests=" $2 " errors=" ($10 + $12 + $14)}'
  else
    "$LOAD" "127.0.0.1:$1" "$2" "$CONNS" "${TLS_ARGS[@]}"
  fi
}

# $1 name, $2 port, then the command to run under callgrind.
measure() {
  local name=$1 port=$2; shift 2
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.$name" "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  wait_port "$port"
  load "$port" 500 >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  local out a0 a1
  a0=$(accepts)
  out=$(load "$port" "$REQUESTS")
  a1=$(accepts)
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  case $out in *errors=0*) ;; *) echo "$name: $out" >&2;; esac
  [ -z "${KEEP:-}" ] || cp "$work"/cg."$name".[0-9]* "$KEEP/" 2>/dev/null || true
  local ir
  ir=$(cat "$work"/cg."$name".[0-9]* 2>/dev/null | awk '/^totals:/ {s += $2} END {print s + 0}')
  printf '%-14s %12.0f instructions/request  %6.3f server connections opened/request\n' "$name" \
    "$(awk -v i="$ir" -v n="$REQUESTS" 'BEGIN {print i / n}')" "$(awk -v a="$((a1 - a0 - 1))" -v n="$REQUESTS" 'BEGIN {print a / n}')"
}

sy_conf() {
  printf 'workers = 1\n[[listener]]\nname = "bench"\nlisten = "127.0.0.1:%s"\npool = "b"\n' "$1"
  [ "$MODE" != tls ] || printf 'protocol = "https"\n[[listener.tls]]\ncert = "%s"\nkey = "%s"\n' "$work/cert.pem" "$work/key.pem"
  printf '[pool.b]\nkeepalive = 32\nservers = [ { addr = "127.0.0.1:%s" } ]\n' "$B"
}
P=$(free_port); sy_conf "$P" > "$work/sy.toml"
measure switchyard "$P" "$SY" --log-level warn run -c "$work/sy.toml"
P=$(free_port); sy_conf "$P" > "$work/syl.toml"
[ "$MODE" != h1 ] || measure switchyard+log "$P" "$SY" --log-level info run -c "$work/syl.toml"

# nginx in one process: $1 its folder, then the body of http {}.
nginx_conf() {
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<NGX
worker_processes 1;
master_process off;
daemon off;
error_log $1/error.log warn;
pid $1/nginx.pid;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $1; proxy_temp_path $1;
  $2 }
NGX
}

P=$(free_port)
H2=""; [ "$MODE" = h2 ] && H2=" http2"
[ "$MODE" = tls ] && H2=" ssl; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem"
nginx_conf "$work/lb" "upstream b { server 127.0.0.1:$B; keepalive 32; }
  server { listen 127.0.0.1:$P$H2; location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }"
measure nginx "$P" nginx -c "$work/lb/nginx.conf"

P=$(free_port)
cat > "$work/haproxy.cfg" <<HA
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend f
  bind 127.0.0.1:$P$([ "$MODE" = tls ] && echo " ssl crt $work/combined.pem alpn http/1.1")
  default_backend b
backend b
  server b1 127.0.0.1:$B
HA
measure haproxy "$P" haproxy -q -f "$work/haproxy.cfg"

if [ "$MODE" = h2 ]; then
  # The floor: the same requests answered by the server itself, no backend, no proxying.
  P=$(free_port)
  measure hyper-h2-self "$P" target/release/examples/h2floor "127.0.0.1:$P"
  P=$(free_port)
  nginx_conf "$work/self" "server { listen 127.0.0.1:$P http2; location / { return 200 'hello from the backend\\n'; } }"
  measure nginx-self "$P" nginx -c "$work/self/nginx.conf"
  P=$(free_port)
  cat > "$work/self.cfg" <<HA
global
  nbthread 1
defaults
  mode http
  timeout client 60s
frontend f
  bind 127.0.0.1:$P
  http-request return status 200 content-type text/plain string "hello from the backend" hdr server nginx/1.22.1 hdr date "Wed, 02 Dec 2026 10:24:44 GMT"
HA
  measure haproxy-self "$P" haproxy -q -f "$work/self.cfg"
fi
echo "(callgrind, $MODE, $REQUESTS requests over $CONNS keep-alive connections, $(date -u +%F), $(git rev-parse --short HEAD))"
