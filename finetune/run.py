"""A fine-tuning command: every method named, every seed, the summary, the best checkpoint, the plot.

Layout of the output directory (one method):           with several methods (`--method none,smart`):
    config.yaml        the resolved config                 config.yaml
    metrics.json       mean, std and every seed's figure   metrics.json   every method's summary, side by side
    best/              the best seed's best checkpoint     <method>/      the one-method layout, per method
    seed-<s>/metrics.jsonl  the log of each seed           dev_<metric>_per_epoch.png
    dev_<metric>_per_epoch.png
"""

from __future__ import annotations

import gc
import json
import statistics
from pathlib import Path
from typing import Any

from torch import nn

from alum.config import dump_yaml, save_config
from alum.training import distributed
from alum.training.metrics import say
from alum.training.plots import metric_per_epoch
from alum.finetune.config import FinetuneConfig
from alum.finetune.model import export
from alum.finetune.prepare import Prepared, prepare
from alum.finetune.train import SeedResult, train_seed


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    prep = prepare(cfg)  # every check before any training
    root = Path(cfg.output)
    methods = cfg.adversarial.methods
    say(dump_yaml(cfg))
    say(f"task {prep.task.name}: {len(prep.train)} training and {len(prep.dev)} dev examples, "
        f"labels {prep.task.id2label() if not prep.task.regression else 'regression'}, metric {prep.task.metric}")
    if distributed.is_main():
        save_config(cfg, root / "config.yaml")
    summaries, histories = {}, {}
    for name in methods:
        out = root if len(methods) == 1 else root / name
        results = run_method(prep, name, out)
        summaries[name] = summarize(prep, name, results)
        histories[name] = [r.history for r in results]
        write_json(out / "metrics.json", summaries[name])
    summary = summaries[methods[0]] if len(methods) == 1 else compare(prep, summaries)
    if len(methods) > 1:
        write_json(root / "metrics.json", summary)
    plot(prep, histories, root)
    say(table(prep, summaries))
    best = [str(root / "best")] if len(methods) == 1 else [str(root / m / "best") for m in methods]
    say(f"summary: {root / 'metrics.json'}; best checkpoint{'s' if len(best) > 1 else ''}: {', '.join(best)}")
    return summary


def run_method(prep: Prepared, name: str, out: Path) -> list[SeedResult]:
    """Every seed of one method; the best seed's best checkpoint is exported to `out/best` as it appears."""
    cfg, results = prep.cfg, []
    leader: list[float] = []

    def keep(result: SeedResult, model: nn.Module) -> None:
        if not distributed.is_main():
            return
        if cfg.train.save_seed_models:
            export(model, prep.tokenizer, prep.task, out / f"seed-{result.seed}" / "best")
        value = result.best[prep.task.metric]
        if not leader or value > leader[0]:
            leader[:] = [value]
            export(model, prep.tokenizer, prep.task, out / "best")

    for seed in cfg.seeds():
        result = train_seed(prep, name, seed, out / f"seed-{seed}", on_best=keep)
        results.append(result)
        if distributed.is_main():
            write_json(out / f"seed-{seed}" / "result.json", result.to_dict())
        gc.collect()  # the engine of this seed goes before the next one is built
    return results


def spread(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one seed)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarize(prep: Prepared, method: str, results: list[SeedResult]) -> dict[str, Any]:
    metric = prep.task.metric
    per_seed = {str(r.seed): r.best[metric] for r in results}
    best = max(results, key=lambda r: r.best[metric])
    figures = {}
    for key in results[0].best:
        values = [r.best[key] for r in results]
        figures[key] = {**spread(values), "per_seed": {str(r.seed): r.best[key] for r in results}}
    for key in ("seconds_per_update", "adv_seconds_per_update", "best_epoch", "adv_skipped"):
        values = [float(getattr(r, key)) for r in results]
        figures[key] = {**spread(values), "per_seed": {str(r.seed): getattr(r, key) for r in results}}
    return {
        "task": prep.task.name, "metric": metric, "method": method,
        "seeds": [r.seed for r in results], "per_seed": per_seed, **spread(list(per_seed.values())),
        "best_seed": best.seed, "best_model": "best", "figures": figures,
        "attack": vars(prep.cfg.attack) | {"step_size": prep.cfg.attack.alpha},
        "train_examples": len(prep.train), "dev_examples": len(prep.dev), "updates": results[0].updates,
        "initialised": results[0].initialised,
    }


def compare(prep: Prepared, summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The methods side by side; time per update relative to `none` when it ran."""
    out: dict[str, Any] = {"task": prep.task.name, "metric": prep.task.metric, "methods": summaries}
    if "none" in summaries:
        base = summaries["none"]["figures"]["seconds_per_update"]["mean"]
        out["time_vs_none"] = {m: s["figures"]["seconds_per_update"]["mean"] / base for m, s in summaries.items()}
    return out


def plot(prep: Prepared, histories: dict[str, list[list[dict[str, float]]]], root: Path) -> None:
    """The dev metric per epoch: one line per method (mean over seeds), or per seed for a single method."""
    if not distributed.is_main():
        return
    metric, series = prep.task.metric, {}
    for name, runs in histories.items():
        if len(histories) == 1:
            for seed, run in zip(prep.cfg.seeds(), runs):
                series[f"{name}, seed {seed}"] = [(h["epoch"], h[metric]) for h in run]
        else:
            points = zip(*runs)  # the same evaluation schedule in every seed
            series[f"{name} (mean of {len(runs)} seeds)"] = [
                (p[0]["epoch"], statistics.fmean(h[metric] for h in p)) for p in points]
    metric_per_epoch(series, root / f"dev_{metric}_per_epoch.png", f"dev {metric}",
                     f"{prep.task.name}: dev {metric} per epoch")


def table(prep: Prepared, summaries: dict[str, dict[str, Any]]) -> str:
    metric = prep.task.metric
    lines = [f"{'method':8s} {'dev ' + metric:>16s} {'attack ' + metric:>16s} {'s/update':>9s}  per seed"]
    for name, s in summaries.items():
        f = s["figures"]
        attack = f.get(f"attack_{metric}")
        attack_text = f"{attack['mean']:.4f}±{attack['std']:.4f}" if attack else "-"
        seeds = " ".join(f"{v:.4f}" for v in s["per_seed"].values())
        lines.append(f"{name:8s} {s['mean']:.4f}±{s['std']:.4f}  {attack_text:>16s} "
                     f"{f['seconds_per_update']['mean']:9.3f}  {seeds}")
    return "\n".join(lines)


def write_json(path: Path, data: dict[str, Any]) -> None:
    if distributed.is_main():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
