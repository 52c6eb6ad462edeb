#!/bin/bash
# usage: ab.sh JOB BIN_A BIN_B [args]: runs both, compares sorted outputs and stats
cd /tmp/rev13a-e2e; J=$1; A=$2; B=$3; shift 3
for n in A B; do bin=${!n}; sed "s#OUT\.jsonl#OUT-$n.jsonl#" $J > run-$n.toml; out=$(grep -o '/tmp/[^"]*OUT-[AB].jsonl' run-$n.toml); rm -f $out; $bin run run-$n.toml --until-eof --no-status "$@" > $n.stdout 2> $n.stderr; echo "$n rc=$? lines=$(wc -l < $out)"; sort $out > $n.sorted; done
cmp A.sorted B.sorted && echo OUTPUT-IDENTICAL
diff <(grep -v WARN A.stderr | grep -v jsonl) <(grep -v WARN B.stderr | grep -v jsonl) && echo STATS-IDENTICAL
