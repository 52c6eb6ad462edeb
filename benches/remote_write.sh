#!/usr/bin/env bash
# The remote-write benchmark (issue 12): the nginx example job over generated logs,
#  1. cost: `run --until-eof -w 1` with a jsonl sink, then with a remote-write sink to
#     a local receiver (benches/src/bin/rw-receiver.rs: reads each request whole,
#     answers 204), RUNS times each, alternating; lines per CPU-second (user+sys of
#     tidemark alone, /usr/bin/time) — medians;
#  2. memory: one run paced at RATE whose receiver goes down for DOWN seconds after
#     UP seconds (answers 503): tidemark's VmRSS sampled every second, max per phase
#     (before / first half of down / second half of down / after), and the run's
#     summary (reads paused for the backlogged sink).
#
#   benches/remote_write.sh                      # builds the release binaries first
#   RUNS=5 MINUTES=34 DOWN=60 benches/remote_write.sh
#   TIDEMARK_BIN=path/to/tidemark RECEIVER=path/to/rw-receiver GEN=path/to/gen-nginx-logs benches/remote_write.sh
#
# Prints a markdown report on stdout; progress on stderr.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
HOSTS=${HOSTS:-6}
MINUTES=${MINUTES:-34}
LPM=${LPM:-5000}
UP=${UP:-15}
DOWN=${DOWN:-60}
RATE=${RATE:-4MiB/s}
CAPACITY=${CAPACITY:-2000}
if [ -z "${TIDEMARK_BIN:-}" ] || [ -z "${RECEIVER:-}" ] || [ -z "${GEN:-}" ]; then
    (cd "$ROOT" && cargo build --release -p tidemark -p tidemark-bench \
        --bin tidemark --bin rw-receiver --bin gen-nginx-logs >&2)
fi
REL=${CARGO_TARGET_DIR:-$ROOT/target}/release
BIN=${TIDEMARK_BIN:-$REL/tidemark}
RECEIVER=${RECEIVER:-$REL/rw-receiver}
GEN=${GEN:-$REL/gen-nginx-logs}
D=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-rw-bench.XXXXXX")
RPID=
TPID=
cleanup() {
    for p in $TPID $RPID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$D"
}
trap cleanup EXIT

echo "generating $HOSTS hosts x $MINUTES min x $LPM lines/host-min in $D/data" >&2
LINES=$("$GEN" --dir "$D/data" --hosts "$HOSTS" --minutes "$MINUTES" --lines-per-minute "$LPM" \
    --rotations 3 --gzip-from 2 --disorder-secs 3 --seed 42 | sed -n 's/.*lines: \([0-9]*\).*/\1/p')

# shellcheck source=benches/nginx_job.sh
. "$ROOT/benches/nginx_job.sh"

# Starts the receiver with args "$@"; sets RPID and PORT.
start_receiver() {
    rm -f "$D/port" "$D/rstats"
    "$RECEIVER" --port-file "$D/port" --stats "$D/rstats" "$@" &
    RPID=$!
    for _ in $(seq 100); do [ -s "$D/port" ] && break; sleep 0.05; done
    PORT=$(cat "$D/port")
}

stop_receiver() {
    kill "$RPID" 2>/dev/null || true
    wait "$RPID" 2>/dev/null || true
    RPID=
}

# One measured run of job file $1: prints "cpu_s wall_s maxrss_kib".
measure() {
    rm -rf "$D/out"
    /usr/bin/time -f "%U %S %e %M" -o "$D/time" "$BIN" run "$1" --until-eof -w 1 \
        >/dev/null 2>"$D/stderr" || { cat "$D/stderr" >&2; exit 1; }
    awk '{ printf "%.3f %.3f %d\n", $1 + $2, $3, $4 }' "$D/time"
}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

nginx_job "$D/data/*/access.log" "kind = \"jsonl\"
path = \"$D/out/nginx.jsonl\"" "" > "$D/jsonl.toml"
: > "$D/jsonl.runs"
: > "$D/rw.runs"
for i in $(seq "$RUNS"); do
    echo "run $i/$RUNS: jsonl" >&2
    measure "$D/jsonl.toml" >> "$D/jsonl.runs"
    start_receiver
    nginx_job "$D/data/*/access.log" "kind = \"prometheus_remote_write\"
