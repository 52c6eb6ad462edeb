#!/usr/bin/env bash
# Issue 14: the agent's CPU and RSS at RATE lines/s (default 10,000). A writer (python3)
# appends nginx-like lines, BATCH per write(), to one file; `tidemark agent` ships them to
# a real broker (tansu, via the kafka-test-broker bench binary). Measured over FOLLOW
# seconds after WARM seconds of warm-up: the agent's CPU as % of a core (utime+stime
# from /proc/PID/stat), its RSS at the end and its peak (VmHWM); then, after the writer
# stops, that every line was acknowledged (lines_acked on /metrics). Median of RUNS runs.
#
#   benches/agent.sh                      # builds the release binaries first
#   RUNS=5 FOLLOW=60 RATE=20000 benches/agent.sh > results.md
#   TIDEMARK_BIN=... BROKER_BIN=... benches/agent.sh
#   OPTIONS='"linger.ms" = "5"' benches/agent.sh   # librdkafka options ([agent.options] lines)
#
# Needs TIDEMARK_TANSU (the tansu binary), python3, awk.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RATE=${RATE:-10000}
BATCH=${BATCH:-10}
WARM=${WARM:-10}
FOLLOW=${FOLLOW:-30}
: "${TIDEMARK_TANSU:?set TIDEMARK_TANSU to the tansu binary}"
if [ -z "${TIDEMARK_BIN:-}" ] || [ -z "${BROKER_BIN:-}" ]; then
    cargo build --release -p tidemark -p tidemark-bench --bin tidemark --bin kafka-test-broker >&2
fi
BIN=${TIDEMARK_BIN:-target/release/tidemark}
BROKER_BIN=${BROKER_BIN:-target/release/kafka-test-broker}
D=$(mktemp -d -t tidemark-agent-bench.XXXXXX)
APID= WPID=
cleanup() {
    [ -n "$WPID" ] && kill "$WPID" 2>/dev/null || true
    [ -n "$APID" ] && kill -9 "$APID" 2>/dev/null || true
    exec 3<&- 4>&- 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT
# The broker lives while fd 4 (its stdin) is open.
mkfifo "$D/broker.in"
"$BROKER_BIN" --topic logs --partitions 3 < "$D/broker.in" > "$D/broker.out" 2>"$D/broker.err" &
exec 4> "$D/broker.in"
for _ in $(seq 600); do [ -s "$D/broker.out" ] && break; sleep 0.2; done
BOOTSTRAP=$(head -1 "$D/broker.out")
[ -n "$BOOTSTRAP" ] || { cat "$D/broker.err" >&2; exit 1; }
echo "broker at $BOOTSTRAP" >&2

cat > "$D/writer.py" <<'PY'
import os, sys, time
path, rate, secs, batch = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
ua = '"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"'
start = time.time(); n = 0
while True:
    now = time.time()
    if now - start >= secs: break
    due = int((now - start) * rate)
    t = time.strftime('%d/%b/%Y:%H:%M:%S +0000', time.gmtime(now))
    while due - n >= batch:
        buf = []
        for _ in range(batch):
            st = 200 if n % 10 else 404
            buf.append(f'10.0.{n % 256}.{n % 250 + 1} - - [{t}] "GET /api/items?id={n % 500} HTTP/1.1" {st} {1000 + n % 3000} "-" {ua} 0.{n % 900 + 10:03d}\n')
            n += 1
        os.write(fd, ''.join(buf).encode())
    time.sleep(0.001)
PY
metric() {
    python3 - "$1" "$2" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1]).read().decode()
for line in body.splitlines():
    if line.startswith("tidemark_agent_" + sys.argv[2] + "{"):
        print(line.rsplit(" ", 1)[1]); break
PY
}
ticks=$(getconf CLK_TCK)
: > "$D/runs"
for i in $(seq "$RUNS"); do
    echo "run $i/$RUNS: $RATE lines/s, ${WARM}s warm-up + ${FOLLOW}s" >&2
    rm -rf "$D/run"; mkdir -p "$D/run/logs"; : > "$D/run/logs/access.log"
    cat > "$D/run/agent.toml" <<TOML
[agent]
host = "bench"
state_dir = "state"
brokers = "$BOOTSTRAP"
topic = "logs"
metrics_addr = "127.0.0.1:0"
[agent.options]
${OPTIONS:-}
[source]
kind = "file"
include = ["logs/*.log"]
TOML
    "$BIN" agent "$D/run/agent.toml" 2>"$D/run/agent.stderr" &
    APID=$!
    for _ in $(seq 300); do grep -q "metrics: serving" "$D/run/agent.stderr" && break; sleep 0.1; done
    URL=$(sed -n 's/^metrics: serving //p' "$D/run/agent.stderr" | head -1)
    python3 "$D/writer.py" "$D/run/logs/access.log" "$RATE" $((WARM + FOLLOW + 2)) "$BATCH" &
    WPID=$!
    sleep "$WARM"
    c0=$(awk '{ print $14 + $15 }' "/proc/$APID/stat"); t0=$(date +%s.%N)
    sleep "$FOLLOW"
    c1=$(awk '{ print $14 + $15 }' "/proc/$APID/stat"); t1=$(date +%s.%N)
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$APID/status")
    hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$APID/status")
    wait "$WPID"; WPID=
    written=$(wc -l < "$D/run/logs/access.log")
    acked=0
    for _ in $(seq 600); do
        acked=$(metric "$URL" lines_acked_total)
        [ "${acked:-0}" -ge "$written" ] && break
        sleep 0.1
    done
    kill -TERM "$APID"; wait "$APID" || true; APID=
    awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$ticks" -v r="$rss" -v h="$hwm" \
        -v w="$written" -v k="$acked" \
        'BEGIN { printf "%.2f %.1f %.1f %d %d\n", 100 * (b - a) / hz / (e - s), r / 1024, h / 1024, w, k }' >> "$D/runs"
done
col() { sort -n -k"$1" "$D/runs" | awk -v c="$1" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'; }
echo
echo "## Issue 14: the agent at $RATE lines/s ($BATCH lines per write()), one file, real broker (tansu)"
echo
echo "| CPU % of a core over ${FOLLOW}s | RSS MiB (end) | peak RSS MiB |"
echo "|---:|---:|---:|"
echo "| $(col 1) | $(col 2) | $(col 3) |"
echo
echo "- medians of $RUNS runs; every run (cpu% rss-MiB peak-MiB lines-written lines-acked): $(tr '\n' ';' < "$D/runs")"
