#!/usr/bin/env bash
# HTTPS side by side: Switchyard (release build), nginx and HAProxy terminate TLS on
# 127.0.0.1 with the same certificate (ECDSA P-256) in front of the same backend (an nginx
# answering a 13-byte "hello, world\n"), 2 workers each. Measures, per proxy:
#   keep-alive  wrk over HTTPS/1.1, connections reused             (requests/s)
#   handshakes  wrk with "Connection: close": a full TLS handshake per request (requests/s)
#   h2          h2load over TLS (ALPN h2), many streams per connection   (requests/s)
# and prints Switchyard's ratio to each. Bounded: about 2 minutes in all.
#
#   bench/tls.sh            # DURATION=5 (s per wrk run) ROUNDS=2 CONNS=32 by default
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-32}
H2_REQUESTS=${H2_REQUESTS:-60000}

for tool in wrk h2load nginx haproxy openssl curl; do
  command -v "$tool" >/dev/null || { echo "bench/tls.sh needs $tool (scripts/test installs it)"; exit 1; }
done
[ -n "${SY:-}" ] || cargo build --release --quiet
SY=${SY:-target/release/switchyard}   # SY=path/to/another/build measures that build

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BACKEND=$(free_port); P_SY=$(free_port); P_NGINX=$(free_port); P_HAPROXY=$(free_port)

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
nginx -c "$work/backend/nginx.conf" -p "$work/backend" -g 'daemon off;' & pids+=($!)

cat > "$work/switchyard.toml" <<CONF
workers = 2
[[listener]]
name = "https"
listen = "127.0.0.1:$P_SY"
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
RUST_LOG=warn "$SY" run -c "$work/switchyard.toml" >"$work/switchyard.log" 2>&1 & pids+=($!)

cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
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
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' & pids+=($!)

cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 2
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
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & pids+=($!)

for port in $BACKEND $P_SY $P_NGINX $P_HAPROXY; do
  for _ in $(seq 100); do
    curl -sk -o /dev/null "https://127.0.0.1:$port/" 2>/dev/null && break
    curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
    sleep 0.1
  done
done
for port in $P_SY $P_NGINX $P_HAPROXY; do
  body=$(curl -sk --http2 "https://127.0.0.1:$port/" || true)
  [ "$body" = "hello, world" ] || { echo "proxy on $port answers ${body:-nothing}"; cat "$work"/*.log; exit 1; }
done

wrk_rps() { wrk -t2 -c"$CONNS" -d"${DURATION}s" "$@" | awk '/Requests\/sec/ {print int($2)}'; }
h2_rps() {
  h2load -n "$H2_REQUESTS" -c 16 -m 32 -t 2 -T 60 "$1" |
    awk '/^finished in/ {gsub(",","",$4); print int($4)} /^requests:/ && ($10 != 0 || $12 != 0) {print "ERRORS: " $0 > "/dev/stderr"}'
}

# Interleaved and repeated: each test runs ROUNDS times per proxy, the proxies in a rotating
# order, and the best run counts, so a burst of other load on this shared machine does not
# land on one proxy only.
declare -A R
names=(switchyard nginx haproxy)
declare -A port_of=([switchyard]=$P_SY [nginx]=$P_NGINX [haproxy]=$P_HAPROXY)
for t in ka hs h2; do
  for round in $(seq "$ROUNDS"); do
    for k in 0 1 2; do
      n=${names[$(( (k + round) % 3 ))]}; p=${port_of[$n]}
      echo "round $round: $t on $n ..." >&2
      case $t in
        ka) v=$(wrk_rps "https://127.0.0.1:$p/");;
        hs) v=$(wrk_rps -H "Connection: close" "https://127.0.0.1:$p/");;
        h2) v=$(h2_rps "https://127.0.0.1:$p/");;
      esac
      [ "${R[$n,$t]:-0}" -ge "${v:-0}" ] || R[$n,$t]=$v
    done
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "HTTPS through a proxy, 127.0.0.1, ECDSA P-256, 2 workers each; best of $ROUNDS; wrk ${DURATION}s, $CONNS connections"
printf "%-26s %12s %12s %12s %10s %10s\n" "test (requests/s)" switchyard nginx haproxy "sy/nginx" "sy/haproxy"
for t in ka hs h2; do
  case $t in
    ka) label="keep-alive HTTPS/1.1";;
    hs) label="new TLS handshake each";;
    h2) label="HTTP/2 (h2load -c16 -m32)";;
  esac
  printf "%-26s %12s %12s %12s %10s %10s\n" "$label" "${R[switchyard,$t]}" "${R[nginx,$t]}" "${R[haproxy,$t]}" \
    "$(ratio "${R[switchyard,$t]}" "${R[nginx,$t]}")" "$(ratio "${R[switchyard,$t]}" "${R[haproxy,$t]}")"
done