url = \"http://127.0.0.1:$PORT/api/v1/write\"" "" > "$D/rw.toml"
    echo "run $i/$RUNS: remote-write to 127.0.0.1:$PORT" >&2
    measure "$D/rw.toml" >> "$D/rw.runs"
    stop_receiver
    cp "$D/rstats" "$D/rstats.last"
done

echo "## remote-write sink vs jsonl sink (\`run --until-eof -w 1\`)"
echo
echo "- $HOSTS hosts x $MINUTES min x $LPM lines/host-min = $LINES lines; medians of $RUNS runs each, alternating"
echo "- receiver of the last remote-write run: $(tr '\n' ' ' < "$D/rstats.last")"
echo
echo "| sink | CPU s | wall s | lines/CPU-s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for s in jsonl rw; do
    cpu=$(cut -d' ' -f1 "$D/$s.runs" | median)
    wall=$(cut -d' ' -f2 "$D/$s.runs" | median)
    rss=$(cut -d' ' -f3 "$D/$s.runs" | median)
    awk -v s="$s" -v c="$cpu" -v w="$wall" -v r="$rss" -v l="$LINES" \
        'BEGIN { printf "| %s | %.2f | %.2f | %d | %.1f |\n", (s == "rw" ? "prometheus_remote_write" : "jsonl"), c, w, l / c, r / 1024 }'
    eval "${s}_cpu=$cpu"
done
awk -v a="$jsonl_cpu" -v b="$rw_cpu" 'BEGIN { printf "\n- remote-write lines/CPU-s = %.1f%% of jsonl'"'"'s\n", 100 * a / b }'
echo "- every run's figures (cpu wall rss-KiB): jsonl: $(tr '\n' ';' < "$D/jsonl.runs") remote-write: $(tr '\n' ';' < "$D/rw.runs")"

# 2. Memory while the receiver is down.
start_receiver --down-after "$UP" --down-for "$DOWN"
nginx_job "$D/data/*/access.log" "kind = \"prometheus_remote_write\"
url = \"http://127.0.0.1:$PORT/api/v1/write\"
queue_capacity = $CAPACITY
max_backoff = \"1s\"" "rate_limit = \"$RATE\"" > "$D/down.toml"
rm -rf "$D/out"
echo "memory run: paced at $RATE, receiver down for ${DOWN}s after ${UP}s" >&2
"$BIN" run "$D/down.toml" --until-eof -w 1 >/dev/null 2>"$D/down.stderr" &
TPID=$!
: > "$D/rss"
start=$(date +%s)
was=up
phase=before
down_at=
while kill -0 "$TPID" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$TPID/status" 2>/dev/null || true)
    state=$(awk '/^state/ { print $2 }' "$D/rstats" 2>/dev/null || echo up)
    now=$(date +%s)
    if [ "$state" = down ] && [ -z "$down_at" ]; then down_at=$now; fi
    if [ "$state" = down ]; then
        if [ $((now - down_at)) -lt $((DOWN / 2)) ]; then phase=down1; else phase=down2; fi
    elif [ -n "$down_at" ]; then
        phase=after
    fi
    [ -n "$rss" ] && echo "$((now - start)) $phase $rss" >> "$D/rss"
    sleep 1
done
wait "$TPID" || { cat "$D/down.stderr" >&2; exit 1; }
TPID=
stop_receiver
echo
echo "## memory while the receiver is down (paced at $RATE, queue_capacity = $CAPACITY)"
echo
echo "| phase | seconds sampled | max VmRSS MiB |"
echo "|---|---:|---:|"
for p in before down1 down2 after; do
    awk -v p="$p" '$2 == p { n++; if ($3 > m) m = $3 } END { if (n) printf "| %s | %d | %.1f |\n", p, n, m / 1024 }' "$D/rss"
done
echo
echo "- receiver: $(tr '\n' ' ' < "$D/rstats")"
echo "- tidemark's summary: $(grep -E '^(reads paused|lines read|windows emitted)' "$D/down.stderr" | tr '\n' ';')"
echo "- RSS every second (s phase KiB): $(awk '{ printf "%s:%s ", $1, $3 }' "$D/rss")"
