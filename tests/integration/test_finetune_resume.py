"""`alum finetune` never replaces a run silently: without a flag it refuses and leaves the directory as it
was; --overwrite replaces the run; --resume keeps every finished (method, seed), trains only the rest, and
ends where an uninterrupted run ends; a resumed run with other settings is refused, naming the key."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest

from alum.cli import main
from alum.finetune import run as finetune_run
from support.data import write_tsv

TINY = ["--max-steps", "4", "train.log_every=1", "train.eval_every=2", "engine.micro_batch_size=8",
        "data.max_seq_len=32", "train.eval_batch_size=16", "optim.lr=3e-3"]
SWEEP = ["--method", "none,smart", "--seeds", "3"]
TIMES = ("seconds_per_update", "adv_seconds_per_update")  # wall time: the one thing two runs never share


def finetune(files, model_dir, out, *extra) -> int:
    train, dev = files
    return main(["finetune", "--config", "stsb", "--model", str(model_dir), "--train-file", str(train),
                 "--dev-file", str(dev), "--output", str(out), *extra, *TINY])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A regression task: Pearson differs from seed to seed (a tiny classifier ties them all at the majority
    class), so which seed leads, and which one best/ holds, is something a test can get wrong."""
    rng, tmp = random.Random(0), tmp_path_factory.mktemp("data")
    words = "the a film story good bad great dull it is was and of this movie fun".split()
    rows = [[" ".join(rng.sample(words, 5)), " ".join(rng.sample(words, 5)), f"{rng.uniform(0, 5):.2f}"]
            for _ in range(40)]
    header = ["sentence1", "sentence2", "score"]
    return write_tsv(tmp / "train.tsv", header, rows[:24]), write_tsv(tmp / "dev.tsv", header, rows[24:])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, files, model_dir) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert finetune(files, model_dir, out, *SWEEP) == 0
    return out


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def without_times(summary):
    """A summary or result with every wall-time figure left out (they differ between any two runs)."""
    if isinstance(summary, dict):
        return {k: without_times(v) for k, v in summary.items() if k not in (*TIMES, "time_vs_none")}
    return summary


def copy_of(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def test_a_directory_with_a_run_is_refused_and_left_byte_identical(uninterrupted, tmp_path, files, model_dir,
                                                                    capsys, monkeypatch):
    out = copy_of(uninterrupted, tmp_path)
    before = hashes(out)
    monkeypatch.setattr(finetune_run, "prepare", lambda cfg: pytest.fail("the inputs were read before refusing"))
    capsys.readouterr()
    assert finetune(files, model_dir, out, *SWEEP) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"alum finetune: error: {out} already holds a run: pass --resume to continue it or "
                   f"--overwrite to replace it")
    assert hashes(out) == before


def test_resume_and_overwrite_together_are_refused(tmp_path, files, model_dir, capsys, monkeypatch):
    monkeypatch.setattr(finetune_run, "prepare", lambda cfg: pytest.fail("the inputs were read before refusing"))
    assert finetune(files, model_dir, tmp_path / "run", "--resume", "--overwrite") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "alum finetune: error: pass --resume or --overwrite, not both"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("left", ["config.yaml", "metrics.json", "seed-1", "best", "smart/seed-2"])
def test_any_trace_of_a_run_counts_as_a_run(tmp_path, left):
    trace = tmp_path / left
    trace.parent.mkdir(parents=True, exist_ok=True)
    if trace.suffix:
        trace.write_text("x")
    else:
        trace.mkdir()
    assert finetune_run.holds_run(tmp_path)
    assert not finetune_run.holds_run(tmp_path / "absent")


def test_a_directory_of_other_files_holds_no_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert not finetune_run.holds_run(tmp_path)


def test_overwrite_replaces_the_run(uninterrupted, tmp_path, files, model_dir):
    out = copy_of(uninterrupted, tmp_path)
    assert finetune(files, model_dir, out, "--overwrite", "--method", "none", "--seeds", "1") == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["method"] == "none" and summary["seeds"] == [1]
    assert not (out / "smart").exists() and not (out / "none").exists()  # nothing of the old run is left
    assert (out / "best" / "config.json").is_file()


