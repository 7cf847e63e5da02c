"""The GPU run's last word: one table of every part's status and figures, against the targets, read from
what the parts wrote into OUTPUT_DIR (parts.tsv, gpu_tests.xml, pretrain.json, evidence.json). It also
writes the table to OUTPUT_DIR/summary.txt and the figures to OUTPUT_DIR/summary.json.

    python benchmarks/gpu/report.py OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# The targets for the pretraining benchmark on a GPU: (figure, comparison, bound).
TARGETS = {"mfu": (">=", 0.35), "speedup_vs_trainer": (">=", 1.5), "alum_over_standard": ("<=", 2.7),
           "memory_ratio": ("<=", 1.6)}


def load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def verdict(key: str, value: float | None, measured_on_gpu: bool) -> tuple[str, str]:
    op, bound = TARGETS[key]
    target = f"{op} {bound:.0%}" if key == "mfu" else f"{op} {bound}"
    if value is None:
        return target, "-"
    if not measured_on_gpu:
        return target, "n/a (not a GPU)"
    ok = value >= bound if op == ">=" else value <= bound
    return target, "met" if ok else "MISSED"


def test_counts(path: Path) -> str:
    try:
        suite = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return "no report"
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    total, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    return f"{total - failed - skipped} passed, {failed} failed, {skipped} skipped"


def rows(out: Path) -> tuple[list[list[str]], dict]:
    table, figures = [], {}
    parts = [line.split("\t") for line in (out / "parts.tsv").read_text().splitlines()] if (out / "parts.tsv").is_file() else []
    for name, rc, seconds, budget in parts:
        status = {"0": "ok", "124": "TIMED OUT", "137": "TIMED OUT"}.get(rc, f"FAILED (exit {rc})")
        table.append(["part", name, f"{status}, {seconds} s of {budget} s", "", ""])
        figures[f"part_{name}"] = {"rc": int(rc), "seconds": int(seconds), "budget": int(budget)}
    table.append(["gpu tests", "pytest -m gpu", test_counts(out / "gpu_tests.xml"), "all pass", ""])
    figures["gpu_tests"] = table[-1][2]

    bench = load(out / "pretrain.json")
    for shape, r in (bench or {}).get("shapes", {}).items():
        gpu = "gpu" in bench["machine"]
        where = f"{shape}, {r['batch']} x {r['seq']}, {r['precision']}, {bench['machine'].get('gpu', 'CPU')}"
        mfu = r["utilisation"].get("mfu")
        memory = r["peak_memory_mib"]
        table += [
            ["pretrain", f"ours, standard step ({where})", f"{r['ours']['tokens_per_s']:,.0f} tok/s", "", ""],
            ["pretrain", "ours, standard step MFU", f"{mfu:.1%}" if mfu is not None else
             f"{r['utilisation']['model_tflops_per_s']:.3f} TFLOP/s (no peak known)", *verdict("mfu", mfu, gpu)],
            ["pretrain", "ours, ALUM step", f"{r['ours']['alum_tokens_per_s']:,.0f} tok/s"
             + (f", MFU {r['alum_utilisation']['mfu']:.1%} (8/3 work)" if "mfu" in r["alum_utilisation"] else ""), "", ""],
            ["pretrain", "transformers.Trainer (run_mlm way)", f"{r['trainer']['tokens_per_s']:,.0f} tok/s"
             + (f", MFU {r['trainer_utilisation']['mfu']:.1%}" if "mfu" in r["trainer_utilisation"] else ""), "", ""],
            ["pretrain", "ours / Trainer tokens/s", f"{r['speedup_vs_trainer']:.2f}x",
             *verdict("speedup_vs_trainer", r["speedup_vs_trainer"], gpu)],
            ["pretrain", "ALUM step / standard step", f"{r['alum_over_standard']:.2f}",
             *verdict("alum_over_standard", r["alum_over_standard"], gpu)],
            ["pretrain", "peak memory standard / ALUM (MiB)", f"{memory['standard']:,.0f} / {memory['alum']:,.0f} = "
             f"{memory['alum_over_standard']:.2f}x", *verdict("memory_ratio", memory["alum_over_standard"], gpu)],
            ["pretrain", "attention", f"ours {r['ours']['attn_implementation']}, Trainer "
             f"{r['trainer']['attn_implementation']}", "sdpa", ""],
        ]
        figures[f"pretrain_{shape}"] = r

    evidence = load(out / "evidence.json")
    if evidence:
        figures["evidence"] = {"stopped": evidence.get("stopped"), "elapsed_s": evidence.get("elapsed_s")}
        for task, t in evidence["tasks"].items():
            if "missing" in t:
                table.append(["evidence", task, f"not run: {t['missing']}", "", ""])
                continue
            metric, base = t["metric"], t["summary"].get("none", {}).get("seconds_per_update")
            for method, s in t["summary"].items():
                cost = f", {s['seconds_per_update'] / base:.2f}x none" if base else ""
                attack = f", attack {s['attack_mean']:.3f}" if s["attack_mean"] is not None else ""
                extra = "".join(f", {Path(f).name} {v:.3f}" for f, v in s["extra"].items())
                table.append(["evidence", f"{task} {method} ({s['seeds']} seed{'s' * (s['seeds'] != 1)})",
                              f"dev {metric} {s['dev_mean']:.3f} ± {s['dev_std']:.3f}{attack}; "
                              f"{s['seconds_per_update'] * 1000:.0f} ms/update{cost}{extra}",
                              f"{evidence['seeds_wanted']} seeds", ""])
            figures[f"evidence_{task}"] = t["summary"]
        table.append(["evidence", "stopped", evidence.get("stopped") or "every seed done", "", ""])
    return table, figures


def render(table: list[list[str]]) -> str:
    header = ["part", "what", "measured", "target", "verdict"]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, table)])


def main() -> int:
    out = Path(sys.argv[1])
    table, figures = rows(out)
    text = render(table)
    (out / "summary.txt").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
