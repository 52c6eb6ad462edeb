# shellcheck shell=bash
# Sourced by the benchmark scripts that run a job on a `tidemark cluster` on this machine
# (benches/cluster.sh, benches/kafka_e2e.sh): start 1 or 2 members, submit a job over the
# control API, measure from the submit until the output is complete.
#
# The sourcing script sets D (its temp folder), BIN (tidemark), HZ (getconf CLK_TCK),
# TIMEOUT (seconds a cluster run may take), POLL (seconds between looks at the output),
# and may set CLUSTER_ARGS (an array of arguments for every member, e.g.
# `--allow-kafka-brokers HOST:PORT`). start_cluster sets PIDS, API and PEER0.
PIDS=()
CLUSTER_ARGS=()
now() { date +%s.%N; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
sys_ticks() { awk '{ print $15 }' "/proc/$1/stat"; }
# Peak RSS (VmHWM) of process $1 in KiB.
peak_rss() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
# user+system ticks of process $1's threads named like one of the globs $2...: librdkafka's
# are `rdk:*` (rdk:main, rdk:broker…), timely's workers `timely:work-*`, its network
# threads `timely:send-*` and `timely:recv-*`. Threads that ended are not in it: an
# undercount, if any.
thread_ticks() {
    local pid=$1 t s=0 n c g
    shift
    for t in /proc/"$pid"/task/*; do
        c=$(cat "$t/comm" 2>/dev/null) || continue
        for g in "$@"; do
            # shellcheck disable=SC2053 # $g is a glob
            if [[ $c == $g ]]; then
                # The fields after the command name, which may hold spaces: utime, stime
                # are the 12th and 13th.
                n=$(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{ print $12 + $13 }')
                s=$((s + ${n:-0}))
                break
            fi
        done
    done
    echo "$s"
}

stop_members() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}

# Starts a cluster of $1 members (each with $2 workers) reading data set $3 ($4: a wrapper
# such as valgrind, may be empty); sets API, PEER0, PIDS. Member I's LOG_ROOT is $D/$3/mI
# (a file job reads its own folder with `${LOG_ROOT}`); every member may read $D/$3.
start_cluster() {
    local n=$1 w=$2 set=$3 wrap=$4 p
    rm -rf "$D/c"
    mkdir -p "$D/c"
    echo "bench-token-$$" > "$D/c/token"
    chmod 600 "$D/c/token"
    for p in $(seq 0 $((n - 1))); do
        local args=()
        if [ "$n" -gt 1 ]; then
            if [ "$p" = 0 ]; then
                # Member 0 connects to no one: its own line, port 0, is all it reads.
                printf '127.0.0.1:0\n127.0.0.1:0\n' > "$D/c/hosts-0"
            else
                printf '%s\n127.0.0.1:0\n' "$PEER0" > "$D/c/hosts-$p"
            fi
            args=(-n "$n" -p "$p" --hosts "$D/c/hosts-$p")
        fi
        [ "$p" = 0 ] && args+=(--api 127.0.0.1:0 --token-file "$D/c/token")
        # shellcheck disable=SC2086
        LOG_ROOT="$D/$set/m$p" ${wrap//@P@/$p} "$BIN" cluster "${args[@]}" -w "$w" \
            --state-dir "$D/c/state-$p" --allow-root "$D/$set" \
            --job-env LOG_ROOT "${CLUSTER_ARGS[@]}" >"$D/c/member-$p.log" 2>&1 &
        PIDS+=($!)
        local ok=
        for _ in $(seq 1 1200); do
            # (The member may not have opened its log yet.)
            if grep -qs "member $p of $n" "$D/c/member-$p.log"; then ok=1; break; fi
            sleep 0.1
        done
        [ -n "$ok" ] || { cat "$D/c/member-$p.log" >&2; exit 1; }
        if [ "$p" = 0 ] && [ "$n" -gt 1 ]; then
            PEER0=$(sed -n "s/.*peers connect to member 0 of $n on \(.*\)$/\1/p" "$D/c/member-0.log")
        fi
    done
    for _ in $(seq 1 1200); do grep -q 'control API on' "$D/c/member-0.log" && break; sleep 0.1; done
    API=$(sed -n 's/.*control API on http:\/\/\([^;]*\);.*/\1/p' "$D/c/member-0.log")
    [ -n "$API" ] || { cat "$D/c/member-0.log" >&2; exit 1; }
    for _ in $(seq 1 1200); do
        if curl -fs "http://$API/healthz" 2>/dev/null | grep -q "\"members\":$n"; then return 0; fi
        sleep 0.1
    done
    echo "the cluster did not become healthy" >&2
    cat "$D/c"/member-*.log >&2
    exit 1
}

# Member 0's side of the members' TCP connection: "bytes_sent bytes_received".
peer_bytes() {
    local port=${PEER0##*:}
    ss -tinH state established "( sport = :$port )" |
        awk '{ for (i = 1; i <= NF; i++) { if ($i ~ /^bytes_sent:/) { split($i, a, ":"); s += a[2] }
                                           if ($i ~ /^bytes_received:/) { split($i, b, ":"); r += b[2] } } }
             END { printf "%d %d\n", s, r }'
}