def test_an_interrupted_sweep_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(
        uninterrupted, tmp_path, files, model_dir, monkeypatch):
    out = tmp_path / "run"
    real, trained = finetune_run.train_seed, []

    def killed_in_none_seed_3(prep, name, seed, *args, **kwargs):
        if (name, seed) == ("none", 3):
            args[0].mkdir(parents=True)
            (args[0] / "best.partial").mkdir()  # an export it had begun
            (args[0] / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n')  # a seed cut short mid-way
            raise RuntimeError("killed")
        trained.append((name, seed))
        return real(prep, name, seed, *args, **kwargs)

    monkeypatch.setattr(finetune_run, "train_seed", killed_in_none_seed_3)
    with pytest.raises(RuntimeError, match="killed"):
        finetune(files, model_dir, out, *SWEEP)
    assert trained == [("none", 1), ("none", 2)]
    none = json.loads((uninterrupted / "none" / "metrics.json").read_text())
    # What makes best/ worth checking: a finished seed leads, and the seed trained after the resume trails it.
    assert none["best_seed"] != 3

    def counted(prep, name, seed, *args, **kwargs):
        trained.append((name, seed))
        return real(prep, name, seed, *args, **kwargs)

    trained.clear()
    monkeypatch.setattr(finetune_run, "train_seed", counted)
    assert finetune(files, model_dir, out, *SWEEP, "--resume") == 0
    assert trained == [("none", 3), ("smart", 1), ("smart", 2), ("smart", 3)]  # finished ones read back

    def summary(run, *parts):
        return json.loads(run.joinpath(*parts, "metrics.json").read_text())

    assert without_times(summary(out)) == without_times(summary(uninterrupted))
    assert summary(out)["time_vs_none"].keys() == {"none", "smart"}
    for method in ("none", "smart"):
        assert without_times(summary(out, method)) == without_times(summary(uninterrupted, method))
        for seed in (1, 2, 3):
            got = json.loads((out / method / f"seed-{seed}" / "result.json").read_text())
            want = json.loads((uninterrupted / method / f"seed-{seed}" / "result.json").read_text())
            assert without_times(got) == without_times(want), (method, seed)  # histories too: the plot's data
        # best/ is the best over all three seeds, the finished ones included: the same weights as uninterrupted
        assert (out / method / "best" / "model.safetensors").read_bytes() == \
            (uninterrupted / method / "best" / "model.safetensors").read_bytes(), method
    records = (out / "none" / "seed-3" / "metrics.jsonl").read_text()
    assert '"loss": 9.0' not in records  # the seed cut short started again, from an empty directory
    assert not (out / "none" / "seed-3" / "best.partial").exists()
    assert (out / "dev_pearson_per_epoch.png").read_bytes() == \
        (uninterrupted / "dev_pearson_per_epoch.png").read_bytes()


def test_resume_with_another_setting_is_refused_naming_the_key(uninterrupted, tmp_path, files, model_dir, capsys):
    out = copy_of(uninterrupted, tmp_path)
    before = hashes(out)
    capsys.readouterr()
    assert finetune(files, model_dir, out, *SWEEP, "--resume", "optim.weight_decay=0.1") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"alum finetune: error: {out / 'config.yaml'} differs from this run's config at "
                          f"optim.weight_decay ")
    assert "\n" not in err and "(0.01 there, 0.1 now)" in err
    assert hashes(out) == before


def test_resume_of_a_finished_sweep_trains_nothing(uninterrupted, tmp_path, files, model_dir, monkeypatch):
    out = copy_of(uninterrupted, tmp_path)
    monkeypatch.setattr(finetune_run, "train_seed", lambda *a, **k: pytest.fail("a finished seed was trained"))
    assert finetune(files, model_dir, out, *SWEEP, "--resume", "wandb.project=elsewhere") == 0
    assert json.loads((out / "metrics.json").read_text()) == json.loads((uninterrupted / "metrics.json").read_text())
