"""The finetune stage's entry, `run(cfg)`: every method named, every seed, the summary, the best checkpoint, the
plot; it returns the summary metrics.json holds.

Layout of the output directory (one method):           with several methods (`--method none,smart`):
    config.yaml        the resolved config                 config.yaml
    metrics.json       mean, std and every seed's figure   metrics.json   every method's summary, side by side
    best/              the best seed's best checkpoint     <method>/      the one-method layout, per method
    seed-<s>/metrics.jsonl  the log of each seed           dev_<metric>_per_epoch.png
    dev_<metric>_per_epoch.png

A directory that holds a run is never replaced silently: `resume` keeps every finished (method, seed), one
whose `seed-<s>/result.json` exists, and trains the rest from scratch; `overwrite` replaces the run.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from alum.config import dump_yaml, from_dict, save_config
from alum.errors import UserError
from alum.io.model_card import ModelCard, write_card
from alum.io.plots import metric_per_epoch
from alum.io.publish import check_directory
from alum.training import distributed
from alum.training.metrics import say
from alum.finetune.card import finetune_card
from alum.finetune.config import FinetuneAdversarial, FinetuneConfig
from alum.finetune.model import export
from alum.finetune.prepare import Prepared, prepare
from alum.finetune.task_types import task_type
from alum.finetune.tasks import TaskConfig
from alum.finetune.train import SeedResult, train_seed


def run(cfg: FinetuneConfig, resume: bool = False, overwrite: bool = False, *, train: Any = None,
        dev: Any = None, extra_dev: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fine-tune as `cfg` says; returns the summary written to metrics.json. Bad input raises UserError before
    anything is trained or removed. From Python, `train`, `dev` and `extra_dev` ({name: rows}) may be
    `datasets.Dataset` objects: they take the place of the config's files or dataset for those splits."""
    root = Path(cfg.output)
    check_directory(root)
    held = holds_run(root)
    if resume and overwrite:
        raise UserError("pass --resume or --overwrite, not both")
    if held and not (resume or overwrite):
        raise UserError(f"{root} already holds a run: pass --resume to continue it or --overwrite to replace it")
    prep = prepare(cfg, train, dev, extra_dev)  # every check before any training
    if held and resume:
        check_resumable(cfg, root)  # after prepare: the saved config holds the labels prepare inferred
    distributed.start_group()
    distributed.barrier()  # every process has looked at the directory before rank 0 changes it
    if held and overwrite and distributed.is_main():
        shutil.rmtree(root)  # only now: a typo in the inputs must not cost the old run
    methods = cfg.adversarial.methods
    say(dump_yaml(cfg))
    kind = task_type(prep.task)
    say(f"task {prep.task.name}: {kind.sizes(prep.train, prep.dev, prep.extra_dev)}, "
        f"labels {kind.describe_labels(prep.task)}, metric {prep.task.metric}")
    if distributed.is_main():
        save_config(cfg, root / "config.yaml")
    summaries, histories = {}, {}
    for name in methods:
        out = root if len(methods) == 1 else root / name
        results = run_method(prep, name, out, resume)
        summaries[name] = summarize(prep, name, results)
        card_with_spread(prep, name, out, results, summaries[name])
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


def run_method(prep: Prepared, name: str, out: Path, resume: bool = False) -> list[SeedResult]:
    """Every seed of one method; the best seed's best checkpoint is exported to `out/best` as it appears.
    With `resume`, finished seeds are read back, not trained, and `out/best` already holds their leader."""
    cfg, results = prep.cfg, []
    finished = finished_results(out, name, cfg.seeds()) if resume else {}
    leader = [max(r.best[prep.task.metric] for r in finished.values())] if finished else []

    def keep(result: SeedResult, model: nn.Module) -> None:
        if not distributed.is_main():
            return

        def card(staged: Path) -> ModelCard:
            return finetune_card(prep, name, staged, result)

        if cfg.train.save_seed_models:
            export(model, prep.tokenizer, prep.task, out / f"seed-{result.seed}" / "best", card, prep.cfg.data.max_seq_len)
        value = result.best[prep.task.metric]
        if not leader or value > leader[0]:
            leader[:] = [value]
            export(model, prep.tokenizer, prep.task, out / "best", card, prep.cfg.data.max_seq_len)

    for seed in cfg.seeds():
        if seed in finished:
            say(f"{name} seed {seed}: finished in an earlier run, read from its result.json")
            results.append(finished[seed])
            continue
        if (out / f"seed-{seed}").exists() and distributed.is_main():
            shutil.rmtree(out / f"seed-{seed}")  # a seed cut short starts again: its log must not mix two runs
        result = train_seed(prep, name, seed, out / f"seed-{seed}", on_best=keep)
        results.append(result)
        if distributed.is_main():
            write_json(out / f"seed-{seed}" / "result.json", result.to_dict())
        gc.collect()  # the engine of this seed goes before the next one is built
    return results


def card_with_spread(prep: Prepared, name: str, out: Path, results: list[SeedResult], summary: dict[str, Any]) -> None:
    """best/'s card once every seed is known: its seed's metrics and, with several seeds, the mean and standard
    deviation over them (its first card, written with the weights, could only know the seeds before it)."""
    if distributed.is_main() and len(results) > 1 and (out / "best").is_dir():
        leader = next(r for r in results if r.seed == summary["best_seed"])
        write_card(out / "best", finetune_card(prep, name, out / "best", leader, summary))


