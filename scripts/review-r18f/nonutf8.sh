#!/bin/sh
# Review R18f: label values that are not UTF-8 (logfmt lines with raw bytes),
# gauges with 1e308 / -0 / 1e16, rules grouping by that label: A and B with
# -w 1/2/3 must print the same bytes.   nonutf8.sh A B [DIR]
set -e
A=$1; B=$2; D=${3:-/tmp/r18f/nu}
rm -rf "$D"; mkdir -p "$D/logs/a" "$D/logs/b"
python3 - "$D" <<'EOF'
import random, sys
d = sys.argv[1]; r = random.Random(5)
t0 = 1700000000 - 1700000000 % 60
vals = [b"ok", b"\xff", b"\xfe\xff", b"caf\xc3\xa9", b"caf\xc3", b"", b"\xc3\xa9", b"a\xffb"]
for g in "ab":
    with open(f"{d}/logs/{g}/f.log", "wb") as f:
        for i in range(2000):
            f.write(b"time=%d h=h%d st=%s v=%s\n" % (t0 + i // 10, r.randint(0, 20), r.choice(vals),
                    r.choice([b"1e308", b"-0", b"0.1", b"1e16", b"1", b"-1e308"])))
rules = [("gs", "sum by (st) (g)"), ("ga", "avg without (host) (g)"), ("gm", "max by (st) (g)"),
         ("cc", "count by (st) (c)"), ("cs", "sum(c)")]
job = f'''name = "j"
[source]
kind = "file"
include = ["{d}/logs/*/*.log"]
host = {{ field = "h" }}
[parse]
format = "logfmt"
timestamp = {{ field = "time", format = "epoch_seconds" }}
[window]
size = "1m"
max_out_of_orderness = "1m"
[[metric]]
name = "g"
kind = "gauge"
field = "v"
labels = ["st"]
[[metric]]
name = "c"
kind = "counter"
labels = ["st"]
''' + "".join(f"[[rule]]\nrecord = \"{n}\"\nexpr = '{e}'\n" for n, e in rules) + f'''[[sink]]
kind = "jsonl"
path = "{d}/out.jsonl"
series = "all"
'''
open(f"{d}/job.toml", "w").write(job)
EOF
cd "$D"
for b in "$A" "$B"; do for w in 1 2 3; do
  rm -f out.jsonl; "$b" run job.toml --until-eof -w $w >/dev/null 2>err.txt || true
  echo "$(basename "$b") -w $w $(md5sum < out.jsonl)"
done; done
