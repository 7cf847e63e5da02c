"""Every shipped finetune preset is valid: its task resolves, every method option it sets is a real option,
and the presets whose data the repo embeds read that data."""

from __future__ import annotations

from pathlib import Path

import pytest

from alum.errors import UserError
from alum.finetune.config import load_finetune_config
from alum.finetune.prepare import prepare
from alum.finetune.tasks import GLUE
from support.paths import CONFIGS

PRESETS = sorted((CONFIGS / "finetune").glob("*.yaml"))


TAGGING = {"wnut17"}  # token-classification presets
QA = {"squad_v1": "v1.1", "squad_v2": "v2.0"}  # question-answering presets, with their SQuAD version


def test_there_is_a_preset_per_glue_task_and_a_generic_one():
    assert {p.stem for p in PRESETS} == {*GLUE, "generic", *TAGGING, *QA}


@pytest.mark.parametrize("name", sorted(QA))
def test_the_squad_presets_are_question_answering_with_the_usual_windows(name):
    task = load_finetune_config(name, ["model=x"]).task
    assert task.type == "question_answering" and task.version == QA[name] and task.metric == "f1"
    assert (task.stride, task.max_query_length, task.max_answer_length) == (128, 64, 30)
    assert load_finetune_config(name, ["model=x"]).data.max_seq_len == 384


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_preset_loads_and_every_method_option_is_known(path):
    cfg = load_finetune_config(str(path), ["model=some/dir"])
    if path.stem in GLUE:
        assert cfg.task.name == path.stem and cfg.task.metric == GLUE[path.stem]["metric"]
        assert Path(cfg.data.train_file).parent.name.replace("-", "").lower() == path.stem
    assert cfg.adversarial.method == "smart"
    smart = cfg.adversarial.build("smart")
    assert smart.config.alpha == 1.0 and smart.config.mu == 1.0  # lambda_s and mu of the SMART paper
    for name in cfg.adversarial.options:
        cfg.adversarial.build(name)
    if "alum" in cfg.adversarial.options:
        assert cfg.adversarial.build("alum").config.alpha == 1.0  # ALUM's fine-tuning weight, not pretraining's 10
    assert cfg.attack.eps > 0 and cfg.train.seeds == 3


@pytest.mark.parametrize("name", ["sst2", "generic"])
def test_presets_on_embedded_data_read_it(name, model_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the shipped presets find their shipped data from any working directory
    cfg = load_finetune_config(name, [f"model={model_dir}", "data.max_seq_len=32",
                                                                 "data.train_subset=100"])
    prep = prepare(cfg)
    assert len(prep.train) == 100 and len(prep.dev) == 872 and prep.task.id2label()[1] == "positive"


def test_the_ner_preset_reads_the_embedded_sample(model_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    cfg = load_finetune_config("wnut17", [f"model={model_dir}", "data.max_seq_len=32"])
    prep = prepare(cfg)
    assert prep.task.type == "token_classification" and prep.task.metric == "entity_f1"
    assert len(prep.train) == 1000 and len(prep.dev) == 300 and prep.task.id2label()[0] == "O"


def test_overrides_are_checked_against_the_schema():
    with pytest.raises(UserError, match="unknown key 'train.epoch' \\(did you mean 'epochs'\\?\\)"):
        load_finetune_config(str(PRESETS[0]), ["model=x", "train.epoch=2"])
    with pytest.raises(UserError, match="task.metric: 'matthews' does not fit a regression task"):
        load_finetune_config(str(CONFIGS / "finetune" / "stsb.yaml"), ["model=x", "task.metric=matthews"])


def test_methods_to_compare_are_a_list_or_names_separated_by_commas():
    listed = load_finetune_config("sst2", ["model=x", "adversarial.method=[none, fgm]"])
    joined = load_finetune_config("sst2", ["model=x", "adversarial.method=none,fgm"])
    assert listed.adversarial.methods == joined.adversarial.methods == ["none", "fgm"]
    assert listed.adversarial.options["fgm"].eps == 1.0  # a method that runs gets its defaults


def test_every_method_option_is_checked_as_the_config_loads():
    with pytest.raises(UserError, match="adversarial.options.alum.alpha must be >= 0"):  # alum does not run
        load_finetune_config("sst2", ["model=x", "adversarial.options.alum.alpha=-1"])
    with pytest.raises(UserError, match="engine.deepspeed: smart cannot run under ZeRO stage 3"):
        load_finetune_config("sst2", ["model=x", "adversarial.method=none,smart", "engine.deepspeed=zero3"])


def test_early_stopping_and_checkpointing_keys_default_off_and_are_checked():
    paths = {"model": "m", "data.train_file": "t.tsv", "data.dev_file": "d.tsv"}
    cfg = load_finetune_config("sst2", [], paths)
    assert (cfg.train.patience, cfg.train.min_delta, cfg.train.gradient_checkpointing) == (0, 0.0, False)
    cfg = load_finetune_config("sst2", ["train.patience=3", "train.min_delta=0.01"],
                               {**paths, "train.gradient_checkpointing": True})
    assert (cfg.train.patience, cfg.train.min_delta, cfg.train.gradient_checkpointing) == (3, 0.01, True)
    for bad, says in (("train.patience=-1", "train.patience must be at least 0"),
                      ("train.min_delta=-0.5", "train.min_delta must be at least 0")):
        with pytest.raises(UserError, match=says):
            load_finetune_config("sst2", [bad], paths)
