#!/usr/bin/env bash
# Issue 14: the Kafka path end to end against the file path, same job, same input.
#
# One generated input (gen-nginx-logs: HOSTS hosts x MINUTES min x LPM lines per host per
# minute, no rotated siblings), the nginx job (benches/nginx_job.sh: the example's parse,
# metrics and rules, a jsonl sink of every series), each run:
#   (a) the file path: `tidemark run FILE_JOB --until-eof -w 1`;
#   (b) HOSTS agents, one per host (host = web-N, as on the hosts themselves; a kafka job
#       takes the host from the agent, the file job from the path, so the outputs can be
#       compared), started together against a fresh broker (tansu, via the
#       kafka-test-broker bench binary, PARTITIONS partitions), shipping the files that are
#       already written. Done when every agent's `lines_acked_total` on its /metrics equals
#       its file's lines (every line acknowledged by the broker); then the agents' CPU
#       (utime+stime from /proc, each agent summed) and peak RSS (VmHWM) are read and they
#       are stopped. tansu's CPU over the same interval is reported apart: it is the broker,
#       not tidemark;
#   (c) the kafka job (the same job with `[source] kind = "kafka"` on the topic)
#       `tidemark run KAFKA_JOB --until-eof -w 1`, then `-w 2`: CPU, wall, peak RSS; its jsonl
#       must equal (a)'s byte for byte (`cmp`), else the script fails. tansu's CPU while
#       it serves the reads is reported apart too. KAFKA_RUN=0 leaves (c) out;
#   (d) the same kafka job, live, submitted over the control API to a `tidemark cluster`
#       on this machine (benches/cluster_members.sh, as benches/cluster.sh runs it), for
#       each layout of CLUSTER ("MEMBERSxWORKERS", default "2x1 1x2": two processes with
#       one worker each, then one process with two): partition p is read by global worker
#       p mod W, so with 2 members each reads half the partitions and the windows' partials
#       cross the members' TCP connection. Measured from the submit to the moment the
#       jsonl holds (a)'s records: wall, CPU of each member and of its librdkafka threads
#       (`rdk:*`, from /proc/PID/task) and peak RSS (VmHWM, since the member's start), the
#       bytes over the members' connection (`ss -ti`), tansu's CPU apart. A live job has
#       no end of input: its last window closes once its streams are idle for
#       idle_timeout (set to IDLE, default 200ms; or by the agents' heartbeats, whose
#       time is now and the input's days ago). The output must equal (a)'s, byte for byte
#       or up to the order of records (the report says which), else the script fails.
#       PERF=1: after the last run's timed (d), one more, untimed, of each layout under
#       `perf record` (all members' threads), and a table of where their CPU went: by
#       thread (librdkafka's, timely's workers, the rest) and by code (librdkafka's C
#       code and the rdkafka crate, libc, the kernel, the rest: tidemark, timely, std).
# CPU of (a) and (c): user+system from /usr/bin/time (the whole process, librdkafka's
# threads included). lines/s = lines / wall; lines/CPU-s = lines / CPU. Medians of RUNS
# runs; the load average at the start and end of the runs goes in the report.
#
#   benches/kafka_e2e.sh                        # builds the release binaries first
#   RUNS=5 HOSTS=8 MINUTES=60 LPM=1000 benches/kafka_e2e.sh > results.md
#   TIDEMARK_BIN=... GEN=... BROKER_BIN=... benches/kafka_e2e.sh
#   OPTIONS='"linger.ms" = "5"' benches/kafka_e2e.sh   # librdkafka options for the agents
#   JOB_OPTIONS='"fetch.wait.max.ms" = "10"' benches/kafka_e2e.sh   # ... for the kafka job
#   STORAGE=sqlite benches/kafka_e2e.sh         # tansu's storage: memory (default) or sqlite
#   KAFKA_RUN=0 CLUSTER="2x1" benches/kafka_e2e.sh   # (a), (b), (d) on 2 members only
#
# STORAGE=memory by default: tansu 0.6.0's SQLite engine (what the tests use, so a restart
# keeps the records) leaves the kafka job's fetches unanswered beyond a few thousand
# records (benches/README.md, "Issue 14: end to end"). Its memory engine serves them, but
# answers a partition's end (ListOffsets latest, what `--until-eof` reads at start) short
# of the end, by what looks like the partition's last batch, so a finite run leaves it
# out (seen: 17,611 of 18,000 lines; a following run reads all 18,000). So with memory
# storage the agents send a heartbeat every second once idle, and (b) leaves them running
# until each has sent two more after its last line was acknowledged (one in flight at a
# time: the first is then acknowledged): every partition then ends with a heartbeat batch,
# which carries no line. (b)'s figures are taken before that wait. And the memory engine
# serves a fetch from inside a stored batch from the next batch on, so (c) — whose
# reading pauses partitions and resumes them mid-batch when there are several — loses
# lines and fails with PARTITIONS > 1 (benches/README.md, "Issue 14: end to end";
# docs/kafka.md, "The tansu broker"): so KAFKA_RUN is 0 by default then (the report says
# so; KAFKA_RUN=1 runs it anyway). (d), live, does not pause.
#
# Prints a markdown report on stdout, progress on stderr. Needs TIDEMARK_TANSU (the tansu
# binary), /usr/bin/time, curl, awk, cmp.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
HOSTS=${HOSTS:-8}
MINUTES=${MINUTES:-60}
LPM=${LPM:-300}            # 8 x 60 x 300 = 144,000 lines
PARTITIONS=${PARTITIONS:-4}
STORAGE=${STORAGE:-memory}
TIMEOUT=${TIMEOUT:-900}    # seconds the agents may take to ship everything, or (d) to complete
# (c) by default unless it cannot pass (above).
if [ "$STORAGE" = memory ] && [ "$PARTITIONS" -gt 1 ]; then KAFKA_RUN=${KAFKA_RUN:-0}; else KAFKA_RUN=${KAFKA_RUN:-1}; fi
PERF=${PERF:-0}
CLUSTER=${CLUSTER:-2x1 1x2}
IDLE=${IDLE:-200ms}
POLL=${POLL:-0.05}
: "${TIDEMARK_TANSU:?set TIDEMARK_TANSU to the tansu binary}"
if [ -z "${TIDEMARK_BIN:-}" ] || [ -z "${GEN:-}" ] || [ -z "${BROKER_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release -p tidemark -p tidemark-bench --bin tidemark \
        --bin gen-nginx-logs --bin kafka-test-broker >&2)
fi
REL=${CARGO_TARGET_DIR:-$ROOT/target}/release
BIN=${TIDEMARK_BIN:-$REL/tidemark}
GEN=${GEN:-$REL/gen-nginx-logs}
BROKER_BIN=${BROKER_BIN:-$REL/kafka-test-broker}
D=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-kafka-e2e.XXXXXX")
BPID='' APIDS=()
stop_agents() {
    local p
    for p in "${APIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${APIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    APIDS=()
}
stop_broker() {
    # The broker lives while fd 4 (its stdin) is open. (`exec 4>&- 2>/dev/null` would
    # send the script's own stderr to /dev/null for good: later failures went silent.)
    { exec 4>&-; } 2>/dev/null || true
    if [ -n "$BPID" ]; then wait "$BPID" 2>/dev/null || true; fi
    BPID=
}
cleanup() {
    stop_members
    stop_agents
    stop_broker
    rm -rf "$D"
}
trap cleanup EXIT
# A failing command under `set -e` ends the script without a word otherwise.
trap 'echo "kafka_e2e.sh: status $? at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 1' INT TERM
HZ=$(getconf CLK_TCK)
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { cut -d' ' -f"$2" "$1" | median; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# shellcheck source=benches/nginx_job.sh
. "$ROOT/benches/nginx_job.sh"
# shellcheck source=benches/cluster_members.sh
. "$ROOT/benches/cluster_members.sh"

echo "generating $HOSTS hosts x $MINUTES min x $LPM lines/min" >&2
"$GEN" --dir "$D/logs" --hosts "$HOSTS" --minutes "$MINUTES" --lines-per-minute "$LPM" \
    --rotations 0 --gzip-from 0 --disorder-secs 3 --seed 42 >&2
LINES=0
for h in $(seq 1 "$HOSTS"); do
    n=$(wc -l < "$D/logs/web-$h/access.log")
    echo "$n" > "$D/lines-$h"
    LINES=$((LINES + n))
done
BYTES=$(cat "$D"/logs/web-*/access.log | wc -c)

sink() { printf 'kind = "jsonl"\npath = "%s"' "$1"; }
nginx_job "$D/logs/*/access.log" "$(sink "$D/out-file/nginx.jsonl")" > "$D/file.toml"
# The same job over the topic: its [source] (up to [parse]) replaced.
kafka_job() {
    nginx_job "$D/logs/*/access.log" "$(sink "$1")" |
        awk -v src="[source]
kind = \"kafka\"
brokers = \"$BOOTSTRAP\"
topic = \"logs\"
[source.options]
${JOB_OPTIONS:-}
" '/^\[source\]/ { skip = 1; printf "%s", src; next } /^\[parse\]/ { skip = 0 } !skip'
}

# (a): "cpu_s wall_s peak_rss_mib"; the output is left in $D/out-file.
run_file() {
    rm -rf "$D/out-file"
    /usr/bin/time -f "%U %S %e %M" -o "$D/time" "$BIN" run "$D/file.toml" --until-eof -w 1 \
        >/dev/null 2>"$D/stderr" || { cat "$D/stderr" >&2; exit 1; }
    awk '{ printf "%.3f %.3f %.1f\n", $1 + $2, $3, $4 / 1024 }' "$D/time"
}

start_broker() {
    rm -f "$D/broker.in"
    mkfifo "$D/broker.in"
    "$BROKER_BIN" --topic logs --partitions "$PARTITIONS" --storage "$STORAGE" < "$D/broker.in" \
        > "$D/broker.out" 2> "$D/broker.err" &
    BPID=$!
    exec 4> "$D/broker.in"
    for _ in $(seq 600); do [ -s "$D/broker.out" ] && break; sleep 0.2; done
    BOOTSTRAP=$(head -1 "$D/broker.out")
    [ -n "$BOOTSTRAP" ] || { cat "$D/broker.err" >&2; exit 1; }
    TANSU=$(pgrep -P "$BPID" | head -1)
    [ -n "$TANSU" ] || { echo "no tansu process under the broker" >&2; exit 1; }
}

metric() {
    curl -fs "$1" 2>/dev/null | awk -v m="tidemark_agent_$2" '$1 ~ "^" m "([{]|$)" { print $NF; exit }'
}
acked() { metric "$1" lines_acked_total; }
HEARTBEAT=
[ "$STORAGE" = memory ] && HEARTBEAT='heartbeat_interval = "1s"'
# Memory storage: wait until every agent sent two heartbeats after its last line was
# acknowledged (see the top).
trailing_heartbeats() {
    local h u n0=() got
    for u in "$@"; do n0+=("$(metric "$u" heartbeats_sent_total)"); done
    h=0
    for u in "$@"; do
        for _ in $(seq 600); do
            got=$(metric "$u" heartbeats_sent_total)
            [ "${got:-0}" -ge $((${n0[$h]:-0} + 2)) ] && break
            sleep 0.1
        done
        [ "${got:-0}" -ge $((${n0[$h]:-0} + 2)) ] || { echo "agent $u sent no heartbeats" >&2; exit 1; }
        h=$((h + 1))
    done
}

# (b): "wall_s agents_cpu_s max_agent_peak_rss_mib tansu_cpu_s".
ship() {
    local h p t0 t1 k0 k1 c=0 rss=0 urls=() done_all got want
    rm -rf "$D/agents"
    for h in $(seq 1 "$HOSTS"); do
        mkdir -p "$D/agents/$h"
        cat > "$D/agents/$h/agent.toml" <<TOML
[agent]
host = "web-$h"
state_dir = "state"
brokers = "$BOOTSTRAP"
topic = "logs"
metrics_addr = "127.0.0.1:0"
$HEARTBEAT
[agent.options]
${OPTIONS:-}
[source]
kind = "file"
include = ["$D/logs/web-$h/access.log"]
TOML
    done
    k0=$(cpu_ticks "$TANSU")
    t0=$(now)
    for h in $(seq 1 "$HOSTS"); do
        "$BIN" agent "$D/agents/$h/agent.toml" 2>"$D/agents/$h/stderr" &
        APIDS+=($!)
    done
    for h in $(seq 1 "$HOSTS"); do
        for _ in $(seq 600); do grep -q "metrics: serving" "$D/agents/$h/stderr" && break; sleep 0.1; done
        urls+=("$(sed -n 's/^metrics: serving //p' "$D/agents/$h/stderr" | head -1)")
    done
    while :; do
        done_all=1
        for h in $(seq 1 "$HOSTS"); do
            got=$(acked "${urls[$((h - 1))]}")
            want=$(cat "$D/lines-$h")
            [ "${got:-0}" -ge "$want" ] || { done_all=; break; }
        done
        [ -n "$done_all" ] && break
        if awk -v a="$t0" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
            echo "the agents did not ship every line in ${TIMEOUT}s" >&2
            cat "$D"/agents/*/stderr >&2
            exit 1
        fi
        for p in "${APIDS[@]}"; do
            kill -0 "$p" 2>/dev/null || { cat "$D"/agents/*/stderr >&2; exit 1; }
        done
        sleep 0.1
    done
    t1=$(now)
    k1=$(cpu_ticks "$TANSU")
    for p in "${APIDS[@]}"; do
        c=$((c + $(cpu_ticks "$p")))
        h=$(peak_rss "$p")
        [ "$h" -gt "$rss" ] && rss=$h
    done
    [ "$STORAGE" = memory ] && trailing_heartbeats "${urls[@]}"
    stop_agents
    awk -v t0="$t0" -v t1="$t1" -v c="$c" -v hz="$HZ" -v r="$rss" -v k="$((k1 - k0))" \
        'BEGIN { printf "%.3f %.3f %.1f %.3f\n", t1 - t0, c / hz, r / 1024, k / hz }'
}

# (c) with $1 workers: "cpu_s wall_s peak_rss_mib tansu_cpu_s"; fails unless the output
# equals (a)'s.
run_kafka() {
    local k0 k1 out="$D/out-kafka-$1/nginx.jsonl"
    rm -rf "$D/out-kafka-$1"
    kafka_job "$out" > "$D/kafka-$1.toml"
    k0=$(cpu_ticks "$TANSU")
    /usr/bin/time -f "%U %S %e %M" -o "$D/time" "$BIN" run "$D/kafka-$1.toml" --until-eof -w "$1" \
        >/dev/null 2>"$D/stderr" || { cat "$D/stderr" >&2; exit 1; }
    k1=$(cpu_ticks "$TANSU")
    if ! cmp "$out" "$D/ref.jsonl" >&2; then
        echo "the kafka job's output (-w $1) differs from the file job's" >&2
        diff <(sort "$out") <(sort "$D/ref.jsonl") | head >&2 || true
        exit 1
    fi
    awk -v k="$((k1 - k0))" -v hz="$HZ" '{ printf "%.3f %.3f %.1f %.3f\n", $1 + $2, $3, $4 / 1024, k / hz }' "$D/time"
}

# Sets BY to the lines each member read, from the job's status (`lines_read_by_member`):
# which partitions a member reads decides its share, and the agents' keys (host, file
# group, epoch) decide the partitions. Members report every few seconds: waited for,
# after the measured interval, until the shares add up to the input.
by_member() {
    local got sum=0
    for _ in $(seq 300); do
        got=$(curl -fs -H "Authorization: Bearer bench-token-$$" "http://$API/jobs/nginx" |
            sed -n 's/.*"lines_read_by_member":{\([^}]*\)}.*/\1/p' | tr -d '"' | tr ',' ' ')
        sum=$(echo "$got" | tr ' ' '\n' | awk -F: '{ s += $2 } END { print s + 0 }')
        [ "$sum" = "$LINES" ] && break
        sleep 0.1
    done
    [ "$sum" = "$LINES" ] || echo "warning: the members report $sum lines read ($got), not $LINES" >&2
    BY=()
    for got in $got; do BY[${got%%:*}]=${got#*:}; done
}

# Called by measure_cluster every second: fails (LOST says why) once the job counts lines
# lost upstream (kafka_lost_lines). Its output can then not equal (a)'s; without this
# the run would wait TIMEOUT for records that cannot come. Seen on tansu's memory
# storage with the live job too (a partition's records from inside a batch on, see the
# top): run_cluster then starts that run again, and the report counts it.
cluster_check() {
    local lost
    lost=$(curl -fs -H "Authorization: Bearer bench-token-$$" "http://$API/jobs/nginx" |
        sed -n 's/.*"kafka_lost_lines":\([0-9]*\).*/\1/p') || true
    [ "${lost:-0}" = 0 ] && return 0
    LOST="the job counts $lost line(s) lost upstream (kafka_lost_lines); run again"
    return 1
}

# Profiles (d) on $1 members with $2 workers each (not timed): one `perf record` of every
# member from the submit to the complete output, then one report line per thread class:
# "layout class total% librdkafka% libc% kernel% ours%" (shares of all samples) into
# $D/perf.rows.
perf_cluster() {
    local pp
    CLUSTER_ARGS=(--allow-kafka-brokers "$BOOTSTRAP")
    start_cluster "$1" "$2" logs ""
    pp=$(IFS=,; echo "${PIDS[*]}")
    perf record -q -F 2999 -p "$pp" -o "$D/perf.data" >/dev/null 2>"$D/perf.err" &
    local perf=$!
    sleep 0.5 # perf attaches to every thread first
    measure_cluster "$D/ref.jsonl" "$D/cluster.toml" "$RECS" > "$D/perf.one"
    [ "$(cat "$D/perf.one")" != abandoned ] || echo "warning: the profiled run of $1x$2 counted lost lines: $LOST" >&2
    kill -INT "$perf"
    # perf record exits 130 when it stops on SIGINT.
    wait "$perf" || [ $? = 130 ] || { cat "$D/perf.err" >&2; exit 1; }
    stop_members
    # librdkafka is linked in statically: its code is told by its symbols (rd_*, its
    # crc32c and compression codecs) and the rdkafka crate's (rdkafka::).
    perf report -i "$D/perf.data" --stdio --no-children --sort comm,sym -q 2>/dev/null |
        awk -v lay="$1x$2" '
            /%/ { p = $1; sub("%", "", p); comm = $2
                  cls = (comm ~ /^rdk:/) ? "librdkafka threads" : (comm ~ /^timely:work/) ? "timely workers" : "other threads"
                  sym = substr($0, index($0, "] ") + 2)
                  code = ($0 ~ /\[k\]/) ? "kernel" \
                       : (sym ~ /^(rd_|rdk|crc32c|LZ4|ZSTD|snappy|rdkafka::|<rdkafka::|cnd_|mtx_|thrd_|tss_)/) ? "librdkafka" \
                       : (sym ~ /^__vdso/ || sym ~ /^(__)?(mem|str|malloc|free|calloc|realloc|cfree|_int_|pthread_|__lll|__pthread|_IO_|__GI|__libc)/) ? "libc" : "ours"
                  t[cls] += p; c[cls, code] += p }
            END { for (k in t) printf "%s %s %.1f %.1f %.1f %.1f %.1f\n", lay, k, t[k], c[k, "librdkafka"], c[k, "libc"], c[k, "kernel"], c[k, "ours"] }' >> "$D/perf.rows"
    # (awk, not head: perf report killed by SIGPIPE would fail the pipeline.)
    perf report -i "$D/perf.data" --stdio --no-children --sort sym -q 2>/dev/null | awk 'NR <= 25' > "$D/perf-top-$1x$2"
    rm -f "$D/perf.data"
}

# (d) on $1 members with $2 workers each: measure_cluster's fields (benches/cluster_members.sh)
# and tansu's CPU s. The output's order ("bytes" or "sorted") is appended to $D/d.match.
run_cluster() {
    local k0 k1 try
    kafka_job "$D/c/state-0/output/nginx.jsonl" |
        sed "s/^idle_timeout = .*/idle_timeout = \"$IDLE\"/" > "$D/cluster.toml"
    grep -q "^idle_timeout = \"$IDLE\"" "$D/cluster.toml" || { echo "no idle_timeout in the job" >&2; exit 1; }
    CLUSTER_ARGS=(--allow-kafka-brokers "$BOOTSTRAP")
    for try in 1 2 3; do
        start_cluster "$1" "$2" logs ""
        k0=$(cpu_ticks "$TANSU")
        # Not in $(...): measure_cluster sets MATCH, and its `exit 1` must end the script.
        measure_cluster "$D/ref.jsonl" "$D/cluster.toml" "$RECS" > "$D/d.one"
        k1=$(cpu_ticks "$TANSU")
        [ "$(cat "$D/d.one")" != abandoned ] && break
        # The job counted lines lost upstream (cluster_check): this run is no figure.
        echo "(d) $1x$2, run $i, attempt $try: $LOST" | tee -a "$D/d.redone" >&2
        awk '/WARN/ && n++ < 5' "$D/c"/member-*.log >&2
        stop_members
    done
    [ "$(cat "$D/d.one")" != abandoned ] || { echo "(d) $1x$2 lost lines in 3 attempts" >&2; exit 1; }
    by_member
    stop_members
    echo "$MATCH" >> "$D/d.match"
    awk -v k="$((k1 - k0))" -v hz="$HZ" -v m0="${BY[0]:-0}" -v m1="${BY[1]:-0}" \
        '{ printf "%s %.3f %d %d\n", $0, k / hz, m0, m1 }' "$D/d.one"
}

for l in $CLUSTER; do
    case "$l" in [12]x[1-9]) ;; *) echo "CLUSTER: $l is not MEMBERSxWORKERS (1 or 2 members)" >&2; exit 1 ;; esac
