# Copied from branch rev17s (scripts/review-r17s/rot.py) for review R18g: run with
# H=40 SRCX="max_open_files = 2" (more groups than descriptors: park_one_ahead).
import json, os, random, subprocess, sys, time, shutil, signal
# usage: rot.py BIN SEED DIR T0 [kinds]
# A followed job; each host's live file gets lines appended and is rotated while
# followed (rename, copytruncate, copytruncate rewritten to the same size at once).
# The writer pauses around each rotation, so nothing may be lost: the total count
# must equal the lines written.
bin_ = sys.argv[1]; seed = int(sys.argv[2]); d = sys.argv[3]; t0 = int(sys.argv[4])
kinds = sys.argv[5].split(",") if len(sys.argv) > 5 else ["rename", "copytrunc", "rewrite_same", "none", "none"]
shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
r = random.Random(seed)
H = int(os.environ.get("H", "4"))
for h in range(H): os.makedirs(f"{d}/logs/h{h}")
job = f'''name = "j"
[source]
kind = "file"
include = ["{d}/logs/*/access.log{os.environ.get('INC', '')}"]
host = {{ path_regex = "/logs/(?P<host>h[0-9]+)/" }}
poll_interval = "{r.choice(["20ms","50ms","200ms"])}"
read_chunk = "{r.choice(["4KiB","64KiB"])}"
{os.environ.get("SRCX", "")}
[parse]
format = "json"
timestamp = {{ field = "time", format = "epoch_seconds" }}
[window]
size = "1m"
max_out_of_orderness = "1h"
idle_timeout = "{os.environ.get('IDLE', '1h')}"
max_clock_skew = "1000000h"
max_clock_lag = "1000000h"
[[metric]]
name = "hits"
kind = "counter"
labels = []
[[sink]]
kind = "jsonl"
path = "{d}/out.jsonl"
series = "all"
'''
open(f"{d}/job.toml", "w").write(job)
SEQ = [0]
def line(t, padn):
    # a unique first field: a file's first bytes identify it, as real logs' do
    SEQ[0] += 1
    return json.dumps({"q": "%08x" % SEQ[0], "time": t, "pad": "p" * padn}) + "\n"
p = subprocess.Popen([bin_, "run", "job.toml", "--no-status"], cwd=d, stderr=open(f"{d}/err.txt", "w"))
written = 0
log = open(f"{d}/events.txt", "w")
gens = [0] * H
t = t0
live = lambda h: f"{d}/logs/h{h}/access.log"
for h in range(H):
    open(live(h), "w").close()
time.sleep(0.6)
for step in range(int(os.environ.get("STEPS", "60"))):
    h = r.randrange(H)
    k = r.choice(kinds)
    if k != "none" and os.path.getsize(live(h)) > 0:
        # shift generations: .N -> .N+1
        for g in range(gens[h], 0, -1):
            os.rename(f"{live(h)}.{g}", f"{live(h)}.{g+1}")
        if k == "dateext":
            os.rename(live(h), live(h) + f"-2026{step:04d}")
            open(live(h), "w").close() if r.random() < 0.5 else None
            gens[h] -= 1  # no numbered sibling made: undo the shift below
            for g in range(1, gens[h] + 2):
                os.rename(f"{live(h)}.{g+1}", f"{live(h)}.{g}")
        elif k == "rename":
            os.rename(live(h), live(h) + ".1")
            open(live(h), "w").close() if r.random() < 0.5 else None
        elif k in ("copytrunc", "rewrite_same"):
            shutil.copyfile(live(h), live(h) + ".1")
            size = os.path.getsize(live(h))
            if k == "copytrunc":
                os.truncate(live(h), 0)
            else:
                # truncate and write new lines, exactly as long as the old content
                body = ""
                while size - len(body) > 60:
                    n = min(r.randint(0, 200), size - len(body) - 60)
                    body += line(t, max(n, 0)); written += 1
                rest = size - len(body)
                # one last line of exactly `rest` bytes: {"time": T, "pad": "..."}\n
                base = len(line(t, 0))
                if rest >= base:
                    body += line(t, rest - base); written += 1
                else:
                    body += " " * (rest - 1) + "\n"  # a blank-ish line (malformed, not counted)
                assert len(body) == size, (len(body), size)
                with open(live(h), "r+") as f:
                    f.truncate(0); f.write(body)
        gens[h] += 1
        log.write(f"{step} h{h} {k}\n")
        time.sleep(r.choice([0, 0.01, 0.1]))
    n = r.randint(1, 40)
    with open(live(h), "a") as f:
        for _ in range(n):
            t += r.choice([0, 0, 1])
            f.write(line(t, r.choice([0, 10, 100, 3000]))); written += 1
    time.sleep(r.choice([0, 0, 0.01, 0.05, 0.2]))
time.sleep(1.0)
for h in range(H):
    with open(live(h), "a") as f: f.write(json.dumps({"time": t + 100000, "pad": "end"}) + "\n" + json.dumps({"time": t + 100001, "pad": "end"}) + "\n")
time.sleep(2.5)
p.send_signal(signal.SIGTERM); p.wait(timeout=60)
got = 0
for l in open(f"{d}/out.jsonl"):
    rec = json.loads(l)
    got += rec.get("value", 0) if isinstance(rec.get("value"), (int, float)) else 0
print(f"seed={seed} written={written} got={got} {'OK' if got == written else 'MISMATCH'} rc={p.returncode}")
