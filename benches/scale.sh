#!/usr/bin/env bash
# Issue 13's figures on today's code, each a median of RUNS runs:
#  1. nginx job (jobs/examples/nginx.toml's metrics and rules, jsonl sink, series = "all"),
#     ONE host, one file of LINES1 lines (~2.1 M), `run --until-eof -w 1`: lines per
#     CPU-second (user+sys of tidemark, /usr/bin/time);
#  2. the same job over HOSTS hosts x 60 minutes (HOSTS x 60 x LPM2 lines, ~2.15 M),
#     `--until-eof -w 1`: peak RSS (MiB) and CPU µs per line;
#  3. live follow (no --until-eof) of one file that a writer (python3) appends RATE lines/s
#     to, BATCH lines per write() (default 10; 1 = nginx without `buffer=`), event times = now: tidemark's CPU as % of a core
#     over FOLLOW seconds (utime+stime from /proc/PID/stat, after WARM seconds of warm-up).
#     Then one run of LAT_SECS: window latency = when a window's first record shows up in
#     the jsonl file minus (window end + max_out_of_orderness), median over the windows;
#  4. one counter over item 1's file with a label of ~100k distinct values (remote_addr
#     rewritten to one of VALUES addresses, drawn uniformly: ~30k series per 1-minute window)
#     against the same counter labelled by status only: CPU ratio;
#  5. item 1's file with `-w 2` against `-w 1`: wall ratio.
#  6. `tidemark replay` of item 2's files over their whole hour (2026-11-20T10:00Z, the
#     generator's start, to 11:00Z), `-w 1` and `-w 2` (runs alternating): peak RSS (MiB)
#     and CPU µs per line; the output is checked byte-identical between the two.
# Runs of the variants being compared alternate. Item order: 1+5, 2, 6, 4, 3.
#
#   benches/scale.sh                       # builds the release binaries first
#   RUNS=5 FOLLOW=60 benches/scale.sh > results.md
#   ITEMS="1 2 5" benches/scale.sh         # a subset (1 and 5 share their runs)
#   ITEMS="6" benches/scale.sh             # replay only (generates item 2's files)
#   ROTATIONS=3 GZIP_FROM=2 ITEMS="1 2" benches/scale.sh   # the throughput bench's layout
#   TIDEMARK_BIN=path/to/tidemark GEN=path/to/gen-nginx-logs benches/scale.sh
#
# Prints a markdown report on stdout; progress on stderr. Needs /usr/bin/time, python3, awk.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
ITEMS=${ITEMS:-"1 2 3 4 5 6"}
LPM1=${LPM1:-35000}      # item 1: 1 host x 60 min x 35,000 = 2.1 M lines
HOSTS=${HOSTS:-2000}     # item 2: 2,000 hosts x 60 min x 18 = 2.16 M lines
LPM2=${LPM2:-18}
RATE=${RATE:-2000}       # item 3: lines/s
BATCH=${BATCH:-10}       # item 3: lines per write(): 200 writes/s, near the issue's ~190 rescans/s (1 = nginx unbuffered)
WARM=${WARM:-5}
FOLLOW=${FOLLOW:-30}
LAT_SECS=${LAT_SECS:-130} # item 3: one more live run this long for the window latency (0 = skip)
VALUES=${VALUES:-100000} # item 4
ROTATIONS=${ROTATIONS:-0} # items 1, 2, 5: rotated siblings per host (0 = one file per host)
GZIP_FROM=${GZIP_FROM:-0} # siblings numbered >= this are gzipped (0 = none)
if [ -z "${TIDEMARK_BIN:-}" ] || [ -z "${GEN:-}" ]; then
    (cd "$ROOT" && cargo build --release -p tidemark -p tidemark-bench \
        --bin tidemark --bin gen-nginx-logs >&2)