def holds_run(root: Path) -> bool:
    """What an earlier `alum finetune` leaves, for one method (at the top) or several (one level down)."""
    marks = ("config.yaml", "metrics.json", "best", "seed-*", "*/metrics.json", "*/best", "*/seed-*")
    return root.is_dir() and any(any(root.glob(mark)) for mark in marks)


# Keys that may change between a run and its resumption: none of them changes a finished seed's numbers.
# train.seeds may grow and adversarial.method gain methods (checked in check_resumable); the rest must match.
# Gradient checkpointing trades memory for time and leaves the weights as they were to float rounding: a run
# that ran out of memory may resume with it.
FREE_KEYS = ("output", "wandb.", "train.log_every", "train.gradient_checkpointing")


def check_resumable(cfg: FinetuneConfig, root: Path) -> None:
    """Refuse to resume with settings that would make the finished seeds and the new ones disagree."""
    path = root / "config.yaml"
    if not path.is_file():
        raise UserError(f"{root} holds no config.yaml to resume from: pass --overwrite to replace the run")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    # The saved section read as this run's was: options resolved in full (a config.yaml written before options
    # were typed holds only the keys that were set), the methods a list however they were written.
    section = from_dict(FinetuneAdversarial, raw.get("adversarial") or {}, str(path), prefix="adversarial.")
    saved = {**raw, "adversarial": yaml.safe_load(dump_yaml(section))}
    if isinstance(raw.get("task"), dict):  # likewise the task: one saved before `task.type` existed has its default
        saved["task"] = yaml.safe_load(dump_yaml(from_dict(TaskConfig, raw["task"], str(path), prefix="task.")))
    saved = flatten(saved)
    new = flatten(yaml.safe_load(dump_yaml(cfg)))  # through YAML, as the saved one went
    # a key the saved config lacks was added to alum since it was written: that run had its default
    defaults = flatten(yaml.safe_load(dump_yaml(FinetuneConfig())))
    old_methods = section.methods
    gained = [m for m in cfg.adversarial.methods if m not in old_methods]
    for key in [*new, *(k for k in saved if k not in new)]:
        if key.startswith(FREE_KEYS) or any(key.startswith(f"adversarial.options.{m}.") for m in gained):
            continue
        before, now = saved[key] if key in saved else defaults.get(key), new.get(key)
        if key == "train.seeds" and isinstance(before, int) and isinstance(now, int) and now >= before:
            continue
        # More methods may join a comparison; a one-method run keeps its seeds at the top, so it cannot grow.
        if key == "adversarial.method" and set(old_methods) <= set(cfg.adversarial.methods) \
                and (len(old_methods) > 1 or old_methods == cfg.adversarial.methods):
            continue
        if before != now:
            raise UserError(f"{path} differs from this run's config at {key} ({before!r} there, {now!r} now): "
                            f"resume with the same settings, or pass --overwrite to replace the run")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # an empty one adds no key: {} and a missing section compare equal
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def finished_results(out: Path, name: str, seeds: list[int]) -> dict[int, SeedResult]:
    """The seeds of `name` an earlier run finished (their result.json is written last, atomically)."""
    finished = {}
    for seed in seeds:
        path = out / f"seed-{seed}" / "result.json"
        if not path.is_file():
            continue
        try:
            result = SeedResult.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as err:
            raise UserError(f"{path}: not a seed's result ({err}): delete it to train the seed again") from None
        if (result.method, result.seed) != (name, seed):
            raise UserError(f"{path}: holds {result.method} seed {result.seed}, not {name} seed {seed}")
        finished[seed] = result
    return finished


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
        # the extra dev sets at the checkpoint the dev set chose: MNLI's mismatched beside its matched
        **({"extra_dev": {name: {**spread([r.best[f"{name}_{metric}"] for r in results]), "examples": len(data)}
                          for name, data in prep.extra_dev.items()}} if prep.extra_dev else {}),
        # the update early stopping ended each seed at (null: it ran every update)
        **({"stopped_at": {str(r.seed): r.stopped_at for r in results}} if prep.cfg.train.patience else {}),
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
            # the same evaluation schedule in every seed, each point the mean of the seeds that reached it
            # (early stopping ends seeds at different evaluations)
            longest = max(runs, key=len)
            series[f"{name} (mean of {len(runs)} seeds)"] = [
                (point["epoch"], statistics.fmean(run[i][metric] for run in runs if len(run) > i))
                for i, point in enumerate(longest)]
    metric_per_epoch(series, root / f"dev_{metric}_per_epoch.png", f"dev {metric}",
                     f"{prep.task.name}: dev {metric} per epoch")


def table(prep: Prepared, summaries: dict[str, dict[str, Any]]) -> str:
    metric = prep.task.metric
    lines = [f"{'method':8s} {'dev ' + metric:>16s} {'attack ' + metric:>16s} {'s/update':>9s}  per seed"]
    for name, s in summaries.items():
        f = s["figures"]
        attack = f.get(f"attack_{metric}")
        seeds = " ".join(f"{v:.4f}" for v in s["per_seed"].values())
        lines.append(f"{name:8s} {_mean(s):>16s} {_mean(attack) if attack else '-':>16s} "
                     f"{f['seconds_per_update']['mean']:9.3f}  {seeds}")
    return "\n".join(lines)


def _mean(figure: dict[str, Any]) -> str:
    """The mean over seeds, with the spread when there is one to show (one seed has none, not a spread of 0)."""
    if len(figure.get("per_seed", {})) < 2:
        return f"{figure['mean']:.4f}"
    return f"{figure['mean']:.4f}±{figure['std']:.4f}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    if distributed.is_main():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(partial, path)  # a kill leaves the old file or the new one, never half of one