# Submits job file $2 to the running cluster and waits until its output (process 0's
# STATE/output/nginx.jsonl) holds $3 records; checks it equals reference $1, byte for byte
# or else up to the order of its records (MATCH is then "bytes" or "sorted"; any other
# difference fails). Prints "wall_s cpu0_s cpu1_s sys0_s sys1_s sent0 recv0 mid_s
# rss0_mib rss1_mib rdk0_s rdk1_s work0_s work1_s net0_s net1_s" (member 1's 0 for one
# member; mid_s: the wall until all but the last window's records are out; rss: peak RSS
# since the member started; CPU of the member's librdkafka threads (rdk), timely
# workers (work), timely network threads (net), see thread_ticks). If the sourcing script
# defines cluster_check, it is called every 20 polls (1 s at POLL=0.05): when it fails,
# the run is given up and "abandoned" printed instead (the caller decides what then).
measure_cluster() {
    local ref=$1 jobfile=$2 want=$3 out="$D/c/state-0/output/nginx.jsonl"
    local c0=() s0=() r0=() c1=() s1=() r1=() w0=() w1=() n0=() n1=() m=() p polls=0 b0=(0 0) b1=(0 0) t0 t1 tm='' got=0 mid
    mid=$(awk -v last="$(tail -1 "$ref" | cut -d'"' -f4)" -F'"' '$4 != last { n++ } END { print n + 0 }' "$ref")
    for p in "${PIDS[@]}"; do
        c0+=("$(cpu_ticks "$p")"); s0+=("$(sys_ticks "$p")"); r0+=("$(thread_ticks "$p" 'rdk:*')")
        w0+=("$(thread_ticks "$p" 'timely:work-*')"); n0+=("$(thread_ticks "$p" 'timely:send-*' 'timely:recv-*')")
    done
    [ "${#PIDS[@]}" = 2 ] && read -r -a b0 <<< "$(peer_bytes)"
    if [ -n "${ZERO:-}" ]; then
        # Under callgrind: count from here, not the members' start.
        for p in "${PIDS[@]}"; do callgrind_control -z "$p" >/dev/null 2>&1; done
    fi
    t0=$(now)
    TIDEMARK_API_TOKEN="bench-token-$$" "$BIN" job submit "$jobfile" --api "$API" >/dev/null
    while :; do
        [ -f "$out" ] && got=$(wc -l < "$out")
        [ -z "$tm" ] && [ "$got" -ge "$mid" ] && tm=$(now)
        [ "$got" -ge "$want" ] && break
        if awk -v a="$t0" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
            echo "the cluster wrote $got of $want records in ${TIMEOUT}s" >&2
            cat "$D/c"/member-*.log >&2
            exit 1
        fi
        for p in "${PIDS[@]}"; do
            kill -0 "$p" 2>/dev/null || { cat "$D/c"/member-*.log >&2; exit 1; }
        done
        if [ $((++polls % 20)) = 0 ] && declare -F cluster_check >/dev/null && ! cluster_check; then
            echo abandoned
            return 0
        fi
        sleep "$POLL"
    done
    t1=$(now)
    for p in "${PIDS[@]}"; do
        c1+=("$(cpu_ticks "$p")"); s1+=("$(sys_ticks "$p")"); r1+=("$(thread_ticks "$p" 'rdk:*')"); m+=("$(peak_rss "$p")")
        w1+=("$(thread_ticks "$p" 'timely:work-*')"); n1+=("$(thread_ticks "$p" 'timely:send-*' 'timely:recv-*')")
    done
    [ "${#PIDS[@]}" = 2 ] && read -r -a b1 <<< "$(peer_bytes)"
    # MATCH is for the sourcing script.
    # shellcheck disable=SC2034
    if cmp -s "$out" "$ref"; then
        MATCH=bytes
    elif cmp -s <(sort "$out") <(sort "$ref"); then
        MATCH=sorted
        echo "note: cluster output = run's output up to record order" >&2
    else
        echo "the cluster's output differs from run --until-eof's:" >&2
        diff <(sort "$out") <(sort "$ref") | head >&2 || true
        exit 1
    fi
    awk -v t0="$t0" -v t1="$t1" -v tm="$tm" -v hz="$HZ" \
        -v a0="${c0[0]}" -v a1="${c1[0]}" -v b0="${c0[1]:-0}" -v b1="${c1[1]:-0}" \
        -v x0="${s0[0]}" -v x1="${s1[0]}" -v y0="${s0[1]:-0}" -v y1="${s1[1]:-0}" \
        -v sent=$((b1[0] - b0[0])) -v recv=$((b1[1] - b0[1])) \
        -v m0="${m[0]}" -v m1="${m[1]:-0}" \
        -v k0=$((r1[0] - r0[0])) -v k1=$((${r1[1]:-0} - ${r0[1]:-0})) \
        -v v0=$((w1[0] - w0[0])) -v v1=$((${w1[1]:-0} - ${w0[1]:-0})) \
        -v e0=$((n1[0] - n0[0])) -v e1=$((${n1[1]:-0} - ${n0[1]:-0})) \
        'BEGIN { printf "%.3f %.3f %.3f %.3f %.3f %d %d %.3f %.1f %.1f %.3f %.3f %.3f %.3f %.3f %.3f\n", t1 - t0, (a1 - a0) / hz, (b1 - b0) / hz,
                 (x1 - x0) / hz, (y1 - y0) / hz, sent, recv, tm - t0, m0 / 1024, m1 / 1024, k0 / hz, k1 / hz,
                 v0 / hz, v1 / hz, e0 / hz, e1 / hz }'
}