done
LOAD0=$(load)
START=$(date -u +%Y-%m-%dT%H:%MZ)
: > "$D/a.runs"; : > "$D/b.runs"; : > "$D/c1.runs"; : > "$D/c2.runs"; : > "$D/d.match"; : > "$D/d.redone"
for l in $CLUSTER; do : > "$D/d-$l.runs"; done
for i in $(seq "$RUNS"); do
    echo "run $i/$RUNS: (a) file job" >&2
    run_file >> "$D/a.runs"
    [ -f "$D/ref.jsonl" ] || cp "$D/out-file/nginx.jsonl" "$D/ref.jsonl"
    cmp "$D/out-file/nginx.jsonl" "$D/ref.jsonl" >&2 || { echo "the file job's output changed between runs" >&2; exit 1; }
    RECS=$(wc -l < "$D/ref.jsonl")
    start_broker
    echo "run $i/$RUNS: (b) $HOSTS agents -> tansu at $BOOTSTRAP" >&2
    ship >> "$D/b.runs"
    if [ "$KAFKA_RUN" = 1 ]; then
        echo "run $i/$RUNS: (c) kafka job -w 1, -w 2" >&2
        run_kafka 1 >> "$D/c1.runs"
        run_kafka 2 >> "$D/c2.runs"
    fi
    for l in $CLUSTER; do
        echo "run $i/$RUNS: (d) kafka job on a cluster of ${l%x*} member(s) with ${l#*x} worker(s) each" >&2
        run_cluster "${l%x*}" "${l#*x}" >> "$D/d-$l.runs"
    done
    if [ "$PERF" = 1 ] && [ "$i" = "$RUNS" ]; then
        for l in $CLUSTER; do
            echo "run $i/$RUNS: (d) $l under perf record" >&2
            perf_cluster "${l%x*}" "${l#*x}"
        done
    fi
    stop_broker
