#!/bin/bash
# usage: mutants.sh REF MUT SEED0 N   (review R18g)
# MUT: a debug build with the mutants of README.md switched by TM_MUT; each is
# run through fz.py against REF (-w 1, run only): how many seeds tell it apart.
here=$(dirname "$(readlink -f "$0")")
for m in none nopermute parkmin skipmore; do
  out=$(TM_MUT=$m BASE=/tmp/r18g/mut-$m WS=${WS:-1} REPLAY=0 python3 "$here/fz.py" "$1" "$2" "$3" "$4")
  echo "$m: $(echo "$out" | grep -c DIFF) of $4 seeds differ"
  echo "$out" | grep DIFF | head -5
done
