#!/usr/bin/env python3
"""Runs a command and prints its wall time and each thread's CPU seconds.

Usage: benches/thread_cpu.py tidemark run job.toml --until-eof -w 2

Samples /proc/PID/task/*/stat (utime + stime) every 20 ms until the command
exits, and prints `wall W threads NAME=CPU ...` for the threads that used at
least 0.05 s (the last sample of each; up to 20 ms short). Per-thread CPU does
not depend on how loaded the machine is, unlike wall time: on a busy machine
(the kernel shares the CPU per session, not per thread) it shows what `-w 2`
would give on idle cores — the busiest worker's CPU is the critical path.
"""
import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def sample(pid, last):
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        name = s[s.index("(") + 1 : s.rindex(")")]
        fields = s[s.rindex(")") + 2 :].split()
        last[tid] = (name, (int(fields[11]) + int(fields[12])) / TICK)


def main():
    t0 = time.time()
    p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = {}
    while p.poll() is None:
        sample(p.pid, last)
        time.sleep(0.02)
    wall = time.time() - t0
    if p.returncode != 0:
        sys.exit(f"exit status {p.returncode}: {' '.join(sys.argv[1:])}")
    busy = sorted(((c, n) for n, c in last.values() if c >= 0.05), reverse=True)
    print(f"wall {wall:.2f} threads " + " ".join(f"{n}={c:.2f}" for c, n in busy))


if __name__ == "__main__":
    main()
