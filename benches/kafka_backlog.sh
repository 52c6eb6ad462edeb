#!/usr/bin/env bash
# Issue 14 item 2: a Kafka backlog of many agents' groups consumed in flat memory.
# gen-nginx-logs writes HOSTS hosts x MINUTES minutes x LPM lines; kafka-backlog
# produces them to a real broker (tansu, via kafka-test-broker) as `tidemark agent`
# records, one group per host (ORDER=interleaved: round-robin, as live agents would
# have; ORDER=hosts: one host's whole file after another). Then the example nginx job
# with `[source] kind = "kafka"` runs `run --until-eof -w WORKERS` with each binary in
# BINS (A/B alternating, RUNS times): CPU-s (user+sys), wall s and peak RSS (GNU time),
# medians; every run's output is checked byte for byte against the same job over the
# files.
#
#   TIDEMARK_TANSU=... BINS="/work/bench13/tm-s14b target/release/tidemark" benches/kafka_backlog.sh
#   HOSTS=2000 LPM=6 PARTITIONS=32 ORDER=hosts WORKERS=2 benches/kafka_backlog.sh
#
# MOCK=1: librdkafka's in-memory mock cluster instead of tansu. tansu 0.6 (SQLite) takes
# some 4,000 records/s in but serves fetches of a topic of 36,000 records too slowly to
# finish (fetch requests time out after 60 s), so the figures in benches/README.md use
# MOCK=1; the job, its client and its reading are the same. The mock cluster keeps only
# the last few MB of a partition (older records vanish, seen as lost lines): use enough
# PARTITIONS (64 for 360,000 records).
#
# LIVE=1: the job runs live (`run -w WORKERS`, no --until-eof) over the backlog already in
# the topic — a cluster member restarting hours behind — with `idle_timeout = "5s"`, and
# is stopped (SIGINT) once its output is as long as the files' (caught up, every stream
# idle); wall s is the time until then. A BINS entry `unpaced:BIN` runs BIN with
# TIDEMARK_BENCH_UNPACED_LIVE set (the catch-up not paced: every window held until every
# partition was read to its end once), for an A/B with one binary:
#
#   LIVE=1 MOCK=1 BINS="unpaced:target/release/tidemark target/release/tidemark" benches/kafka_backlog.sh
#
# PROFILE=debug: the binaries of target/debug (built with the dev profile).
# Needs TIDEMARK_TANSU (unless MOCK=1), GNU time (/usr/bin/time), md5sum.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
HOSTS=${HOSTS:-500}
MINUTES=${MINUTES:-60}
LPM=${LPM:-12}
PARTITIONS=${PARTITIONS:-16}
ORDER=${ORDER:-interleaved}
WORKERS=${WORKERS:-1}
[ -n "${MOCK:-}" ] || : "${TIDEMARK_TANSU:?set TIDEMARK_TANSU to the tansu binary}"
PROFILE=${PROFILE:-release}
REL=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE
if [ -z "${NO_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --profile "$([ "$PROFILE" = debug ] && echo dev || echo "$PROFILE")" \
        -p tidemark -p tidemark-bench --bin tidemark \
        --bin gen-nginx-logs --bin kafka-backlog --bin kafka-test-broker >&2)
fi
BINS=${BINS:-$REL/tidemark}
GEN=${GEN:-$REL/gen-nginx-logs}
D=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-kafka-backlog.XXXXXX")
cleanup() {
    exec 4>&- 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# The broker lives while fd 4 (its stdin) is open.
mkfifo "$D/broker.in"
"$REL/kafka-test-broker" --topic logs --partitions "$PARTITIONS" ${MOCK:+--mock} < "$D/broker.in" > "$D/broker.out" 2>"$D/broker.err" &
exec 4> "$D/broker.in"
for _ in $(seq 600); do [ -s "$D/broker.out" ] && break; sleep 0.2; done
BOOTSTRAP=$(head -1 "$D/broker.out")
[ -n "$BOOTSTRAP" ] || { cat "$D/broker.err" >&2; exit 1; }

echo "generating $HOSTS hosts x $MINUTES min x $LPM lines/min" >&2
"$GEN" --dir "$D/logs" --hosts "$HOSTS" --minutes "$MINUTES" --lines-per-minute "$LPM" \
    --rotations 0 --gzip-from 0 --disorder-secs 3 --seed 42 | tail -1 >&2
t0=$(date +%s.%N)
RECORDS=$("$REL/kafka-backlog" --dir "$D/logs" --brokers "$BOOTSTRAP" --partitions "$PARTITIONS" --order "$ORDER")
t1=$(date +%s.%N)
PRODUCE_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')
echo "produced $RECORDS records in ${PRODUCE_S}s" >&2

example="$ROOT/jobs/examples/nginx.toml"
job() { # SOURCE_LINES OUT
    printf 'name = "nginx"\n[source]\n%s\n' "$1"
    sed -n '/^\[parse\]/,/^\[\[sink\]\]/p' "$example" | sed '$d'
    printf '[[sink]]\nkind = "jsonl"\npath = "%s"\nseries = "all"\n' "$2"
}
job "kind = \"file\"
include = [\"$D/logs/*/access.log\"]
host = { path_regex = '/(?P<host>web-[0-9]+)/' }" "$D/files.jsonl" > "$D/files.toml"
job "kind = \"kafka\"
brokers = \"$BOOTSTRAP\"
topic = \"logs\"" "$D/out/kafka.jsonl" > "$D/kafka.toml"
if [ -n "${LIVE:-}" ]; then
    # Once caught up, a stream at its partition's end goes idle after 5 s: every window closes.
    sed -i 's/^idle_timeout = .*/idle_timeout = "5s"/' "$D/kafka.toml"
    grep -q '^idle_timeout = "5s"' "$D/kafka.toml" || { echo "no idle_timeout to set" >&2; exit 1; }
fi

first=${BINS%% *}
"${first#unpaced:}" run "$D/files.toml" --until-eof -w 1 >/dev/null 2>"$D/files.stderr" \
    || { cat "$D/files.stderr" >&2; exit 1; }
WANT=$(md5sum < "$D/files.jsonl" | cut -c1-32)
WANT_LEN=$(stat -c %s "$D/files.jsonl")

# One live run of $1 (env already set): until its output is as long as the files', then
# SIGINT; GNU time's figures in $D/time, the wall time until caught up in $D/wall.
live_run() {
    local t0 tpid child
    t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S %e %M" -o "$D/time" "$1" run "$D/kafka.toml" \
        -w "$WORKERS" >/dev/null 2>"$D/stderr" &
    tpid=$!
    for _ in $(seq 6000); do
        [ "$(stat -c %s "$D/out/kafka.jsonl" 2>/dev/null || echo 0)" -ge "$WANT_LEN" ] && break
        kill -0 "$tpid" 2>/dev/null || break
        sleep 0.1
    done
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }' > "$D/wall"
    child=$(pgrep -P "$tpid" || true)
    [ -z "$child" ] || kill -INT "$child"
    wait "$tpid" || true
}

i=0
for bin in $BINS; do : > "$D/runs.$i"; i=$((i + 1)); done
for r in $(seq "$RUNS"); do
    i=0
    for bin in $BINS; do
        echo "run $r/$RUNS: $bin" >&2
        rm -rf "$D/out"; mkdir -p "$D/out"
        if [ -n "${LIVE:-}" ]; then
            if [ "${bin#unpaced:}" != "$bin" ]; then
                TIDEMARK_BENCH_UNPACED_LIVE=1 live_run "${bin#unpaced:}"
            else
                live_run "$bin"
            fi
        else
            /usr/bin/time -f "%U %S %e %M" -o "$D/time" "$bin" run "$D/kafka.toml" --until-eof \
                -w "$WORKERS" >/dev/null 2>"$D/stderr" || { cat "$D/stderr" >&2; exit 1; }
            awk '{ printf "%.2f", $3 }' "$D/time" > "$D/wall"
        fi
        got=$(md5sum < "$D/out/kafka.jsonl" | cut -c1-32)
        [ "$got" = "$WANT" ] || echo "output of $bin differs from the files' ($got vs $WANT)" >&2
        awk -v m="${got:0:8}" -v w="$(cat "$D/wall")" '{ printf "%.2f %.2f %d %s\n", $1 + $2, w, $4, m }' "$D/time" >> "$D/runs.$i"
        i=$((i + 1))
    done
done

MODE="run --until-eof -w $WORKERS"; [ -z "${LIVE:-}" ] || MODE="run -w $WORKERS (live, until caught up)"
echo "## Issue 14: a Kafka backlog, $HOSTS hosts x $MINUTES min x $LPM lines ($RECORDS records, ORDER=$ORDER), $PARTITIONS partitions, \`$MODE\`, $PROFILE build"
echo
BROKER=tansu; [ -z "${MOCK:-}" ] || BROKER="librdkafka mock cluster"
echo "- broker: $BROKER; $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); produced in ${PRODUCE_S}s; RUNS=$RUNS, alternating; the files' output md5 ${WANT:0:8}"
echo
echo "| binary | CPU s | wall s | peak RSS MiB |"
echo "|---|---:|---:|---:|"
i=0
for bin in $BINS; do
    cpu=$(cut -d' ' -f1 "$D/runs.$i" | median)
    wall=$(cut -d' ' -f2 "$D/runs.$i" | median)
    rss=$(cut -d' ' -f3 "$D/runs.$i" | median)
    awk -v b="$bin" -v c="$cpu" -v w="$wall" -v r="$rss" 'BEGIN { printf "| %s | %.2f | %.2f | %.1f |\n", b, c, w, r / 1024 }'
    i=$((i + 1))
done
echo
i=0
for bin in $BINS; do
    echo "- $bin, every run (CPU s, wall s, RSS KiB, output md5): $(tr '\n' ';' < "$D/runs.$i")"
    i=$((i + 1))
done
