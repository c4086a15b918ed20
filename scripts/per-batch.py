#!/usr/bin/env python3
"""Efficacy, generalization and specificity per edited batch from `eval --json` reports (their per-record
results), so one sees which batches a sequential campaign has kept and which later batches undid.

  python3 scripts/per-batch.py BATCH_SIZE REPORT.json [REPORT.json …]

Per record as in the report's summary (docs/method.md): rewrite success nllNew < nllTrue; paraphrases the
share of them with nllNew < nllTrue; neighbourhood prompts the share with nllTrue < nllNew. The last column
is the report's own figure, as a check that the per-batch means average to it.
"""
import json, sys

def mean(xs):
    return 100 * sum(xs) / len(xs) if xs else float("nan")

def main():
    size, reports = int(sys.argv[1]), sys.argv[2:]
    out = {}
    for path in reports:
        r = json.load(open(path))
        recs = r["postShard"]["records"]
        batches = {}
        for x in recs:
            b = batches.setdefault(x["index"] // size, {"efficacy": [], "generalization": [], "specificity": []})
            b["efficacy"].append(x["rewrite"]["nllNew"] < x["rewrite"]["nllTrue"])
            p = x["paraphrases"]
            b["generalization"].append(sum(q["nllNew"] < q["nllTrue"] for q in p) / len(p) if p else 0)
            n = x["neighborhood"]
            if n:
                b["specificity"].append(sum(q["nllTrue"] < q["nllNew"] for q in n) / len(n))
        rows = {k: {m: mean(v) for m, v in b.items()} for k, b in sorted(batches.items())}
        out[path] = rows
        summary = r["post"]["metrics"]
        print(f"{path} ({r['method']}, {r['edits']} edits)", file=sys.stderr)
        for m in ["efficacy", "generalization", "specificity"]:
            print(f"  {m:>14}: " + " / ".join(f"{rows[k][m]:.0f}" for k in rows) +
                  f"   (report {summary[m]['mean']:.1f})", file=sys.stderr)
    print(json.dumps(out))

main()
