#!/usr/bin/env bash
# CPU an idle cluster member spends on N idle jobs (issue 10: 1,000 idle jobs used
# 1.8 cores). Starts `tidemark cluster -w W` in a fresh folder, submits N jobs that
# each follow one quiet file (one nginx line, then nothing), waits SETTLE seconds,
# then reads the member's user+system CPU time from /proc/PID/stat over SECS seconds.
#
#   benches/idle_cluster.sh [N=300] [SECS=20] [W=2]
#   TIDEMARK_BIN=path/to/tidemark benches/idle_cluster.sh 1000
#
# Prints one line: jobs, workers, threads, CPU seconds and cores (CPU s / wall s).
set -euo pipefail
N=${1:-300}
SECS=${2:-20}
W=${3:-2}
SETTLE=${SETTLE:-5}
BIN=${TIDEMARK_BIN:-$(dirname "$0")/../target/release/tidemark}
D=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-idle.XXXXXX")
PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$D"
}
trap cleanup EXIT

mkdir -p "$D/logs"
line='10.0.0.1 - - [20/Nov/2026:10:00:00 +0000] "GET /x HTTP/1.1" 200 1 "-" "t" 0.001'
for i in $(seq 1 "$N"); do
    mkdir -p "$D/logs/j$i"
    echo "$line" > "$D/logs/j$i/access.log"
done
"$BIN" cluster --state-dir "$D/state" --api 127.0.0.1:0 -w "$W" \
    --allow-root "$D/logs" --max-jobs $((N + 1)) > "$D/member.log" 2>&1 &
PID=$!
for _ in $(seq 1 200); do grep -q 'control API on' "$D/member.log" && break; sleep 0.1; done
API=$(sed -n 's/.*control API on http:\/\/\([^;]*\);.*/\1/p' "$D/member.log")
[ -n "$API" ] || { cat "$D/member.log"; exit 1; }
for i in $(seq 1 "$N"); do
    cat > "$D/j$i.toml" <<EOF
name = "j$i"
[source]
kind = "file"
include = ["$D/logs/j$i/*.log"]
host = { value = "h" }
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "$D/state/output/j$i.jsonl"
series = "hosts"
EOF
    "$BIN" job submit "$D/j$i.toml" --api "$API" --state-dir "$D/state" > /dev/null
done
sleep "$SETTLE"
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
a=$(ticks)
sleep "$SECS"
b=$(ticks)
hz=$(getconf CLK_TCK)
threads=$(awk '/^Threads/ {print $2}' "/proc/$PID/status")
awk -v n="$N" -v w="$W" -v t="$threads" -v d=$((b - a)) -v hz="$hz" -v s="$SECS" \
    'BEGIN { printf "jobs=%d workers=%d threads=%d cpu=%.2fs over %ds => %.3f cores\n", n, w, t, d / hz, s, d / hz / s }'
