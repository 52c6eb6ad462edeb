#!/usr/bin/env bash
# Issue 13, item 6: scale-out. The nginx job (jobs/examples/nginx.toml's metrics and rules,
# jsonl sink, series = "all") over HOSTS hosts x MINUTES minutes x LPM lines per minute,
# split in two "machines" (folders m0 = web-1..HOSTS/2, m1 = the rest), measured three ways,
# runs alternating, RUNS times, medians:
#   A. one process, `tidemark run JOB --until-eof -w 2` over both folders;
#   B. one process, `tidemark cluster -w 2` (a one-member cluster) with the job submitted
#      over the API, reading both folders;
#   C. two processes, `tidemark cluster -n 2 -p I -w 1` on this machine: member I reads
#      only its folder (`${LOG_ROOT}` is m0 for member 0, m1 for member 1, as on two
#      machines), so each member reads HOSTS/2 hosts.
# A cluster job cannot be finite (it follows its files; there is no --until-eof), so B and
# C measure a fixed input to completion: from the submit to the moment the jsonl output
# holds as many records as A's. The job's idle_timeout is set to IDLE (default 200ms) for
# all three, so a member's groups count as idle IDLE after their end of file and the last
# window closes (the generated logs are dated in the past); B and C's walls include that
# wait (and up to POLL of polling). Also reported: the wall until every window but the
# last is out (those close by watermark, while the input is read: no idle wait in it).
# The cluster's output is checked equal to A's.
# Measured: wall; user+system CPU of every process (A: /usr/bin/time; B, C: /proc/PID/stat
# from just before the submit to completion, so the cluster's start is not counted);
# lines/s = lines / wall; lines per CPU-second; bytes exchanged between C's members: the
# kernel's counters of their one TCP connection (`ss -ti`: bytes_sent / bytes_received of
# member 0's side, after minus before the submit; timely opens one connection per pair of
# processes and carries every exchange on it, plus its progress messages).
#
# Then (CALLGRIND=1, the default) the exchange's share of instructions, load-independent:
# C again on a smaller input (CG_MINUTES x CG_LPM lines per host per minute) with BOTH
# members under `valgrind --tool=callgrind --trace-children=no`, and B under callgrind on
# the same input, counting from the submit (`callgrind_control -z`) to the member's exit
# (stopped once the output is complete). For each member: total instructions (Ir) and the
# inclusive Ir of timely's encoding (its zero-copy `Pusher::push`, into which
# `Message::into_bytes` is inlined: bincode, the engine's serde impls, hdrhistogram's V2
# format) and decoding (`Message::from_bytes`), of its network threads (`tcp::send_loop`,
# `tcp::recv_loop`), of reading, parsing and aggregating (`GroupSet::read_round`) and of
# worker 0's serial part (`to_stage2`: the max_series cut's records and rule inputs; the
# jsonl sink's `write_window`). User-space instructions only: the kernel's TCP work is
# not in them (see the system CPU of C in the timed runs).
# TIMED=0 skips the timed runs (callgrind only).
#
#   benches/cluster.sh                     # builds the release binaries first
#   RUNS=5 benches/cluster.sh > results.md
#   TIDEMARK_BIN=path/to/tidemark GEN=path/to/gen-nginx-logs benches/cluster.sh
#   CALLGRIND=0 LPM=2000 benches/cluster.sh   # timed runs only, smaller input
#
# Prints a markdown report on stdout; progress on stderr. Needs /usr/bin/time, curl, ss,
# awk, and for CALLGRIND=1 valgrind and callgrind_annotate.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
HOSTS=${HOSTS:-8}          # split half and half between the two members
MINUTES=${MINUTES:-60}
LPM=${LPM:-5000}           # 8 hosts x 60 min x 5,000 = 2.4 M lines
IDLE=${IDLE:-200ms}
POLL=${POLL:-0.05}
TIMEOUT=${TIMEOUT:-600}    # seconds a cluster run may take before the bench gives up
TIMED=${TIMED:-1}
CALLGRIND=${CALLGRIND:-1}
CG_MINUTES=${CG_MINUTES:-10}
CG_LPM=${CG_LPM:-2000}     # 8 x 10 x 2,000 = 160k lines under callgrind
CG_KEEP=${CG_KEEP:-}       # a folder to copy the callgrind files to (default: removed)
if [ -z "${TIDEMARK_BIN:-}" ] || [ -z "${GEN:-}" ]; then
    (cd "$ROOT" && cargo build --release -p tidemark -p tidemark-bench \
        --bin tidemark --bin gen-nginx-logs >&2)