done
LOAD1=$(load)

echo "## Issue 14: end to end, $HOSTS hosts x $MINUTES min, $LINES lines ($((BYTES / 1048576)) MiB), nginx job"
echo
echo "- $START, $(nproc) cores, load average $LOAD0 at the start, $LOAD1 at the end; git $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'); RUNS=$RUNS (medians); $PARTITIONS partitions; tansu storage $STORAGE; agent options: ${OPTIONS:-none}; kafka job options: ${JOB_OPTIONS:-none}; (d) idle_timeout $IDLE"
echo
echo "| step | wall s | lines/s (wall) | CPU s | lines/CPU-s | peak RSS MiB | broker (tansu) CPU s |"
echo "|---|---:|---:|---:|---:|---:|---:|"
awk -v c="$(col "$D/a.runs" 1)" -v w="$(col "$D/a.runs" 2)" -v r="$(col "$D/a.runs" 3)" -v l="$LINES" \
    'BEGIN { printf "| (a) file path: `run --until-eof -w 1` | %.2f | %.0f | %.2f | %.0f | %.1f | – |\n", w, l / w, c, l / c, r }'
awk -v w="$(col "$D/b.runs" 1)" -v c="$(col "$D/b.runs" 2)" -v r="$(col "$D/b.runs" 3)" -v k="$(col "$D/b.runs" 4)" -v l="$LINES" -v n="$HOSTS" \
    'BEGIN { printf "| (b) %d agents (one per host) to the broker, until every line is acknowledged | %.2f | %.0f | %.2f (all agents) | %.0f | %.1f (largest agent) | %.2f |\n", n, w, l / w, c, l / c, r, k }'
