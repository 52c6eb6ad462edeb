# Two-process cluster differential (review R18f): fz.py's rule-heavy cases with
# the log groups split over two "machines" (even groups on member 0, odd on
# member 1), submitted to a `tidemark cluster -n 2 -w 2` of binary X; output
# compared with `run --until-eof` of binary A over all files, and the clusters
# of A and B with each other.   python3 cl.py A B SEED N   (BASE=/tmp/r18f/cl)
import glob, os, re, shutil, subprocess, sys, time, urllib.request
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("BASE", "/tmp/r18f/cl")
import fz
A = sys.argv[1]; B = sys.argv[2]; seed0 = int(sys.argv[3]); n = int(sys.argv[4])
TOKEN = "r18f-cluster-token-0123456789abcdef"
def prepare(d):
    job = open(f"{d}/job.toml").read()
    job = re.sub(r'max_out_of_orderness = "[^"]*"', 'max_out_of_orderness = "1h"\nidle_timeout = "1s"', job)
    job = job.replace('split_from = "4KiB"\n', '')
    # The reference reads the machines' copies: a gauge's tie between two files
    # of one host goes to the path that sorts last.
    # (Whatever the file pattern: `*.log` here, `f.log` in review R18g's cases.)
    ref = job.replace(f"{d}/out.jsonl", f"{d}/ref.jsonl").replace(f'include = ["{d}/logs/*/', f'include = ["{d}/machine-*/*/')
    open(f"{d}/ref.toml", "w").write(ref)
    # Rotated siblings (`f.log.1`, R18g's cases) are copied with their group.
    for f in glob.glob(f"{d}/logs/g*/f.log*"):
        g = int(f.split("/g")[-1].split("/")[0])
        m = f"{d}/machine-{g % 2}/g{g:04d}"
        os.makedirs(m, exist_ok=True); shutil.copy(f, f"{m}/{os.path.basename(f)}")
    for m in (0, 1): os.makedirs(f"{d}/machine-{m}", exist_ok=True)
    open(f"{d}/token", "w").write(TOKEN)
def cluster(bin_, d, tag):
    st = f"{d}/{tag}"; shutil.rmtree(st, ignore_errors=True); os.makedirs(f"{st}/out")
    job = open(f"{d}/ref.toml").read().replace(f'include = ["{d}/machine-*/', 'include = ["${LOG_ROOT}/')
    job = job.replace(f"{d}/ref.jsonl", f"{st}/out/out.jsonl")
    open(f"{st}/job.toml", "w").write(job)
    open(f"{st}/hosts-0", "w").write("127.0.0.1:0\n127.0.0.1:0\n")
    procs = []
    def member(p, hosts):
        log = open(f"{st}/member-{p}.log", "w")
        # MIX=1: member 1 runs A whatever the cluster's binary (a mixed-version cluster).
        exe = A if p == 1 and os.environ.get("MIX") == "1" else bin_
        args = [exe, "cluster", "-w", "2", "--api", "127.0.0.1:0", "--state-dir", f"{st}/state-{p}", "-n", "2", "-p", str(p),
                "--hosts", hosts, "--checkpoint-interval", "50ms", "--allow-root", f"{d}/machine-{p}", "--job-env", "LOG_ROOT"]
        if p == 0: args += ["--token-file", f"{d}/token", "--output-root", f"{st}/out"]
        env = dict(os.environ, LOG_ROOT=f"{d}/machine-{p}")
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env))
    def wait_log(p, what):
        for _ in range(400):
            t = open(f"{st}/member-{p}.log").read()
            if what in t: return t
            time.sleep(0.05)
        raise RuntimeError(f"member {p}: no {what!r}:\n{t}")
    try:
        member(0, f"{st}/hosts-0")
        t = wait_log(0, "peers connect to member ")
        peer = t.split("peers connect to member ")[1].splitlines()[0].rsplit(" on ", 1)[1]
        api = wait_log(0, "control API on http://").split("control API on http://")[1].split(";")[0]
        open(f"{st}/hosts-1", "w").write(f"{peer}\n127.0.0.1:0\n")
        member(1, f"{st}/hosts-1")
        for _ in range(600):
            try:
                req = urllib.request.Request(f"http://{api}/healthz", headers={"Authorization": f"Bearer {TOKEN}"})
                if '"members":2' in urllib.request.urlopen(req, timeout=2).read().decode(): break
            except Exception: pass
            time.sleep(0.05)
        o = subprocess.run([bin_, "job", "submit", f"{st}/job.toml", "--api", api], env=dict(os.environ, TIDEMARK_API_TOKEN=TOKEN), capture_output=True)
        if o.returncode != 0: return ("submit", o.returncode, o.stdout + o.stderr)
        out, last, stable = f"{st}/out/out.jsonl", None, 0
        for _ in range(240):
            time.sleep(0.25)
            cur = open(out, "rb").read() if os.path.exists(out) else b""
            stable = stable + 1 if cur == last and cur else 0
            last = cur
            if stable >= 12: break
        return ("out", 0, last)
    finally:
        for p in procs: p.terminate()
        for p in procs:
            try: p.wait(timeout=30)
            except subprocess.TimeoutExpired: p.kill()
for seed in range(seed0, seed0 + n):
    d = fz.gen(seed); prepare(d)
    r = subprocess.run([A, "run", "ref.toml", "--until-eof", "-w", "2"], cwd=d, capture_output=True, timeout=600)
    if r.returncode == 2: print(f"skip seed={seed} (job refused)", flush=True); shutil.rmtree(d); continue
    ref = open(f"{d}/ref.jsonl", "rb").read() if os.path.exists(f"{d}/ref.jsonl") else b""
    ca = cluster(A, d, "ca"); cb = cluster(B, d, "cb")
    same_ab = ca == cb
    print(f"{'ok' if same_ab else 'DIFF'} seed={seed} clusterA==clusterB {same_ab} clusterB==run {cb[2] == ref} len ref {len(ref)} A {len(ca[2])} B {len(cb[2])} {cb[0]}", flush=True)
    if same_ab and cb[2] == ref: shutil.rmtree(d)
