# Differential fuzz for review R18g (main d8775ba..c3b5b2e: host merge's disjoint
# runs, park_one_ahead's heap, sort_by_labels' shared prefix, add_unlabelled,
# ryu floats, radix_sort's buffer, stage 2 1/2 on two streams, keep_share's
# early return). Derived from scripts/review-r18f/fz.py, with the layouts these
# changes meet: hundreds to thousands of file groups, most holding one host
# (disjoint runs), some hosts read by two or three groups (overlapping runs),
# groups with rotated siblings, lines of stray hosts; label names that sort
# before `host` (a, app, a1, Zed); small max_open_files and read_chunk (groups
# parked mid-read by pacing); max_series cuts; floats of 15/16/17 significant
# digits, subnormals, -0. A and B run each case -w 1/2/3 (run --until-eof)
# and -w 1/2 (replay); rc, jsonl and stdout compared byte for byte.
#   python3 fz.py A B SEED N     (BASE=/tmp/r18g/fz; WS=1,2,3; REPLAY=0: no replay;
#   HOSTSTYLE=mixed: long, IP-like, NUL-holding and 1..300-byte host names;
#   STDOUT=1: a stdout (table) sink as well; SUMMARY=1: the exit summary's counts too;
#   LIGHT=1: at most 300 groups and a quarter of the lines, for a debug build)
import json, os, random, subprocess, sys, shutil
BASE = os.environ.get("BASE", "/tmp/r18g/fz")
POOL = ["", "a", "b", "a\u0000", "ab", "q\"uo", "back\\sl", "\u0001", "\t", "\u00e9", "e\u0301",
        "x" * 17, "A", "~", "\u4e2d", "\U0001F600", "200", "404", "500", "GET", "POST", "host", "h1"]
LABELS = ["method", "status", "zone", "path", "app", "a1", "a", "code", "Zed", "x", "hosts", "ho"]
GAUGE_V = ["-0", "0", "1e308", "-1e308", "1e16", "1", "0.1", "0.2", "0.3", "-2.5", "3e-300", "5e-324",
           "2.2250738585072014e-308", "123456789.123", "9007199254740993",
           "0.123456789012345", "1234567890.12345", "123456789012345.6", "0.1234567890123456",
           "1.000000000000001", "2.718281828459045", "0.00001234", "0.0000123456789012345",
           "999999999999999.9", "99999999999999.99", "4503599627370496.5", "1333333333333333.25",
           "1e-5", "1e-6", "0.000099999999999999", "1e15", "1e16", "1.5e15"]
def run(bin_, args, cwd):
    out = os.path.join(cwd, "rep.jsonl" if args[0] == "replay" else "out.jsonl")
    if os.path.exists(out): os.remove(out)
    p = subprocess.run([bin_] + args, cwd=cwd, capture_output=True, timeout=900)
    data = open(out, "rb").read() if os.path.exists(out) else b""
    # SUMMARY=1: the exit summary's counts compared too (series cut, late lines...)
    keep = (b"lines of series past", b"windows that reached", b"late lines", b"windows emitted", b"lines read",
            b"value not usable", b"outlier lines", b"incomplete:")
    summary = [l for l in p.stderr.splitlines() if l.startswith(keep)] if os.environ.get("SUMMARY") == "1" else []
    return p.returncode, data, p.stdout + b"\n".join(summary), p.stderr
def value(r, kind, dense):
    if kind == "gauge":
        x = r.random()
        if x < 0.5: return r.choice(GAUGE_V)
        if x < 0.7: return repr(r.uniform(-1e6, 1e6))  # 17-digit floats
        if x < 0.85: return "%.15g" % r.uniform(-1e3, 1e3)
        return "%.16g" % (r.uniform(-1, 1) * 10 ** r.randint(-8, 15))
    if kind == "histogram":
        if dense: return "%.3f" % r.uniform(0, 1e6) if r.random() < 0.9 else "%d" % r.randint(0, 10**12)
        return r.choice(["0", "1", "2.5", "100", "0.001", "0.1234567890123456"])
    return r.choice(["-0", "1", "0.1", "-2.5", "1e6", "3.14159", "123456.789", "-0.000001",
                     "0.123456789012345", "1.000000000000001"]) if r.random() < 0.7 else "%.3f" % r.uniform(-1e4, 1e4)