if [ "$KAFKA_RUN" = 1 ]; then
    for w in 1 2; do
        awk -v c="$(col "$D/c$w.runs" 1)" -v wall="$(col "$D/c$w.runs" 2)" -v r="$(col "$D/c$w.runs" 3)" -v k="$(col "$D/c$w.runs" 4)" -v l="$LINES" -v w="$w" \
            'BEGIN { printf "| (c) kafka job: `run --until-eof -w %d` over the topic | %.2f | %.0f | %.2f | %.0f | %.1f | %.2f |\n", w, wall, l / wall, c, l / c, r, k }'
    done
fi
for l in $CLUSTER; do
    # Sums over the members per run, then the median of the runs.
    awk '{ print $2 + $3, $11 + $12, $13 + $14, $15 + $16 }' "$D/d-$l.runs" > "$D/d-$l.sum"
    awk -v m="${l%x*}" -v w="${l#*x}" -v wall="$(col "$D/d-$l.runs" 1)" -v c="$(col "$D/d-$l.sum" 1)" \
        -v r0="$(col "$D/d-$l.runs" 9)" -v r1="$(col "$D/d-$l.runs" 10)" -v k="$(col "$D/d-$l.runs" 17)" -v l="$LINES" -v idle="$IDLE" \
        'BEGIN { rss = (m == 2) ? sprintf("%.1f, %.1f", r0, r1) : sprintf("%.1f", r0)
                 printf "| (d) kafka job on `cluster -n %d -w %d`, submitted, to its last record (incl. idle_timeout %s) | %.2f | %.0f | %.2f (all members) | %.0f | %s | %.2f |\n", m, w, idle, wall, l / wall, c, l / c, rss, k }'
