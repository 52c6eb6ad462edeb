#!/usr/bin/env bash
# Review R13d: split run (-w 2) against the sequential one (-w 1) when the big
# file changes during the run, and with a damaged gzip sibling.
# Usage: review/rev13d-cli.sh /path/to/tidemark   (debug build is fine)
set -u
B=${1:-target/debug/tidemark}
D=$(mktemp -d /tmp/rev13d.XXXX); cd "$D"; mkdir -p logs/big
gen() { python3 - "$@" <<'PY'
import sys, datetime
out, n, t0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(out, 'w') as f:
    for i in range(n):
        ts = datetime.datetime.fromtimestamp(t0 + i // 40, datetime.timezone.utc).strftime('%d/%b/%Y:%H:%M:%S +0000')
        f.write(f'10.0.0.1 - - [{ts}] "GET /x HTTP/1.1" 200 {i} "-" "test" 0.001\n')
PY
}
cat > job.toml <<TOML
name = "split"
[source]
kind = "file"
include = ["$D/logs/*/access.log"]
split_from = "4KiB"
[parse]
format = "nginx"
[window]
size = "1m"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[sink]]
kind = "stdout"
series = "hosts"
TOML
gen orig.log 400000 1795168800; gen extra.log 50000 1795178800; gen small.log 2000 1795168800
run() { # $1 = case, $2 = workers, $3 = action during the run
  ( "$B" run job.toml --until-eof -w "$2" > "out.$1.$2" 2> "err.$1.$2"; echo $? > "rc.$1.$2" ) &
  sleep 0.4; eval "$3"; wait
  echo "== $1 -w $2: exit $(cat rc.$1.$2), $(wc -l < out.$1.$2) output lines"
  grep -E "lines read|truncations|could not|error|gone" "err.$1.$2" | cut -c1-220
}
for w in 1 2; do cp orig.log logs/big/access.log; run grow $w "cat extra.log >> logs/big/access.log"; done
for w in 1 2; do cp orig.log logs/big/access.log; run shrink $w "truncate -s 1000000 logs/big/access.log"; done
for w in 1 2; do rm -f logs/big/*; cp orig.log logs/big/access.log.1; cp extra.log logs/big/access.log; run vanish $w "rm logs/big/access.log"; done
rm -f logs/big/*; python3 -c "
import gzip; d=open('small.log','rb').read(); g=gzip.compress(d); open('logs/big/access.log.1.gz','wb').write(g[:len(g)//2])"
cp extra.log logs/big/access.log
for w in 1 2; do run damaged-gzip $w true; done
