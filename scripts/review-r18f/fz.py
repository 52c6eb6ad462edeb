# Differential fuzz of recording rules (review R18f, commit 152e8f6 "Fold rule
# inputs on worker 0"): random jobs heavy in rules (every op, by / without /
# none, host, histogram_quantile sparse and dense, _count/_sum, > 64 labels),
# values chosen to make float folds order-sensitive (1e308, -0, 1e16 + 1, 0.1),
# many hosts, max_series cuts, alerts on rule outputs. A and B run the same
# case with -w 1/2/3 (run) and -w 1/2 (replay); rc, jsonl and stdout compared
# byte for byte.   python3 fz.py A B SEED N   (BASE=/tmp/r18f/fz; WS=1,2,3;
# BIG=1: 300-5,000 hosts, 2,000-8,000 lines per file)
import json, os, random, subprocess, sys, shutil
BASE = os.environ.get("BASE", "/tmp/r18f/fz")
POOL = ["", "a", "b", "a\u0000", "ab", "q\"uo", "back\\sl", "\u0001", "\t", "\u00e9", "e\u0301",
        "x" * 17, "A", "~", "\u4e2d", "\U0001F600", "200", "404", "500", "GET", "POST"]
LABELS = ["method", "status", "zone", "path", "app", "a1", "code", "Zed", "x"]
GAUGE_V = ["-0", "0", "-0.0", "1e308", "-1e308", "1.7e308", "1e16", "-1e16", "1", "0.1", "0.2",
           "0.3", "-2.5", "3e-300", "-3e-300", "123456789.123", "9007199254740993", "5e-324", "2.5"]
def run(bin_, args, cwd):
    out = os.path.join(cwd, "rep.jsonl" if args[0] == "replay" else "out.jsonl")
    if os.path.exists(out): os.remove(out)
    p = subprocess.run([bin_] + args, cwd=cwd, capture_output=True, timeout=600)
    data = open(out, "rb").read() if os.path.exists(out) else b""
    return p.returncode, data, p.stdout, p.stderr
def value(r, kind, dense):
    if kind == "gauge":
        return r.choice(GAUGE_V) if r.random() < 0.7 else "%.6g" % r.uniform(-1e6, 1e6)
    if kind == "histogram":
        if dense: return "%.3f" % r.uniform(0, 1e6) if r.random() < 0.9 else "%d" % r.randint(0, 10**12)
        return r.choice(["0", "1", "2.5", "100", "0.001"])
    return r.choice(["-0", "1", "0.1", "-2.5", "1e6", "3.14159", "123456.789", "-0.000001"]) if r.random() < 0.7 else "%.3f" % r.uniform(-1e4, 1e4)