done
echo
if [ "$KAFKA_RUN" = 1 ]; then
    echo "- (c)'s jsonl ($RECS records) equals (a)'s byte for byte in every run (cmp)."
else
    echo "- (c) not run (KAFKA_RUN=0; by default with tansu's memory storage and $PARTITIONS partitions, where the paced finite run loses the lines tansu does not serve)."
fi
if [ -n "$CLUSTER" ]; then
    if [ -s "$D/d.redone" ]; then
        echo "- (d) runs given up and run again because the job counted lines lost upstream (kafka_lost_lines: tansu's memory engine): $(wc -l < "$D/d.redone") — $(tr '\n' ';' < "$D/d.redone")"
    else
        echo "- no (d) run counted lines lost upstream (kafka_lost_lines), none was run again."
    fi
    echo "- (d)'s jsonl ($RECS records) equals (a)'s in every run: $(sort "$D/d.match" | uniq -c | awk '{ printf "%s%d run(s) %s", (NR > 1) ? ", " : "", $1, ($2 == "bytes") ? "byte for byte (cmp)" : "up to the order of its records (sorted, cmp)" }')."
fi
for l in $CLUSTER; do
    # Per member: CPU s, of which librdkafka's threads, timely's workers, its network
    # threads, and system CPU (of all threads); medians of the runs.
    for m in 0 1; do
        [ "$m" -lt "${l%x*}" ] || continue
        awk -v l="$l" -v m="$m" -v c="$(col "$D/d-$l.runs" $((2 + m)))" -v r="$(col "$D/d-$l.runs" $((11 + m)))" \
            -v w="$(col "$D/d-$l.runs" $((13 + m)))" -v n="$(col "$D/d-$l.runs" $((15 + m)))" -v s="$(col "$D/d-$l.runs" $((4 + m)))" \
            'BEGIN { printf "- (d) %s, member %d: CPU %.2f s: librdkafka threads (rdk:*) %.2f, timely workers %.2f, timely network threads %.2f, other threads %.2f; system CPU (all threads) %.2f\n", l, m, c, r, w, n, c - r - w - n, s }'
    done
    awk -v l="$l" -v r="$(col "$D/d-$l.sum" 2)" -v w="$(col "$D/d-$l.sum" 3)" -v n="$(col "$D/d-$l.sum" 4)" -v c="$(col "$D/d-$l.sum" 1)" -v mid="$(col "$D/d-$l.runs" 8)" \
        'BEGIN { printf "- (d) %s, all members: CPU %.2f s, librdkafka threads %.2f, timely workers %.2f, network threads %.2f; wall to all but the last window %.2f s\n", l, c, r, w, n, mid }'
    if [ "${l%x*}" = 2 ]; then
        echo "- (d) $l: lines read by member 0, member 1 in each run (its partitions' share): $(awk '{ printf "%s%d, %d", (NR > 1) ? "; " : "", $18, $19 }' "$D/d-$l.runs")"
        awk -v s="$(col "$D/d-$l.runs" 6)" -v r="$(col "$D/d-$l.runs" 7)" -v l="$LINES" -v n="$RECS" \
            'BEGIN { printf "- (d) 2 members: over their TCP connection (ss -ti, member 0 side) member 0 -> 1 %.0f bytes, 1 -> 0 %.0f bytes; %.1f bytes per input line, %.0f per output record\n", s, r, (s + r) / l, (s + r) / n }'
    fi