fi
REL=${CARGO_TARGET_DIR:-$ROOT/target}/release
BIN=${TIDEMARK_BIN:-$REL/tidemark}
GEN=${GEN:-$REL/gen-nginx-logs}
D=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-scale-bench.XXXXXX")
TPID=
WPID=
cleanup() {
    for p in $WPID $TPID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$D"
}
trap cleanup EXIT
has() { case " $ITEMS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { cut -d' ' -f"$2" "$1" | median; }
lines_of() { sed -n 's/.*lines: \([0-9]*\).*/\1/p'; }

# shellcheck source=benches/nginx_job.sh
. "$ROOT/benches/nginx_job.sh"

# One counter over the files $1 labelled by $2, a jsonl sink of every series.
label_job() {
    cat <<EOF
name = "label"
[source]
kind = "file"
include = ["$1"]
host = { path_regex = '/(?P<host>web-[0-9]+)/' }
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
idle_timeout = "30s"
[[metric]]
name = "http_requests_total"
kind = "counter"
labels = ["$2"]
[[sink]]
kind = "jsonl"
path = "$D/out/out.jsonl"
series = "all"
EOF
}

# One measured run of job file $1 with $2 workers: prints "cpu_s wall_s maxrss_kib records".
measure() {
    rm -rf "$D/out"
    /usr/bin/time -f "%U %S %e %M" -o "$D/time" "$BIN" run "$1" --until-eof -w "$2" \
        >/dev/null 2>"$D/stderr" || { cat "$D/stderr" >&2; exit 1; }
    recs=$(wc -l < "$D/out/out.jsonl")
    awk -v r="$recs" '{ printf "%.3f %.3f %d %d\n", $1 + $2, $3, $4, r }' "$D/time"
}

echo "# Issue 13 baseline (benches/scale.sh)"
echo
echo "- ROTATIONS=$ROTATIONS GZIP_FROM=$GZIP_FROM BATCH=$BATCH; $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, tidemark $("$BIN" --version 2>/dev/null | head -1), git $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'); RUNS=$RUNS (medians)"

if has 1 || has 4 || has 5; then
    echo "generating 1 host x 60 min x $LPM1 lines/min, one file, in $D/one" >&2
    LINES1=$("$GEN" --dir "$D/one" --hosts 1 --minutes 60 --lines-per-minute "$LPM1" \
        --rotations "$ROTATIONS" --gzip-from "$GZIP_FROM" --disorder-secs 3 --seed 42 | lines_of)
    nginx_job "$D/one/*/access.log*" "kind = \"jsonl\"
path = \"$D/out/out.jsonl\"" > "$D/one.toml"
fi

if has 1 || has 5; then
    : > "$D/w1.runs"; : > "$D/w2.runs"
    for i in $(seq "$RUNS"); do
        echo "items 1+5, run $i/$RUNS: -w 1, -w 2" >&2
        measure "$D/one.toml" 1 >> "$D/w1.runs"
        if has 5; then measure "$D/one.toml" 2 >> "$D/w2.runs"; fi
    done
    cpu1=$(col "$D/w1.runs" 1); wall1=$(col "$D/w1.runs" 2); rss1=$(col "$D/w1.runs" 3)
    echo
    echo "## 1. one host, $LINES1 lines, nginx job, \`run --until-eof -w 1\`"
    echo
    echo "| CPU s | wall s | lines/CPU-s | peak RSS MiB |"
    echo "|---:|---:|---:|---:|"
    awk -v c="$cpu1" -v w="$wall1" -v r="$rss1" -v l="$LINES1" \
        'BEGIN { printf "| %.2f | %.2f | %.0f | %.1f |\n", c, w, l / c, r / 1024 }'
    echo
    echo "- every run (cpu wall rss-KiB records): $(tr '\n' ';' < "$D/w1.runs")"
    if has 5; then
        cpu2=$(col "$D/w2.runs" 1); wall2=$(col "$D/w2.runs" 2); rss2=$(col "$D/w2.runs" 3)
        echo
        echo "## 5. the same file, \`-w 2\` against \`-w 1\` (runs alternating)"
        echo
        echo "| workers | wall s | CPU s | peak RSS MiB |"
        echo "|---:|---:|---:|---:|"
        awk -v w="$wall1" -v c="$cpu1" -v r="$rss1" 'BEGIN { printf "| 1 | %.2f | %.2f | %.1f |\n", w, c, r / 1024 }'
        awk -v w="$wall2" -v c="$cpu2" -v r="$rss2" 'BEGIN { printf "| 2 | %.2f | %.2f | %.1f |\n", w, c, r / 1024 }'
        echo
        awk -v a="$wall2" -v b="$wall1" 'BEGIN { printf "- wall(-w 2) / wall(-w 1) = %.2f\n", a / b }'
        echo "- every -w 2 run (cpu wall rss-KiB records): $(tr '\n' ';' < "$D/w2.runs")"
    fi
fi

if has 2; then
    echo "generating $HOSTS hosts x 60 min x $LPM2 lines/min in $D/many" >&2
    LINES2=$("$GEN" --dir "$D/many" --hosts "$HOSTS" --minutes 60 --lines-per-minute "$LPM2" \
        --rotations "$ROTATIONS" --gzip-from "$GZIP_FROM" --disorder-secs 3 --seed 42 | lines_of)
    nginx_job "$D/many/*/access.log*" "kind = \"jsonl\"
path = \"$D/out/out.jsonl\"" > "$D/many.toml"
    : > "$D/many.runs"
    for i in $(seq "$RUNS"); do
        echo "item 2, run $i/$RUNS" >&2
        measure "$D/many.toml" 1 >> "$D/many.runs"
    done
    cpu=$(col "$D/many.runs" 1); wall=$(col "$D/many.runs" 2); rss=$(col "$D/many.runs" 3)
    echo
    echo "## 2. $HOSTS hosts x 60 min, $LINES2 lines, nginx job, \`run --until-eof -w 1\`"
    echo
    echo "| CPU s | wall s | CPU µs/line | peak RSS MiB |"
    echo "|---:|---:|---:|---:|"
    awk -v c="$cpu" -v w="$wall" -v r="$rss" -v l="$LINES2" \
        'BEGIN { printf "| %.2f | %.2f | %.2f | %.1f |\n", c, w, 1e6 * c / l, r / 1024 }'
    echo
    echo "- every run (cpu wall rss-KiB records): $(tr '\n' ';' < "$D/many.runs")"
    has 6 || rm -rf "$D/many"
fi

if has 6; then
    if [ ! -d "$D/many" ]; then
        echo "generating $HOSTS hosts x 60 min x $LPM2 lines/min in $D/many" >&2
        LINES2=$("$GEN" --dir "$D/many" --hosts "$HOSTS" --minutes 60 --lines-per-minute "$LPM2" \
            --rotations "$ROTATIONS" --gzip-from "$GZIP_FROM" --disorder-secs 3 --seed 42 | lines_of)
        nginx_job "$D/many/*/access.log*" "kind = \"jsonl\"
path = \"$D/out/out.jsonl\"" > "$D/many.toml"
    fi
    # One replay of the hour with $1 workers into $D/replay-$1.jsonl: "cpu_s wall_s maxrss_kib records".
    replay_run() {
        /usr/bin/time -f "%U %S %e %M" -o "$D/time" "$BIN" replay "$D/many.toml" \
            --from 2026-11-20T10:00:00Z --to 2026-11-20T11:00:00Z -w "$1" \
            --output "$D/replay-$1.jsonl" --overwrite --progress none \
            >/dev/null 2>"$D/stderr" || { cat "$D/stderr" >&2; exit 1; }
        recs=$(wc -l < "$D/replay-$1.jsonl")
        awk -v r="$recs" '{ printf "%.3f %.3f %d %d\n", $1 + $2, $3, $4, r }' "$D/time"
    }
    : > "$D/replay1.runs"; : > "$D/replay2.runs"
    for i in $(seq "$RUNS"); do
        echo "item 6, run $i/$RUNS: replay -w 1, -w 2" >&2
        replay_run 1 >> "$D/replay1.runs"
        replay_run 2 >> "$D/replay2.runs"
        cmp -s "$D/replay-1.jsonl" "$D/replay-2.jsonl" || { echo "item 6: -w 1 and -w 2 differ" >&2; exit 1; }
    done
    echo
    echo "## 6. \`replay\` of item 2's $HOSTS hosts x 60 min ($LINES2 lines) over the whole hour"
    echo
    echo "| workers | CPU s | wall s | CPU µs/line | peak RSS MiB |"
    echo "|---:|---:|---:|---:|---:|"
    for w in 1 2; do
        awk -v w="$w" -v c="$(col "$D/replay$w.runs" 1)" -v t="$(col "$D/replay$w.runs" 2)" \
            -v r="$(col "$D/replay$w.runs" 3)" -v l="$LINES2" \
            'BEGIN { printf "| %d | %.2f | %.2f | %.2f | %.1f |\n", w, c, t, 1e6 * c / l, r / 1024 }'
    done
    echo
    echo "- outputs of -w 1 and -w 2 byte-identical; every run (cpu wall rss-KiB records): -w 1: $(tr '\n' ';' < "$D/replay1.runs") -w 2: $(tr '\n' ';' < "$D/replay2.runs")"
    rm -rf "$D/many"
fi

if has 4; then
    echo "item 4: rewriting remote_addr to one of $VALUES values" >&2
    mkdir -p "$D/wide/web-1"
    [ "$ROTATIONS" = 0 ] || { echo "item 4 needs ROTATIONS=0" >&2; exit 1; }
    awk -v n="$VALUES" 'BEGIN { srand(42) }
        { v = int(rand() * n); i = index($0, " ")
          print "10." int(v / 65536) "." int(v / 256) % 256 "." v % 256 substr($0, i) }' \
        "$D/one/web-1/access.log" > "$D/wide/web-1/access.log"
    distinct=$(cut -d' ' -f1 "$D/wide/web-1/access.log" | sort -u | wc -l)
    label_job "$D/wide/*/access.log" remote_addr > "$D/wide.toml"
    label_job "$D/wide/*/access.log" status > "$D/status.toml"
    : > "$D/wide.runs"; : > "$D/status.runs"
    for i in $(seq "$RUNS"); do
        echo "item 4, run $i/$RUNS: status, remote_addr" >&2
        measure "$D/status.toml" 1 >> "$D/status.runs"
        measure "$D/wide.toml" 1 >> "$D/wide.runs"
    done
    echo
    echo "## 4. a label with $distinct distinct values against status only ($LINES1 lines, one counter, \`-w 1\`)"
    echo
    echo "| label | CPU s | wall s | peak RSS MiB | records (series-windows) |"
    echo "|---|---:|---:|---:|---:|"
    for s in status wide; do
        awk -v s="$s" -v c="$(col "$D/$s.runs" 1)" -v w="$(col "$D/$s.runs" 2)" \
            -v r="$(col "$D/$s.runs" 3)" -v n="$(col "$D/$s.runs" 4)" \
            'BEGIN { printf "| %s | %.2f | %.2f | %.1f | %d |\n", (s == "wide" ? "remote_addr" : "status"), c, w, r / 1024, n }'
    done
    echo
    awk -v a="$(col "$D/wide.runs" 1)" -v b="$(col "$D/status.runs" 1)" -v n="$(col "$D/wide.runs" 4)" \
        'BEGIN { printf "- CPU ratio remote_addr / status = %.1fx (%.0f series per window on average)\n", a / b, n / 60 }'
    echo "- every run (cpu wall rss-KiB records): status: $(tr '\n' ';' < "$D/status.runs") remote_addr: $(tr '\n' ';' < "$D/wide.runs")"
fi

if has 3; then
    mkdir -p "$D/live/web-1"
    nginx_job "$D/live/*/access.log" "kind = \"jsonl\"
path = \"$D/out/out.jsonl\"" > "$D/live.toml"
    cat > "$D/writer.py" <<'EOF'
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
EOF
    ticks=$(getconf CLK_TCK)
    cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
    : > "$D/live.runs"
    for i in $(seq "$RUNS"); do
        echo "item 3, run $i/$RUNS: live follow at $RATE lines/s, ${WARM}s warm-up + ${FOLLOW}s" >&2
        rm -rf "$D/out" "$D/live/web-1/access.log"
        : > "$D/live/web-1/access.log"
        "$BIN" run "$D/live.toml" -w 1 --no-status >/dev/null 2>"$D/live.stderr" &
        TPID=$!
        sleep 1
        python3 "$D/writer.py" "$D/live/web-1/access.log" "$RATE" $((WARM + FOLLOW + 2)) "$BATCH" &
        WPID=$!
        sleep "$WARM"
        c0=$(cpu_ticks "$TPID"); t0=$(date +%s.%N)
        sleep "$FOLLOW"
        c1=$(cpu_ticks "$TPID"); t1=$(date +%s.%N)
        wait "$WPID"; WPID=
        kill -INT "$TPID"; wait "$TPID" || true; TPID=
        written=$(wc -l < "$D/live/web-1/access.log")
        awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$ticks" -v w="$written" \
            'BEGIN { printf "%.2f %.2f %d\n", 100 * (b - a) / hz / (e - s), (b - a) / hz, w }' >> "$D/live.runs"
    done
    echo
    echo "## 3. live follow of one file at $RATE lines/s ($BATCH line(s) per write()), nginx job, \`run -w 1\`"
    echo
    echo "| CPU % of a core over ${FOLLOW}s | CPU s in the window |"
    echo "|---:|---:|"
    awk -v p="$(col "$D/live.runs" 1)" -v c="$(col "$D/live.runs" 2)" 'BEGIN { printf "| %.1f | %.2f |\n", p, c }'
    echo
    echo "- every run (cpu% cpu-s lines-written): $(tr '\n' ';' < "$D/live.runs")"
    if [ "$LAT_SECS" -gt 0 ]; then
        # Window latency: the wall time at which a window's first record shows up in the
        # jsonl output, minus the wall time at which the watermark allows the window to
        # close (its end + max_out_of_orderness = 5 s; the writer stamps lines with "now").
        cat > "$D/watch.py" <<'EOF2'
import calendar, json, os, sys, time
path, secs = sys.argv[1], float(sys.argv[2])
start = time.time(); pos = 0; buf = b''; seen = {}
while time.time() - start < secs:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        size = 0
    if size > pos:
        now = time.time()
        with open(path, 'rb') as f:
            f.seek(pos); buf += f.read(size - pos)
        pos = size
        *lines, buf = buf.split(b'\n')
        for l in lines:
            end = json.loads(l)['end']
            if end not in seen:
                seen[end] = now - (calendar.timegm(time.strptime(end, '%Y-%m-%dT%H:%M:%SZ')) + 5)
    time.sleep(0.002)
for end, lat in sorted(seen.items()):
    print(f'{end} {1000 * lat:.0f}')
EOF2
        echo "item 3: window latency, one live run of ${LAT_SECS}s" >&2
        rm -rf "$D/out" "$D/live/web-1/access.log"
        : > "$D/live/web-1/access.log"
        "$BIN" run "$D/live.toml" -w 1 --no-status >/dev/null 2>"$D/live.stderr" &
        TPID=$!
        sleep 1
        python3 "$D/writer.py" "$D/live/web-1/access.log" "$RATE" "$LAT_SECS" "$BATCH" &
        WPID=$!
        python3 "$D/watch.py" "$D/out/out.jsonl" "$LAT_SECS" > "$D/lat"
        wait "$WPID"; WPID=
        kill -INT "$TPID"; wait "$TPID" || true; TPID=
        if [ -s "$D/lat" ]; then
            echo "- window latency (first record in the jsonl file after window end + 5 s), median of $(wc -l < "$D/lat") windows: $(cut -d' ' -f2 "$D/lat" | median) ms; each (window end, ms): $(tr '\n' ';' < "$D/lat")"
        else
            echo "- window latency: no window closed in ${LAT_SECS}s"
        fi
    else
        echo "- window latency: not measured (LAT_SECS=0)"
    fi
    echo "- tidemark's last summary: $(grep -E '^(lines read|windows emitted)' "$D/live.stderr" | tr '\n' ';')"
fi