def gen(seed):
    r = random.Random(seed)
    d = f"{BASE}/case{seed}"; shutil.rmtree(d, ignore_errors=True); os.makedirs(d + "/logs")
    names = ["m_a", "m_b", "m_c", "a_first", "zz_last"]
    r.shuffle(names)
    metrics = []
    for i in range(r.randint(1, 4)):
        kind = r.choice(["counter", "sum", "gauge", "gauge", "histogram", "histogram"])
        if r.random() < 0.12:
            labs = [f"l{k:02d}" for k in range(r.choice([63, 64, 65, 70]))]  # rule_labels fallback past 64
        else:
            labs = r.sample(LABELS, r.randint(0, 4))
        metrics.append((names[i], kind, labs))
    wide = sorted(set(l for m in metrics for l in m[2] if l.startswith("l")))
    narrow = sorted(set(l for m in metrics for l in m[2] if not l.startswith("l")))
    rules = []
    for k in range(r.randint(1, 8)):
        m = r.choice(metrics)
        cand = m[2] + ["host"]
        g = r.sample(cand, r.randint(0, min(4, len(cand))))
        mode = r.choice(["by", "without", "by", "", "without"])
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
    series = r.choice(["all", "all", "rules"])
    maxs = r.choice([None, None, None, 3, 10, 50, 200, 1000])
    BIG = os.environ.get("BIG") == "1"  # high cardinality: many hosts, more lines
    nhosts = r.choice([300, 2000, 5000] if BIG else [1, 3, 30, 300])
    dense = r.random() < 0.5
    nfiles = r.randint(1, 4)
    t0 = 1700000000 - 1700000000 % 60
    for f in range(nfiles):
        os.makedirs(f"{d}/logs/g{f}", exist_ok=True)
        with open(f"{d}/logs/g{f}/f.log", "w") as fh:
            t = t0 + r.randint(0, 100)
            for k in range(r.randint(2000, 8000) if BIG else r.randint(50, 1500)):
                t += r.choice([0, 0, 0, 1, 2, 5])
                tt = t - r.choice([0] * 10 + [30, 61])
                h = f"h{r.randint(0, nhosts - 1)}" if r.random() < 0.9 else r.choice(POOL)
                parts = [f'"time": {tt}', f'"h": {json.dumps(h)}']
                kinds = [m[1] for m in metrics]
                kind = r.choice(kinds)
                if r.random() < 0.97: parts.append(f'"v": {value(r, kind, dense)}')
                for l in narrow:
                    if r.random() < 0.1: continue
                    parts.append(f'{json.dumps(l)}: {json.dumps(r.choice(POOL[:6]) if r.random() < 0.6 else r.choice(POOL))}')
                for l in wide:
                    if r.random() < 0.3: continue
                    parts.append(f'{json.dumps(l)}: {json.dumps(r.choice(["p", "q", "", chr(233)]))}')
                fh.write("{" + ", ".join(parts) + "}\n")
    job = ['name = "j"', '[source]', 'kind = "file"', f'include = ["{d}/logs/*/*.log"]', 'host = { field = "h" }']
    if r.random() < 0.3: job.append('split_from = "4KiB"')
    job += ['[parse]', 'format = "json"', 'timestamp = { field = "time", format = "epoch_seconds" }', '[window]', 'size = "1m"',
            'max_out_of_orderness = "%s"' % r.choice(["0s", "30s", "1m", "5m"])]
    if maxs: job.append(f"max_series = {maxs}")
    for (name, kind, labs) in metrics:
        job += ['[[metric]]', f'name = "{name}"', f'kind = "{kind}"', 'labels = [' + ", ".join(f'"{l}"' for l in labs) + ']']
        if kind != "counter": job.append('field = "v"')
    for (rec, e) in rules:
        job += ['[[rule]]', f'record = "{rec}"', f"expr = '{e}'"]
    alert = r.random() < 0.4
    for (rec, e) in rules[:2] if alert else []:
        job += ['[[alert]]', f'name = "al{rec.split(":")[0]}"', f"expr = '{rec} > {r.choice([0, 1, 3, 100])}'",
                f'for = "{r.choice(["0s", "1m", "2m"])}"', 'annotations = { s = "v {{ $value }}" }']
    job += ['[[sink]]', 'kind = "jsonl"', f'path = "{d}/out.jsonl"', f'series = "{series}"']
    if alert: job.append('alerts = true')
    open(f"{d}/job.toml", "w").write("\n".join(job) + "\n")
    return d
if __name__ == "__main__":
    A = sys.argv[1]; B = sys.argv[2]; seed0 = int(sys.argv[3]); n = int(sys.argv[4])
    WS = [int(w) for w in os.environ.get("WS", "1,2,3").split(",")]
    for seed in range(seed0, seed0 + n):
        d = gen(seed)
        bad = False
        for w in WS:
            modes = [["run", "job.toml", "--until-eof", "-w", str(w)]]
            if w <= 2:
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
            nrule = ra[1].count(b'"r')
            print(f"ok seed={seed} rc={ra[0]} len={len(ra[1])} rulelines~{nrule}", flush=True)
            shutil.rmtree(d)
