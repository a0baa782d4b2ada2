#!/usr/bin/env bash
# Runtime choice, measured: tokio's multi-thread scheduler (the default, `workers` threads in
# one process) against one current-thread runtime per worker (SWITCHYARD_RUNTIME=
# current_thread, one process per worker, the processes sharing the port through
# SO_REUSEPORT as nginx's workers do), on one core and on two.
#
#   one core:  mt1 = workers = 1            | ct1 = one current-thread process   (LB pinned to
#              CPU 0, the backend and the load generator to CPU 1)
#   two cores: mt2 = workers = 2            | ct2 = two current-thread processes (nothing
#              pinned: LB, backend and load generator share both CPUs)
#
# Each runs HTTP/1.1 keep-alive (wrk, CONNS connections: the direct HTTP/1 path) and HTTP/2
# cleartext (h2load -c16 -m32: hyper's path), ROUNDS interleaved rounds in a rotating order,
# medians; it prints requests/s and the LB's CPU time per request (user + system of every LB
# process, from /proc). Bounded: about ROUNDS x 8 x DURATION seconds.
#
#   bench/runtime.sh                 # ROUNDS=3 DURATION=6 CONNS=50 H2_REQUESTS=40000
#   SY=/path/to/other/switchyard bench/runtime.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
CONNS=${CONNS:-50}
H2_REQUESTS=${H2_REQUESTS:-40000}
for tool in nginx wrk h2load taskset; do
  command -v "$tool" >/dev/null || { echo "bench/runtime.sh: $tool is missing (apt-get install nginx-light wrk nghttp2-client)"; exit 1; }
done
[ -n "${SY:-}" ] || cargo build --release --quiet --bin switchyard
SY=${SY:-target/release/switchyard}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened"; cat "$work"/*.log; exit 1; }

B=$(free_port)
mkdir -p "$work/backend"
cat > "$work/backend/nginx.conf" <<NGX
worker_processes 1;
daemon off;
error_log $work/backend/error.log warn;
pid $work/backend/nginx.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$B; location / { return 200 'hello from the backend\n'; } } }
NGX

sy_conf() { # port workers
  cat <<TOML
workers = $2
[[listener]]
name = "bench"
listen = "127.0.0.1:$1"
protocol = "http"
pool = "b"
[pool.b]
keepalive = 256
servers = [ { addr = "127.0.0.1:$B" } ]
TOML
}

names=(mt1 ct1 mt2 ct2)
declare -A PORT PIDS CORES
for n in "${names[@]}"; do PORT[$n]=$(free_port); done
sy_conf "${PORT[mt1]}" 1 > "$work/mt1.toml"
sy_conf "${PORT[ct1]}" 1 > "$work/ct1.toml"
sy_conf "${PORT[mt2]}" 2 > "$work/mt2.toml"
sy_conf "${PORT[ct2]}" 1 > "$work/ct2.toml"
CORES=([mt1]=1 [ct1]=1 [mt2]=2 [ct2]=2)

