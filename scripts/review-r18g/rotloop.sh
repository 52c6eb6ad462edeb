#!/bin/bash
# usage: rotloop.sh BIN TAG SEED0 N [kinds]   (review R18g; from rev17s' rotloop.sh)
# rot.py with many groups and few descriptors: H (default 40) groups,
# max_open_files = 2, so groups behind take descriptors from groups ahead
# (park_one_ahead) while files rotate. Total counted must equal lines written.
mkdir -p /tmp/r18g/rot; cd /tmp/r18g/rot
here=$(dirname "$(readlink -f "$0")")
for s in $(seq $3 $(($3+$4-1))); do
  T0=$(( $(date +%s) - 3000 ))
  out=$(H=${H:-40} STEPS=${STEPS:-150} SRCX="max_open_files = 2" timeout 300 python3 "$here/rot.py" $1 $s /tmp/r18g/rot/r$2 $T0 $5 2>&1 | tail -1)
  echo "$2 $out"
  case "$out" in *MISMATCH*|*rror*) cp -r /tmp/r18g/rot/r$2 /tmp/r18g/rot/keep-$2-$s;; esac
done
