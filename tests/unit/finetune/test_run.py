"""What a resumed fine-tuning keeps: the settings it may change, the finished seeds it reads back, and the
leader those seeds set for best/ (the end-to-end runs are in tests/integration/test_finetune_resume.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from alum.config import save_config
from alum.errors import UserError
from alum.finetune import run as finetune_run
from alum.finetune.config import load_finetune_config
from alum.finetune.train import SeedResult

PATHS = {"model": "m", "data.train_file": "t.tsv", "data.dev_file": "d.tsv"}


def config(tmp_path, *overrides, **flags):
    return load_finetune_config("sst2", list(overrides), {**PATHS, "output": str(tmp_path), **flags})


def saved(tmp_path, *overrides, **flags):
    save_config(config(tmp_path, *overrides, **flags), tmp_path / "config.yaml")
    return tmp_path


def refused_at(tmp_path, *overrides, **flags) -> str:
    with pytest.raises(UserError) as err:
        finetune_run.check_resumable(config(tmp_path, *overrides, **flags), tmp_path)
    assert "\n" not in str(err.value)
    return str(err.value).split(" differs from this run's config at ")[1].split(" ")[0]


def test_resume_may_change_what_leaves_finished_seeds_alone(tmp_path):
    root = saved(tmp_path / "run", "train.seeds=2", "adversarial.method=none,smart")
    for change in (["train.seeds=5"], ["wandb.enabled=true", "wandb.project=p"], ["train.log_every=1"],
                   ["adversarial.method=none,smart,fgm", "adversarial.options.fgm.eps=0.1"],
                   ["adversarial.method=smart,none"]):
        finetune_run.check_resumable(config(root, "train.seeds=2", "adversarial.method=none,smart", *change), root)
    finetune_run.check_resumable(config(root, "train.seeds=2", "adversarial.method=none,smart",
                                        output=str(tmp_path / "moved")), root)


def test_resume_refuses_a_change_of_results_naming_the_first_key(tmp_path):
    root = saved(tmp_path, "train.seeds=2", "adversarial.method=none,smart")
    base = ["train.seeds=2", "adversarial.method=none,smart"]
    assert refused_at(root, *base, "optim.lr=1e-3") == "optim.lr"
    assert refused_at(root, *base, "optim.lr=1e-3", "attack.eps=0.5") == "optim.lr"  # the first, in config order
    assert refused_at(root, *base, "attack.eps=0.5") == "attack.eps"
    assert refused_at(root, "adversarial.method=none,smart", "train.seeds=1") == "train.seeds"  # seeds only grow
    assert refused_at(root, *base, "adversarial.options.smart.alpha=3") == "adversarial.options.smart.alpha"
    assert refused_at(root, "train.seeds=2", "adversarial.method=smart") == "adversarial.method"  # none dropped
    assert refused_at(root, *base, "train.seed=7") == "train.seed"
    assert refused_at(root, *base, model="other") == "model"


def test_a_config_saved_with_the_options_as_written_resumes(tmp_path):
    # config.yaml before options were typed held only the keys that were set, and the methods as one string;
    # now it holds every option of the methods that run, and the methods may be a list
    root = saved(tmp_path, "train.seeds=2", "adversarial.method=none,smart")
    data = yaml.safe_load((root / "config.yaml").read_text())
    assert data["adversarial"]["options"]["smart"]["beta"] == 0.99  # resolved in full, defaults included
    data["adversarial"]["options"] = {"smart": {"alpha": 1.0, "mu": 1.0}, "alum": {"alpha": 1.0}}  # the preset's
    (root / "config.yaml").write_text(yaml.safe_dump(data))
    finetune_run.check_resumable(config(root, "train.seeds=2", "adversarial.method=[none, smart]"), root)
    assert refused_at(root, "train.seeds=2", "adversarial.method=none,smart", "adversarial.options.smart.beta=0.9") \
        == "adversarial.options.smart.beta"


def test_a_config_saved_before_task_types_resumes(tmp_path):
    root = saved(tmp_path, "train.seeds=2")
    data = yaml.safe_load((root / "config.yaml").read_text())
    assert data["task"]["type"] == "sequence_classification"
    del data["task"]["type"], data["task"]["tag_column"]  # the keys token classification added
    (root / "config.yaml").write_text(yaml.safe_dump(data))
    finetune_run.check_resumable(config(root, "train.seeds=2"), root)
    assert refused_at(root, "train.seeds=2", "task.metric=f1") == "task.metric"


def test_a_one_method_run_cannot_gain_methods(tmp_path):
    """Its seeds are at the top of the directory, where a comparison keeps them one level down."""
    root = saved(tmp_path, "adversarial.method=smart")
    assert refused_at(root, "adversarial.method=none,smart") == "adversarial.method"


def test_resume_without_a_saved_config_is_refused(tmp_path):
    (tmp_path / "seed-1").mkdir()
    with pytest.raises(UserError, match="holds no config.yaml"):
        finetune_run.check_resumable(config(tmp_path), tmp_path)


def result(seed: int, value: float, method: str = "smart") -> SeedResult:
    return SeedResult(method=method, seed=seed, best={"accuracy": value, "attack_accuracy": value / 2},
                      best_update=4, best_epoch=1.0, updates=4, seconds_per_update=0.1,
                      adv_seconds_per_update=0.05, adv_skipped=0, initialised=["classifier.bias"],
                      history=[{"update": 4, "epoch": 1.0, "accuracy": value}])


def test_seed_result_reads_back_what_it_wrote(tmp_path):
    original = result(3, 0.75)
    finetune_run.write_json(tmp_path / "result.json", original.to_dict())
    assert SeedResult.from_dict(json.loads((tmp_path / "result.json").read_text())) == original
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind
    with pytest.raises(KeyError):
        SeedResult.from_dict({k: v for k, v in original.to_dict().items() if k != "history"})


def test_a_kill_while_writing_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    finetune_run.write_json(path, {"old": 1})
    real = type(path).write_text

    def killed_half_way(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(type(path), "write_text", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        finetune_run.write_json(path, {"new": 2, "padding": "x" * 100})
    assert json.loads(path.read_text()) == {"old": 1}


def sweep(tmp_path, monkeypatch, finished: dict[int, float], values: dict[int, float]):
    """run_method over seeds 1-3 with training faked: `finished` seeds have a result.json, the others are
    'trained' to `values`. Returns the results, the seeds trained, and which seed each export of best/ held."""
    cfg = config(tmp_path, "train.seeds=3")
    prep = SimpleNamespace(cfg=cfg, task=SimpleNamespace(metric="accuracy"), tokenizer=None)
    for seed, value in finished.items():
        finetune_run.write_json(tmp_path / f"seed-{seed}" / "result.json", result(seed, value).to_dict())
    trained, exported = [], []

    def fake_train(prep, name, seed, out_dir, on_best):
        trained.append(seed)
        done = result(seed, values[seed])
        on_best(done, f"model of seed {seed}")
        return done

    monkeypatch.setattr(finetune_run, "train_seed", fake_train)
    monkeypatch.setattr(finetune_run, "export", lambda model, tok, task, directory, card=None, max_seq_len=None:
                        exported.append((directory.name, model)))
    results = finetune_run.run_method(prep, "smart", tmp_path, resume=True)
    return results, trained, exported


def test_finished_seeds_set_the_leader_that_best_must_beat(tmp_path, monkeypatch):
    results, trained, exported = sweep(tmp_path, monkeypatch, {1: 0.9}, {2: 0.5, 3: 0.8})
    assert trained == [2, 3]
    assert [r.best["accuracy"] for r in results] == [0.9, 0.5, 0.8]
    assert results[0] == result(1, 0.9)
    assert exported == []  # best/ keeps seed 1's model: neither new seed beats it


def test_a_new_seed_that_beats_the_finished_ones_takes_best(tmp_path, monkeypatch):
    _, trained, exported = sweep(tmp_path, monkeypatch, {1: 0.6, 3: 0.7}, {2: 0.8})
    assert trained == [2]
    assert exported == [("best", "model of seed 2")]


def test_a_result_of_another_seed_is_refused(tmp_path, monkeypatch):
    finetune_run.write_json(tmp_path / "seed-2" / "result.json", result(1, 0.5).to_dict())
    with pytest.raises(UserError, match="holds smart seed 1, not smart seed 2"):
        sweep(tmp_path, monkeypatch, {}, {1: 0.5, 3: 0.5})


def test_the_summary_table_shows_a_spread_only_over_several_seeds(tmp_path):
    prep = SimpleNamespace(cfg=config(tmp_path, "train.seeds=2"), task=SimpleNamespace(name="sst2", metric="accuracy"),
                           train=[0] * 8, dev=[0] * 4, extra_dev={})
    one = finetune_run.summarize(prep, "smart", [result(1, 0.75)])
    two = finetune_run.summarize(prep, "none", [result(1, 0.5), result(2, 0.75)])
    lines = finetune_run.table(prep, {"smart": one, "none": two}).splitlines()
    assert lines[1].split()[:3] == ["smart", "0.7500", "0.3750"]  # dev and attack, no "± 0.0000" for one seed
    assert lines[2].split()[:3] == ["none", "0.6250±0.1768", "0.3125±0.0884"]


def test_a_config_saved_before_a_key_existed_resumes_with_its_default(tmp_path):
    """train.patience and friends came later: a config.yaml without them was a run with their defaults."""
    root = saved(tmp_path)
    data = yaml.safe_load((root / "config.yaml").read_text())
    for key in ("patience", "min_delta", "gradient_checkpointing"):
        del data["train"][key]
    (root / "config.yaml").write_text(yaml.safe_dump(data))
    finetune_run.check_resumable(config(root), root)
    finetune_run.check_resumable(config(root, "train.gradient_checkpointing=true"), root)  # memory, not results
    assert refused_at(root, "train.patience=2") == "train.patience"