done
if [ "$PERF" = 1 ]; then
    echo
    echo "Where (d)'s CPU went (perf record -F 2999 of every member, one untimed run per layout; % of all samples of the layout):"
    echo
    echo "| layout | threads | all code | librdkafka (C code, rdkafka crate) | libc, vdso (memcpy, malloc, clock_gettime, ...) | kernel | tidemark, timely, std |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    sort "$D/perf.rows" | awk '{ n = NF; cls = $2; for (i = 3; i <= n - 5; i++) cls = cls " " $i
        printf "| %s | %s | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n", $1, cls, $(n-4), $(n-3), $(n-2), $(n-1), $n }'
    for l in $CLUSTER; do
        echo
        echo "- $l, the symbols with the most samples: $(awk '{ printf "%s%s %s", (NR > 1) ? "; " : "", $1, $NF }' "$D/perf-top-$l")"
    done
    echo
fi
echo "- every run: (a) cpu wall rss: $(tr '\n' ';' < "$D/a.runs")"
echo "- (b) wall agents-cpu max-rss tansu-cpu: $(tr '\n' ';' < "$D/b.runs")"
if [ "$KAFKA_RUN" = 1 ]; then
    echo "- (c) -w 1 cpu wall rss tansu-cpu: $(tr '\n' ';' < "$D/c1.runs")"
    echo "- (c) -w 2 cpu wall rss tansu-cpu: $(tr '\n' ';' < "$D/c2.runs")"
fi
for l in $CLUSTER; do
    echo "- (d) $l wall cpu0 cpu1 sys0 sys1 sent0->1 recv1->0 mid rss0 rss1 rdk0 rdk1 work0 work1 net0 net1 tansu-cpu lines0 lines1: $(tr '\n' ';' < "$D/d-$l.runs")"
done
