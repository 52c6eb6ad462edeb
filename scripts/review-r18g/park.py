# park_one_ahead differential (review R18g, 23a0cd2: holders taken from a heap
# instead of a sorted Vec). In a finite run the outputs cannot show which group
# pacing closes (windows wait for the slowest group), but with one worker the
# run is deterministic and its summary counts the decisions: files reopened,
# turns that waited for a descriptor, bytes read. fz.py's cases with
# max_open_files set to 4..64 and at least 50 groups, run -w 1 by A and B:
# those summary lines (and the output) must be equal. A mutant popping the
# nearest holder first (mutants.sh's `parkmin`) changes them.
#   python3 park.py A B SEED N     (BASE=/tmp/r18g/park)
import os, random, re, shutil, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("BASE", "/tmp/r18g/park")
import fz
KEEP = ("open files:", "turns a group waited", "bytes read:", "late lines", "files read:")
def run(bin_, d):
    if os.path.exists(f"{d}/out.jsonl"): os.remove(f"{d}/out.jsonl")
    p = subprocess.run([bin_, "run", "job.toml", "--until-eof", "-w", "1"], cwd=d, capture_output=True, timeout=900,
                       env=dict(os.environ, TM_MUT=os.environ.get("MUT_B", "none")) if bin_ == B else None)
    lines = [l for l in p.stderr.decode(errors="replace").splitlines() if l.startswith(KEEP)]
    out = open(f"{d}/out.jsonl", "rb").read() if os.path.exists(f"{d}/out.jsonl") else b""
    return p.returncode, lines, out
A = sys.argv[1]; B = sys.argv[2]; seed0 = int(sys.argv[3]); n = int(sys.argv[4])
done = 0
for seed in range(seed0, seed0 + n):
    d = fz.gen(seed)
    if len(os.listdir(d + "/logs")) < 50:
        shutil.rmtree(d); continue
    job = open(f"{d}/job.toml").read()
    job = re.sub(r"max_open_files = \d+\n", "", job)
    job = job.replace("[parse]", f"max_open_files = {random.Random(seed).choice([4, 8, 16, 64])}\n[parse]", 1)
    open(f"{d}/job.toml", "w").write(job)
    ra, rb = run(A, d), run(B, d)
    same = ra == rb
    print(f"{'ok' if same else 'DIFF'} seed={seed} rc={ra[0]} {' | '.join(ra[1][-2:])}", flush=True)
    if not same:
        print("  A:", ra[1], "\n  B:", rb[1], flush=True)
    else:
        shutil.rmtree(d)