fi
REL=${CARGO_TARGET_DIR:-$ROOT/target}/release
BIN=${TIDEMARK_BIN:-$REL/tidemark}
GEN=${GEN:-$REL/gen-nginx-logs}
[ $((HOSTS % 2)) = 0 ] || { echo "HOSTS must be even" >&2; exit 1; }
D=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-cluster-bench.XXXXXX")
cleanup() {
    stop_members
    rm -rf "$D"
}
trap cleanup EXIT
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { cut -d' ' -f"$2" "$1" | median; }
lines_of() { sed -n 's/.*lines: \([0-9]*\).*/\1/p'; }
HZ=$(getconf CLK_TCK)

# shellcheck source=benches/nginx_job.sh
. "$ROOT/benches/nginx_job.sh"
# shellcheck source=benches/cluster_members.sh
. "$ROOT/benches/cluster_members.sh"

# The nginx job reading $1, writing $2, with the bench's idle_timeout.
job() {
    nginx_job "$1" "kind = \"jsonl\"
path = \"$2\"" | sed "s/^idle_timeout = .*/idle_timeout = \"$IDLE\"/"
}

# Generates $1 hosts' logs ($2 minutes x $3 lines/min) split into $D/$4/m0 and $D/$4/m1;
# prints the number of lines.
generate() {
    local n
    n=$("$GEN" --dir "$D/$4/all" --hosts "$1" --minutes "$2" --lines-per-minute "$3" \
        --rotations 0 --gzip-from 0 --disorder-secs 3 --seed 42 | lines_of)
    mkdir -p "$D/$4/m0" "$D/$4/m1"
    for h in $(seq 1 "$1"); do
        mv "$D/$4/all/web-$h" "$D/$4/m$(( h > $1 / 2 ? 1 : 0 ))/"
    done
    rmdir "$D/$4/all"
    echo "$n"
}

# A: one measured `run --until-eof -w 2` of $1 (data folder): "cpu_s wall_s".
run_a() {
    rm -rf "$D/outA"
    /usr/bin/time -f "%U %S %e" -o "$D/time" "$BIN" run "$D/$1.toml" --until-eof -w 2 \
        >/dev/null 2>"$D/stderr" || { cat "$D/stderr" >&2; exit 1; }
    awk '{ printf "%.3f %.3f\n", $1 + $2, $3 }' "$D/time"
}

# Writes data set $1's job files: $1.toml (both folders, for A), $1-one.toml (B), $1-two.toml (C),
# and its reference output $1.ref (A's).
prepare() {
    job "$D/$1/m*/*/access.log" "$D/outA/nginx.jsonl" > "$D/$1.toml"
    job "$D/$1/m*/*/access.log" "$D/c/state-0/output/nginx.jsonl" > "$D/$1-one.toml"
    # shellcheck disable=SC2016
    job '${LOG_ROOT}/*/access.log' "$D/c/state-0/output/nginx.jsonl" > "$D/$1-two.toml"
    run_a "$1" > /dev/null
    cp "$D/outA/nginx.jsonl" "$D/$1.ref"
}

echo "# Issue 13, item 6: 2-process cluster against one process (benches/cluster.sh)"
echo
echo "- $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, tidemark $("$BIN" --version 2>/dev/null | head -1), git $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'); RUNS=$RUNS (medians); idle_timeout=$IDLE"

