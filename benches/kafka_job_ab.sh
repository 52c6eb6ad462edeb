#!/usr/bin/env bash
# Issue 14: the kafka job's CPU per line, A/B — two tidemark binaries read the same topic.
#
# One generated input (gen-nginx-logs: HOSTS hosts x MINUTES min x LPM lines per host per
# minute), shipped ONCE by HOSTS agents (binary A's `tidemark agent`, one per host, as in
# benches/kafka_e2e.sh) to one tansu (kafka-test-broker, PARTITIONS partitions, STORAGE);
# then RUNS rounds, each running the kafka job (the nginx job of benches/nginx_job.sh with
# `[source] kind = "kafka"`) `run --until-eof -w WORKERS` with binary A, then with binary
# B, over the same records. Every output must equal the file path's (`run --until-eof -w
# 1` over the files, binary A) byte for byte (`cmp`), else the script fails. Reports
# each arm's median CPU (user+system, /usr/bin/time: librdkafka's threads included),
# wall, peak RSS and lines/CPU-s, and every run.
#
#   A=/work/bench13/tm-s15 B=target/release/tidemark benches/kafka_job_ab.sh
#   RUNS=5 LPM=3000 JOB_OPTIONS='"fetch.wait.max.ms" = "10"' A=... B=... benches/kafka_job_ab.sh
#   PERF=1 OUT=DIR ...   # also `perf record -g` (or PERF_ARGS) one more run of each arm:
#                        # DIR/perf-A.data, DIR/perf-B.data
#
# PARTITIONS=1 by default: tansu 0.6.0's memory engine serves a fetch from inside a batch
# from the next batch on (benches/README.md, "Issue 14: end to end"), which the paced
# reading of 4 partitions does. Needs TIDEMARK_TANSU, GEN (gen-nginx-logs), BROKER_BIN
# (kafka-test-broker), /usr/bin/time, curl, awk, cmp.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
HOSTS=${HOSTS:-8}
MINUTES=${MINUTES:-60}
LPM=${LPM:-300}
PARTITIONS=${PARTITIONS:-1}
STORAGE=${STORAGE:-memory}
WORKERS=${WORKERS:-1}
: "${TIDEMARK_TANSU:?set TIDEMARK_TANSU to the tansu binary}"
: "${A:?set A to binary A (tidemark)}"
: "${B:?set B to binary B (tidemark)}"
REL=${CARGO_TARGET_DIR:-$ROOT/target}/release
GEN=${GEN:-$REL/gen-nginx-logs}
BROKER_BIN=${BROKER_BIN:-$REL/kafka-test-broker}
D=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-kafka-ab.XXXXXX")
OUT=${OUT:-$D}
BPID= APIDS=()
stop_agents() {
    local p
    for p in "${APIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${APIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    APIDS=()
}
cleanup() {
    stop_agents
    { exec 4>&-; } 2>/dev/null || true
    [ -n "$BPID" ] && wait "$BPID" 2>/dev/null || true
    rm -rf "$D/logs" "$D/agents"
    [ "$OUT" = "$D" ] && [ -z "${PERF:-}" ] && rm -rf "$D"
    true
}
trap cleanup EXIT
trap 'exit 1' INT TERM
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { cut -d' ' -f"$2" "$1" | median; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
metric() {
    curl -fs "$1" 2>/dev/null | awk -v m="tidemark_agent_$2" '$1 ~ "^" m "([{]|$)" { print $NF; exit }'
}

# shellcheck source=benches/nginx_job.sh
. "$ROOT/benches/nginx_job.sh"

echo "generating $HOSTS hosts x $MINUTES min x $LPM lines/min" >&2
"$GEN" --dir "$D/logs" --hosts "$HOSTS" --minutes "$MINUTES" --lines-per-minute "$LPM" \
    --rotations 0 --gzip-from 0 --disorder-secs 3 --seed 42 >&2
LINES=$(cat "$D"/logs/web-*/access.log | wc -l)
sink() { printf 'kind = "jsonl"\npath = "%s"' "$1"; }
nginx_job "$D/logs/*/access.log" "$(sink "$D/ref/nginx.jsonl")" > "$D/file.toml"
"$A" run "$D/file.toml" --until-eof -w 1 >/dev/null 2>"$D/stderr" || { cat "$D/stderr" >&2; exit 1; }

mkfifo "$D/broker.in"
"$BROKER_BIN" --topic logs --partitions "$PARTITIONS" --storage "$STORAGE" < "$D/broker.in" \
    > "$D/broker.out" 2> "$D/broker.err" &
BPID=$!
exec 4> "$D/broker.in"
for _ in $(seq 600); do [ -s "$D/broker.out" ] && break; sleep 0.2; done
BOOTSTRAP=$(head -1 "$D/broker.out")
[ -n "$BOOTSTRAP" ] || { cat "$D/broker.err" >&2; exit 1; }

echo "shipping $LINES lines with $HOSTS agents to $BOOTSTRAP" >&2
urls=()
for h in $(seq 1 "$HOSTS"); do
    mkdir -p "$D/agents/$h"
    cat > "$D/agents/$h/agent.toml" <<TOML
[agent]
host = "web-$h"
state_dir = "state"
brokers = "$BOOTSTRAP"
topic = "logs"
metrics_addr = "127.0.0.1:0"
heartbeat_interval = "1s"
[source]
kind = "file"
include = ["$D/logs/web-$h/access.log"]
TOML
    "$A" agent "$D/agents/$h/agent.toml" 2>"$D/agents/$h/stderr" &
    APIDS+=($!)
done
for h in $(seq 1 "$HOSTS"); do
    for _ in $(seq 600); do grep -q "metrics: serving" "$D/agents/$h/stderr" && break; sleep 0.1; done
    urls+=("$(sed -n 's/^metrics: serving //p' "$D/agents/$h/stderr" | head -1)")
done
# Every line acknowledged, then two heartbeats more per agent: each partition ends with a
# heartbeat batch (tansu's memory engine answers a partition's end short of its last batch).
for h in $(seq 1 "$HOSTS"); do
    want=$(wc -l < "$D/logs/web-$h/access.log")
    for _ in $(seq 6000); do
        [ "$(metric "${urls[$((h - 1))]}" lines_acked_total)" -ge "$want" ] 2>/dev/null && break
        sleep 0.1
    done
    n0=$(metric "${urls[$((h - 1))]}" heartbeats_sent_total)
    for _ in $(seq 600); do
        [ "$(metric "${urls[$((h - 1))]}" heartbeats_sent_total)" -ge $((n0 + 2)) ] && break
        sleep 0.1
    done
done
stop_agents

nginx_job "$D/logs/*/access.log" "$(sink "$D/out/nginx.jsonl")" |
    awk -v src="[source]
kind = \"kafka\"
brokers = \"$BOOTSTRAP\"
topic = \"logs\"
[source.options]
${JOB_OPTIONS:-}
" '/^\[source\]/ { skip = 1; printf "%s", src; next } /^\[parse\]/ { skip = 0 } !skip' > "$D/kafka.toml"

# One run of binary $1: "cpu_s wall_s peak_rss_mib"; fails unless the output equals the
# file path's.
run_kafka() {
    rm -rf "$D/out"
    /usr/bin/time -f "%U %S %e %M" -o "$D/time" "$1" run "$D/kafka.toml" --until-eof -w "$WORKERS" \
        >/dev/null 2>"$D/stderr" || { cat "$D/stderr" >&2; exit 1; }
    cmp "$D/out/nginx.jsonl" "$D/ref/nginx.jsonl" >&2 || { echo "$1: output differs from the files'" >&2; exit 1; }
    awk '{ printf "%.3f %.3f %.1f\n", $1 + $2, $3, $4 / 1024 }' "$D/time"
}

LOAD0=$(load)
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
: > "$D/A.runs"; : > "$D/B.runs"
for i in $(seq "$RUNS"); do
    echo "round $i/$RUNS" >&2
    run_kafka "$A" >> "$D/A.runs"
    run_kafka "$B" >> "$D/B.runs"
done
LOAD1=$(load)
if [ -n "${PERF:-}" ]; then
    for arm in A B; do
        rm -rf "$D/out"
        perf record ${PERF_ARGS:--g} -o "$OUT/perf-$arm.data" "${!arm}" run "$D/kafka.toml" --until-eof -w "$WORKERS" \
            >/dev/null 2>"$D/stderr" || { cat "$D/stderr" >&2; exit 1; }
    done
fi

echo "## kafka job A/B: $LINES lines, $HOSTS hosts, $PARTITIONS partition(s), -w $WORKERS"
echo
echo "- $START, $(nproc) cores, load average $LOAD0 at the start, $LOAD1 at the end; RUNS=$RUNS (medians, arms alternating); tansu storage $STORAGE; job options: ${JOB_OPTIONS:-none}"
echo "- A = $A; B = $B; every output \`cmp\`-equal to the file path's"
echo
echo "| arm | CPU s | lines/CPU-s | wall s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for arm in A B; do
    awk -v c="$(col "$D/$arm.runs" 1)" -v w="$(col "$D/$arm.runs" 2)" -v r="$(col "$D/$arm.runs" 3)" -v l="$LINES" -v a="$arm" \
        'BEGIN { printf "| %s | %.3f | %.0f | %.2f | %.1f |\n", a, c, l / c, w, r }'
done
echo
echo "- A runs (cpu wall rss): $(tr '\n' ';' < "$D/A.runs")"
echo "- B runs (cpu wall rss): $(tr '\n' ';' < "$D/B.runs")"