def gen(seed):
    r = random.Random(seed)
    d = f"{BASE}/case{seed}"; shutil.rmtree(d, ignore_errors=True); os.makedirs(d + "/logs")
    names = ["m_a", "m_b", "m_c", "a_first", "zz_last", "ALERTS"]
    r.shuffle(names)
    metrics = []
    for i in range(r.randint(1, 4)):
        kind = r.choice(["counter", "sum", "gauge", "gauge", "histogram", "histogram"])
        if r.random() < 0.08:
            labs = [f"l{k:02d}" for k in range(r.choice([63, 64, 65, 70]))]
        else:
            labs = r.sample(LABELS, r.randint(0, 4))
        metrics.append((names[i], kind, labs))
    wide = sorted(set(l for m in metrics for l in m[2] if l.startswith("l") and l[1:].isdigit()))
    narrow = sorted(set(l for m in metrics for l in m[2] if l not in wide))
    rules = []
    for k in range(r.randint(0, 8)):
        m = r.choice(metrics)
        cand = m[2] + ["host"]
        g = r.sample(cand, r.randint(0, min(4, len(cand))))
        mode = r.choice(["by", "without", "by", "", "without", ""])
        grp = f"{mode} ({', '.join(g)}) " if mode else ""
        op = r.choice(["sum", "min", "max", "avg", "count"])
        if m[1] == "histogram":
            q = r.choice(["0", "0.5", "0.9", "0.99", "1", "0.999"])
            x = r.random()
            if x < 0.35: e = f"histogram_quantile({q}, {m[0]})"
            elif x < 0.7: e = f"histogram_quantile({q}, sum {grp}({m[0]}))"
            else: e = f"{op} {grp}({m[0]}_{r.choice(['count', 'sum'])})"
        else:
            e = f"{op} {grp}({m[0]})"
        rules.append((f"r{k}:{m[0]}", e))
    series = r.choice(["all", "all", "all", "rules", "hosts"]) if rules else "all"
    maxs = r.choice([None, None, None, 3, 10, 50, 200, 1000, 5000])
    dense = r.random() < 0.5
    # File groups: most hold one host of their own; some share a host with
    # another group; some hold many hosts.
    ngroups = r.choice([1, 5, 50, 300, 1000, 2000])
    if os.environ.get("LIGHT") == "1":  # for a debug build: at most 300 groups
        ngroups = min(ngroups, 300)
    share = r.choice([0, 0, 0.02, 0.2, 1.0])
    stray = r.choice([0, 0, 0.01, 0.1])
    lines = r.choice([(5, 40), (20, 120), (100, 400)]) if ngroups >= 300 else (50, 1500)
    if os.environ.get("LIGHT") == "1":
        lines = (lines[0] // 4 + 1, lines[1] // 4 + 1)
    t0 = 1700000000 - 1700000000 % 60
    # HOSTSTYLE=mixed: host names that tie on a 16-byte prefix (a long shared
    # start), differ in their length's bytes, hold NUL or sort unlike numbers.
    style = r.choice(["h", "long", "ip", "nul", "len"]) if os.environ.get("HOSTSTYLE") == "mixed" else "h"
    def hname(k):
        if style == "long": return "web-frontend-cluster-eu-west-" + str(k)
        if style == "ip": return f"10.{k % 3}.{k // 256}.{k % 256}"
        if style == "nul": return "n\u0000" * (k % 3) + str(k)
        if style == "len": return "h" * (1 + k % 300) + str(k // 300)
        return f"h{k:04d}"
    for f in range(ngroups):
        gd = f"{d}/logs/g{f:04d}"; os.makedirs(gd, exist_ok=True)
        host = hname(f) if r.random() >= share else hname(r.randint(0, max(0, ngroups // 3)))
        if r.random() < 0.02: host = r.choice(POOL)
        files = ["f.log.1", "f.log"] if r.random() < 0.15 else ["f.log"]
        t = t0 + r.randint(0, 100)
        for fn in files:
            with open(f"{gd}/{fn}", "w") as fh:
                for k in range(r.randint(*lines)):
                    t += r.choice([0, 0, 0, 1, 2, 5])
                    tt = t - r.choice([0] * 10 + [30, 61])
                    h = host if r.random() >= stray else (hname(r.randint(0, ngroups)) if r.random() < 0.7 else r.choice(POOL))
                    parts = [f'"time": {tt}', f'"h": {json.dumps(h)}']
                    kind = r.choice([m[1] for m in metrics])
                    if r.random() < 0.97: parts.append(f'"v": {value(r, kind, dense)}')
                    for l in narrow:
                        if r.random() < 0.1: continue
                        parts.append(f'{json.dumps(l)}: {json.dumps(r.choice(POOL[:6]) if r.random() < 0.6 else r.choice(POOL))}')
                    for l in wide:
                        if r.random() < 0.3: continue
                        parts.append(f'{json.dumps(l)}: {json.dumps(r.choice(["p", "q", "", chr(233)]))}')
                    fh.write("{" + ", ".join(parts) + "}\n")
    job = ['name = "j"', '[source]', 'kind = "file"', f'include = ["{d}/logs/*/f.log"]', 'host = { field = "h" }']
    if r.random() < 0.2: job.append('split_from = "4KiB"')
    if r.random() < 0.5: job.append(f'max_open_files = {r.choice([1, 2, 4, 16, 64])}')
    if r.random() < 0.5: job.append(f'read_chunk = "{r.choice(["4KiB", "8KiB"])}"')
    job += ['[parse]', 'format = "json"', 'timestamp = { field = "time", format = "epoch_seconds" }', '[window]', 'size = "1m"',
            'max_out_of_orderness = "%s"' % r.choice(["0s", "30s", "1m", "5m", "1h"])]
    if maxs: job.append(f"max_series = {maxs}")
    for (name, kind, labs) in metrics:
        job += ['[[metric]]', f'name = "{name}"', f'kind = "{kind}"', 'labels = [' + ", ".join(f'"{l}"' for l in labs) + ']']
        if kind != "counter": job.append('field = "v"')
    for (rec, e) in rules:
        job += ['[[rule]]', f'record = "{rec}"', f"expr = '{e}'"]
    alert = r.random() < 0.3 and rules
    for (rec, e) in rules[:3] if alert else []:
        job += ['[[alert]]', f'name = "al{rec.split(":")[0]}"', f"expr = '{rec} > {r.choice([0, 1, 3, 100])}'",
                f'for = "{r.choice(["0s", "1m", "2m"])}"', 'annotations = { s = "v {{ $value }}" }']
    job += ['[[sink]]', 'kind = "jsonl"', f'path = "{d}/out.jsonl"', f'series = "{series}"']
    if alert: job.append('alerts = true')
    if os.environ.get("STDOUT") == "1":  # the table sink too (floats through the same printer)
        job += ['[[sink]]', 'kind = "stdout"', f'series = "{series}"']
    open(f"{d}/job.toml", "w").write("\n".join(job) + "\n")
    return d
if __name__ == "__main__":
    A = sys.argv[1]; B = sys.argv[2]; seed0 = int(sys.argv[3]); n = int(sys.argv[4])
    WS = [int(w) for w in os.environ.get("WS", "1,2,3").split(",")]
    for seed in range(seed0, seed0 + n):
        d = gen(seed); ng = len(os.listdir(d + "/logs"))
        bad = False
        for w in WS:
            modes = [["run", "job.toml", "--until-eof", "-w", str(w)]]
            if w <= 2 and os.environ.get("REPLAY", "1") == "1":
                modes.append(["replay", "job.toml", "--from", "2023-11-14T00:00:00Z", "--to", "2023-11-16T00:00:00Z", "--output", "rep.jsonl", "--overwrite", "-w", str(w)])
            for mode in modes:
                ra = run(A, mode, d); rb = run(B, mode, d)
                if ra[:3] != rb[:3]:
                    print(f"DIFF seed={seed} {mode[0]} w={w} rc {ra[0]} {rb[0]} len {len(ra[1])} {len(rb[1])}", flush=True)
                    for nm, x in (("a", ra), ("b", rb)):
                        open(f"{d}/{nm}-{mode[0]}{w}.jsonl", "wb").write(x[1]); open(f"{d}/{nm}-{mode[0]}{w}.err", "wb").write(x[3])
                    bad = True; break
            if bad: break
        if not bad:
            print(f"ok seed={seed} groups={ng} rc={ra[0]} len={len(ra[1])} err={ra[3][-160:]!r}" if ra[0] not in (0,) else f"ok seed={seed} groups={ng} rc={ra[0]} len={len(ra[1])}", flush=True)
            shutil.rmtree(d)