# One backend for all, unpinned; one-core runs pin the LB to CPU 0 and the load generator to
# CPU 1, two-core runs pin nothing.
nginx -c "$work/backend/nginx.conf" & pids+=($!)
taskset -c 0 "$SY" --log-level warn run -c "$work/mt1.toml" 2>"$work/mt1.log" & pids+=($!); PIDS[mt1]=$!
SWITCHYARD_RUNTIME=current_thread taskset -c 0 "$SY" --log-level warn run -c "$work/ct1.toml" 2>"$work/ct1.log" & pids+=($!); PIDS[ct1]=$!
"$SY" --log-level warn run -c "$work/mt2.toml" 2>"$work/mt2.log" & pids+=($!); PIDS[mt2]=$!
SWITCHYARD_RUNTIME=current_thread "$SY" --log-level warn run -c "$work/ct2.toml" 2>"$work/ct2a.log" & pids+=($!); PIDS[ct2]=$!
wait_port "${PORT[ct2]}"
SWITCHYARD_RUNTIME=current_thread "$SY" --log-level warn run --share-ports -c "$work/ct2.toml" 2>"$work/ct2b.log" & pids+=($!); PIDS[ct2]+=" $!"
wait_port "$B"
for n in "${names[@]}"; do wait_port "${PORT[$n]}"; done
sleep 0.5
for n in "${names[@]}"; do
  curl -sf "http://127.0.0.1:${PORT[$n]}/" | grep -q "hello from the backend" || { echo "$n does not proxy"; cat "$work"/*.log; exit 1; }
done

cpu_ticks() { for p in $1; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s + 0}'; }
HZ=$(getconf CLK_TCK)
loadgen() { # name: the load generator's CPUs
  if [ "${CORES[$1]}" = 1 ]; then echo 1; else echo 0,1; fi
}
run_one() { # name test -> "rps cpu_us"
  local n=$1 t=$2 port=${PORT[$1]} before after reqs rps
  before=$(cpu_ticks "${PIDS[$n]}")
  case $t in
    h1)
      taskset -c "$(loadgen "$n")" wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/" > "$work/out" 2>&1
      rps=$(awk '/^Requests\/sec/ {print $2}' "$work/out")
      reqs=$(awk '/requests in/ {print $1}' "$work/out");;
    h2)
      taskset -c "$(loadgen "$n")" h2load -n "$H2_REQUESTS" -c 16 -m 32 -t 1 "http://127.0.0.1:$port/" > "$work/out" 2>&1
      rps=$(awk '/^finished in/ {gsub(",","",$4); print $4}' "$work/out")
      reqs=$(awk '/^requests:/ {print $8}' "$work/out");;
  esac
  after=$(cpu_ticks "${PIDS[$n]}")
  awk -v r="$rps" -v t=$((after - before)) -v n="$reqs" -v hz="$HZ" 'BEGIN {printf "%.0f %.2f\n", r, t / hz * 1e6 / n}'
}

declare -A RPS CPU
for r in $(seq "$ROUNDS"); do
  for t in h1 h2; do
    for k in 0 1 2 3; do
      n=${names[$(( (k + r) % 4 ))]}
      read -r rps cpu < <(run_one "$n" "$t")
      RPS[$n,$t]+="$rps "; CPU[$n,$t]+="$cpu "
      printf 'round %d %-3s %s %9s req/s  LB CPU %6s us/req\n' "$r" "$n" "$t" "$rps" "$cpu"
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "Runtime choice ($(date -u +%F), $(git rev-parse --short HEAD)): median of $ROUNDS rounds; h1 = wrk ${DURATION}s x $CONNS keep-alive connections, h2 = h2load $H2_REQUESTS requests, 16 x 32 streams (h2c)"
printf '%-34s %12s %14s %12s %14s\n' setting "h1 req/s" "h1 CPU us/req" "h2 req/s" "h2 CPU us/req"
label() { case $1 in mt1) echo "1 core: multi-thread, 1 worker";; ct1) echo "1 core: current-thread";; mt2) echo "2 cores: multi-thread, 2 workers";; ct2) echo "2 cores: 2 x current-thread";; esac; }
declare -A M
for n in "${names[@]}"; do
  for t in h1 h2; do M[$n,$t,r]=$(echo "${RPS[$n,$t]}" | median); M[$n,$t,c]=$(echo "${CPU[$n,$t]}" | median); done
  printf '%-34s %12s %14s %12s %14s\n' "$(label "$n")" "${M[$n,h1,r]}" "${M[$n,h1,c]}" "${M[$n,h2,r]}" "${M[$n,h2,c]}"
done
for pair in "mt1 ct1" "mt2 ct2"; do
  set -- $pair
  awk -v a="${M[$2,h1,r]}" -v b="${M[$1,h1,r]}" -v c="${M[$2,h1,c]}" -v d="${M[$1,h1,c]}" \
      -v e="${M[$2,h2,r]}" -v f="${M[$1,h2,r]}" -v g="${M[$2,h2,c]}" -v h="${M[$1,h2,c]}" -v p="$2/$1" 'BEGIN {
    printf "%s: h1 req/s %.2fx, CPU/req %.2fx; h2 req/s %.2fx, CPU/req %.2fx\n", p, a/b, c/d, e/f, g/h }'
done