if [ "$TIMED" = 1 ]; then
    echo "generating $HOSTS hosts x $MINUTES min x $LPM lines/min in $D/big" >&2
    LINES=$(generate "$HOSTS" "$MINUTES" "$LPM" big)
    prepare big
    RECS=$(wc -l < "$D/big.ref")
    : > "$D/A.runs"; : > "$D/B.runs"; : > "$D/C.runs"
    for i in $(seq "$RUNS"); do
        echo "run $i/$RUNS: A (run -w 2), B (cluster of 1, -w 2), C (cluster of 2, -w 1 each)" >&2
        run_a big >> "$D/A.runs"
        start_cluster 1 2 big ""
        measure_cluster "$D/big.ref" "$D/big-one.toml" "$RECS" >> "$D/B.runs"
        stop_members
        start_cluster 2 1 big ""
        measure_cluster "$D/big.ref" "$D/big-two.toml" "$RECS" >> "$D/C.runs"
        stop_members
    done
    echo
    echo "## $HOSTS hosts x $MINUTES min, $LINES lines ($((HOSTS / 2)) hosts per member in C), nginx job, $RECS records"
    echo
    echo "| variant | wall s | lines/s (wall) | wall to all but the last window s | CPU s (all processes) | lines/CPU-s | of which system CPU s |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    awk -v w="$(col "$D/A.runs" 2)" -v c="$(col "$D/A.runs" 1)" -v l="$LINES" \
        'BEGIN { printf "| A. `run --until-eof -w 2` | %.2f | %.0f | – | %.2f | %.0f | – |\n", w, l / w, c, l / c }'
    for v in B C; do
        # The CPU column is the median of each run's sum over the members.
        awk '{ print $2 + $3, $4 + $5 }' "$D/$v.runs" > "$D/$v.cpu"
        awk -v v="$v" -v w="$(col "$D/$v.runs" 1)" -v m="$(col "$D/$v.runs" 8)" -v c="$(col "$D/$v.cpu" 1)" -v s="$(col "$D/$v.cpu" 2)" -v l="$LINES" -v idle="$IDLE" \
            'BEGIN { name = (v == "B") ? "B. `cluster -w 2`, one process" : "C. `cluster -n 2 -w 1`, two processes";
                     printf "| %s (to the last record, incl. idle_timeout %s) | %.2f | %.0f | %.2f | %.2f | %.0f | %.2f |\n", name, idle, w, l / w, m, c, l / c, s }'
    done
    echo
    awk -v a="$(col "$D/C.runs" 2)" -v b="$(col "$D/C.runs" 3)" 'BEGIN { printf "- C per member (median CPU s): member 0 %.2f, member 1 %.2f\n", a, b }'
    awk -v s="$(col "$D/C.runs" 6)" -v r="$(col "$D/C.runs" 7)" -v l="$LINES" -v n="$RECS" \
        'BEGIN { printf "- C exchanged over its TCP connection (ss -ti, member 0 side): member 0 -> 1: %.0f bytes, member 1 -> 0: %.0f bytes; %.1f bytes per input line, %.0f bytes per output record\n", s, r, (s + r) / l, (s + r) / n }'
    echo "- every run: A (cpu wall): $(tr '\n' ';' < "$D/A.runs")"
    echo "- B (wall cpu0 - sys0 - sent recv mid rss0 - rdk0 - work0 - net0 -): $(tr '\n' ';' < "$D/B.runs")"
    echo "- C (wall cpu0 cpu1 sys0 sys1 sent0->1 recv1->0 mid rss0 rss1 rdk0 rdk1 work0 work1 net0 net1): $(tr '\n' ';' < "$D/C.runs")"
    rm -rf "$D/big"
fi

