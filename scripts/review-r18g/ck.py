# Resume differential (review R18g; copied from review-r18f, on this folder's fz.py cases): fz.py's rule-heavy cases, run in two parts
# with --state-dir (every log cut at a random line for part 1, completed for
# part 2), the parts run by A/A, A/B, B/A, B/B: the four outputs must be equal.
# Checkpoints hold read positions only, so a resume across the change must give
# what one binary gives.   python3 ck.py A B SEED N   (BASE=/tmp/r18f/ck)
import glob, os, random, shutil, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("BASE", "/tmp/r18g/ck")
import fz
A = sys.argv[1]; B = sys.argv[2]; seed0 = int(sys.argv[3]); n = int(sys.argv[4])
W = os.environ.get("W", "2")
def go(d, first, second):
    w = f"{d}/w_{first == A}{second == B}"
    shutil.rmtree(w, ignore_errors=True); shutil.copytree(d, w, ignore=shutil.ignore_patterns("w_*"))
    job = open(f"{w}/job.toml").read().replace(d + "/", w + "/"); open(f"{w}/job.toml", "w").write(job)
    rests = {}
    for f in glob.glob(f"{w}/logs/*/*.log"):
        lines = open(f, "rb").read().splitlines(keepends=True)
        c = random.Random(os.path.relpath(f, w)).randint(0, len(lines))
        rests[f] = b"".join(lines[c:]); open(f, "wb").write(b"".join(lines[:c]))
    rc1 = subprocess.run([first, "run", "job.toml", "--until-eof", "--state-dir", "st", "-w", W], cwd=w, capture_output=True, timeout=600)
    for f, rest in rests.items():
        open(f, "ab").write(rest)
    rc2 = subprocess.run([second, "run", "job.toml", "--until-eof", "--state-dir", "st", "-w", W], cwd=w, capture_output=True, timeout=600)
    out = open(f"{w}/out.jsonl", "rb").read() if os.path.exists(f"{w}/out.jsonl") else b""
    return (rc1.returncode, rc2.returncode, out), (rc1.stderr, rc2.stderr)
for seed in range(seed0, seed0 + n):
    d = fz.gen(seed)
    ref, e0 = go(d, A, A)
    bad = False
    for (x, y) in ((A, B), (B, A), (B, B)):
        got, e = go(d, x, y)
        if got != ref:
            print(f"DIFF seed={seed} {x == A and 'A' or 'B'}->{y == A and 'A' or 'B'} rc {ref[:2]} {got[:2]} len {len(ref[2])} {len(got[2])}", flush=True)
            open(f"{d}/err.txt", "wb").write(e0[0] + b"\n----\n" + e0[1] + b"\n=====\n" + e[0] + b"\n----\n" + e[1])
            bad = True; break
    if not bad:
        print(f"ok seed={seed} rc={ref[:2]} len={len(ref[2])}", flush=True); shutil.rmtree(d)