if [ "$CALLGRIND" = 1 ]; then
    echo "callgrind: generating $HOSTS hosts x $CG_MINUTES min x $CG_LPM lines/min" >&2
    CG_LINES=$(generate "$HOSTS" "$CG_MINUTES" "$CG_LPM" small)
    prepare small
    CG_RECS=$(wc -l < "$D/small.ref")
    mkdir -p "$D/cg"
    # @P@ becomes the member's number.
    vg() { echo "valgrind --tool=callgrind --trace-children=no --callgrind-out-file=$D/cg/$1-@P@"; }
    # Inclusive Ir of the functions matching $2 in callgrind output $1, and the total. Only
    # each function's own entry counts (the one naming its object file): callgrind also
    # lists the code inlined into it under other source files, which that entry includes
    # (checked against --toggle-collect on to_stage2).
    incl() {
        callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$1" 2>/dev/null |
            awk -v re="$2" '
                /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
                $0 ~ re && / \[\/[^]]*\]$/ { gsub(",", "", $1); s += $1 }
                END { printf "%d %d\n", total, s }'
    }
    # Encoding: timely's zero-copy pusher (Message::into_bytes inlined: bincode, the
    # engine's serde impls, hdrhistogram's V2 format) and decoding (Message::from_bytes).
    ENC='zero_copy::push_pull::Pusher<T,P> as timely_communication::Push<T>>::push|channels::Message<T,C> as timely_communication::Bytesable>::from_bytes'
    NET='zero_copy::tcp::(send_loop|recv_loop)'
    LOCAL='groupset::GroupSet::read_round'
    W0='series_limit::to_stage2|JsonlSink as tidemark_engine::sink::Sink>::write_window'
    echo "callgrind: C, both members under callgrind ($CG_LINES lines)" >&2
    start_cluster 2 1 small "$(vg two)"
    ZERO=1 measure_cluster "$D/small.ref" "$D/small-two.toml" "$CG_RECS" > "$D/cgC.run"
    stop_members
    echo "callgrind: B, one process under callgrind" >&2
    start_cluster 1 2 small "$(vg one)"
    ZERO=1 measure_cluster "$D/small.ref" "$D/small-one.toml" "$CG_RECS" > "$D/cgB.run"
    stop_members
    echo
    echo "## Instructions (callgrind), $CG_LINES lines ($HOSTS hosts x $CG_MINUTES min), same job, $CG_RECS records"
    echo
    echo "| process | total Ir | encoding + decoding Ir (share) | network threads Ir (share) | reading, parsing, aggregating Ir | worker 0's cut, records and jsonl sink Ir |"
    echo "|---|---:|---:|---:|---:|---:|"
    for f in "$D/cg/two-0" "$D/cg/two-1" "$D/cg/one-0"; do
        case "$f" in */two-*) who="C, member ${f##*-}" ;; *) who="B, one process" ;; esac
        read -r t e <<< "$(incl "$f" "$ENC")"
        read -r _ n <<< "$(incl "$f" "$NET")"
        read -r _ l <<< "$(incl "$f" "$LOCAL")"
        read -r _ w <<< "$(incl "$f" "$W0")"
        echo "$f $t $e $n $l $w" >> "$D/cg.rows"
        awk -v who="$who" -v t="$t" -v e="$e" -v n="$n" -v l="$l" -v w="$w" \
            'BEGIN { printf "| %s | %d | %d (%.1f%%) | %d (%.2f%%) | %d | %d |\n", who, t, e, 100 * e / t, n, 100 * n / t, l, w }'
    done
    awk -v lines="$CG_LINES" -v recs="$CG_RECS" '
        $1 ~ /\/two-/ { c += $2; ce += $3; cn += $4 } $1 ~ /\/one-/ { b += $2; bl = $5; bw = $6 }
        END { printf "\n- C (both members) %d Ir against B %d Ir: %+.1f%%; encoding + network threads: %.1f%% of C'"'"'s instructions\n", c, b, 100 * (c - b) / b, 100 * (ce + cn) / c
              printf "- B: reading, parsing, aggregating %.0f Ir per line (%.1f%% of all); worker 0'"'"'s serial part %.0f Ir per output record (%.1f%% of all)\n", bl / lines, 100 * bl / b, bw / recs, 100 * bw / b }' "$D/cg.rows"
    if [ -n "$CG_KEEP" ]; then mkdir -p "$CG_KEEP" && cp "$D"/cg/* "$CG_KEEP"/; fi
    # shellcheck disable=SC2016 # the backquotes are markdown
    printf -- '- inclusive Ir of: encoding + decoding `%s`; network threads `%s`; reading `%s`; worker 0 `%s`\n' "$ENC" "$NET" "$LOCAL" "$W0"
    echo "- totals include timely's progress tracking and scheduling, which grow with how often the workers step (timing, load), in both layouts; the other columns do not depend on timing, but encoding includes progress messages"
fi
