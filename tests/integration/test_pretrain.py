"""The pretrain stage end to end on a tiny model: exact resume across the switch, the preflight leaves no
trace, checkpoints survive failures and SIGTERM, bad input stops before training, the export loads."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alum.adversarial import ForwardOutput
from alum.cli import main
from alum.errors import UserError
from alum.pretrain import train as pretrain_train
from alum.pretrain.config import PretrainConfig
from support.paths import REPO
from support.pretrain import tiny_config


def final_weights(cfg: PretrainConfig) -> dict[str, torch.Tensor]:
    return load_file(Path(cfg.output) / "final" / "model.safetensors")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def test_resume_across_the_switch_is_bit_identical(tmp_path, tokenizer_dir, small_corpus):
    whole = tiny_config(tmp_path / "a", tokenizer_dir, small_corpus)
    pretrain_train.run(whole)

    parts = tiny_config(tmp_path / "b", tokenizer_dir, small_corpus, stop_after=2)
    stopped = pretrain_train.run(parts)
    assert stopped == {"step": 2, "stopped": True}
    assert not (Path(parts.output) / "final").exists()
    parts.stop_after = None
    pretrain_train.run(parts, resume=True)

    assert_same_weights(final_weights(whole), final_weights(parts))
    log = [line for line in (Path(parts.output) / "metrics.jsonl").read_text().splitlines()]
    assert log == (Path(whole.output) / "metrics.jsonl").read_text().splitlines() or _same_but_timing(log, whole)


@pytest.mark.parametrize("stop_after", [2, 4])  # before the switch (no teacher yet), after it
def test_smart_teacher_is_born_at_the_switch_and_resumes_exactly(tmp_path, tokenizer_dir, small_corpus, stop_after):
    """SMART as the pretraining method: its teacher is the model at the switch (step 3), its beta schedule
    counts the 3 adversarial updates, and a run stopped on either side of the switch resumes bit-identical."""
    smart = {"adversarial.method": "smart", "adversarial.options": "{}"}
    whole = tiny_config(tmp_path / "a", tokenizer_dir, small_corpus, **smart)
    pretrain_train.run(whole)
    parts = tiny_config(tmp_path / "b", tokenizer_dir, small_corpus, stop_after=stop_after, **smart)
    pretrain_train.run(parts)
    parts.stop_after = None
    pretrain_train.run(parts, resume=True)

    assert_same_weights(final_weights(whole), final_weights(parts))
    teachers = [torch.load(Path(c.output) / "checkpoints" / "step-00000006" / "state.pt", weights_only=False)
                ["adversary"]["teacher"] for c in (whole, parts)]
    assert teachers[0]["updates"] == 3 and teachers[1]["updates"] == 3
    assert_same_weights(teachers[0]["weights"], teachers[1]["weights"])


def _same_but_timing(log, whole):
    import json

    timing = {"tokens_per_s", "step_time", "adv_time_share"}
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k not in timing} for x in lines]  # noqa: E731
    return strip(log) == strip((Path(whole.output) / "metrics.jsonl").read_text().splitlines())


def test_metrics_log_phases_and_export_loads_without_our_code(tmp_path, tokenizer_dir, small_corpus):
    import json

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus)
    result = pretrain_train.run(cfg)
    records = [json.loads(x) for x in (Path(cfg.output) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "phase" in r]
    assert [r["phase"] for r in train] == ["standard"] * 3 + ["adversarial"] * 3
    adversarial = train[-1]
    for key in ("loss", "adv_loss", "delta_norm", "adv_skipped", "lr", "tokens_per_s", "step_time"):
        assert key in adversarial, key
    assert {"val_loss", "val_perplexity", "val_accuracy"} <= set(records[-1])
    assert Path(result["loss_curve"]).stat().st_size > 10_000
    model = AutoModelForMaskedLM.from_pretrained(result["export"])
    tok = AutoTokenizer.from_pretrained(result["export"])
    ids = tok("The tower is tall.", return_tensors="pt")
    assert model(**ids).logits.shape[-1] == len(tok)


def test_preflight_changes_nothing(tmp_path, tokenizer_dir, small_corpus):
    with_preflight = tiny_config(tmp_path / "a", tokenizer_dir, small_corpus, max_steps=4)
    without = tiny_config(tmp_path / "b", tokenizer_dir, small_corpus, max_steps=4, **{"adversarial.preflight": "false"})
    pretrain_train.run(with_preflight)
    pretrain_train.run(without)
    assert_same_weights(final_weights(with_preflight), final_weights(without))


def test_sigterm_checkpoints_and_exits_cleanly(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, save_every=100, **{"adversarial.preflight": "false"})
    calls = {"n": 0}
    original = pretrain_train.mlm_forward

    def forward(model, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # during the third step: the handler only sets a flag, the step completes
            os.kill(os.getpid(), signal.SIGTERM)
        return original(model, batch)

    monkeypatch.setattr(pretrain_train, "mlm_forward", forward)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        result = pretrain_train.run(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result == {"step": 3, "stopped": True}
    assert (Path(cfg.output) / "checkpoints" / "step-00000003" / "state.pt").is_file()


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    from alum.training import checkpoint

    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus)
    saves = {"n": 0}
    original = checkpoint.Checkpointer.save

    def failing_save(self, engine, step, state, generators):
        saves["n"] += 1
        if saves["n"] == 2:
            real = engine.save_checkpoint
            engine.save_checkpoint = lambda *a, **k: (real(*a, **k), (_ for _ in ()).throw(OSError(28, "No space left on device")))
            try:
                return original(self, engine, step, state, generators)
            finally:
                engine.save_checkpoint = real
        return original(self, engine, step, state, generators)

    monkeypatch.setattr(checkpoint.Checkpointer, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        pretrain_train.run(cfg)
    ckpts = Path(cfg.output) / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-00000002", "step-00000004.partial"]
    monkeypatch.setattr(checkpoint.Checkpointer, "save", original)
    pretrain_train.run(cfg, resume=True)  # the intact checkpoint resumes, the partial one is ignored
    assert (Path(cfg.output) / "final" / "model.safetensors").is_file()
    assert not (ckpts / "step-00000004.partial").exists()


def test_non_finite_losses_in_a_row_stop_with_a_usable_checkpoint(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_bad_steps=2, **{"adversarial.preflight": "false"})
    original = pretrain_train.mlm_forward
    calls = {"n": 0}

    def forward(model, batch):
        calls["n"] += 1
        out = original(model, batch)
        return ForwardOutput(out.logits, out.loss * float("nan")) if calls["n"] > 2 else out

    monkeypatch.setattr(pretrain_train, "mlm_forward", forward)
    with pytest.raises(UserError, match="2 updates in a row had non-finite losses.*step-00000002"):
        pretrain_train.run(cfg)
    state = torch.load(Path(cfg.output) / "checkpoints/step-00000002/engine/mp_rank_00_model_states.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["module"].values() if v.is_floating_point())


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"data.files": "[/nonexistent/corpus.txt]"}, "corpus path '/nonexistent/corpus.txt' not found"),
        ({"adversarial.start": "50"}, "switch at step 50, beyond max_steps=6"),
        ({"adversarial.method": "almu"}, "unknown method 'almu'"),
        ({"adversarial.options.alum.alpah": "3"}, "unknown key 'adversarial.options.alum.alpah'"),
        ({"adversarial.options": "{alpha: 3}"}, "adversarial.options.alpha: unknown method"),
        ({"data.block_size": "100000"}, "block"),
    ],
)
def test_bad_input_stops_before_training(tmp_path, tokenizer_dir, small_corpus, overrides, message):
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, **overrides)
    with pytest.raises(UserError, match=message):
        pretrain_train.run(cfg)
    assert not (Path(cfg.output) / "checkpoints").exists()


def test_empty_corpus_and_mismatched_tokenizer_are_one_line_cli_errors(tmp_path, tokenizer_dir, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    code = main(["pretrain", "--config", "tiny", "--tokenizer", str(tokenizer_dir),
                 "--files", str(empty), "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("alum pretrain: error: corpus is empty") and "\n" not in err

    from transformers import BertConfig, BertForMaskedLM

    small = tmp_path / "small-model"
    BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(small)
    code = main(["pretrain", "--config", "tiny", "--tokenizer", str(tokenizer_dir),
                 "--output", str(tmp_path / "run2"), f"model.path={small}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "400 tokens but the model" in err and "50 embedding rows" in err


def test_existing_run_needs_resume_or_overwrite(tmp_path, tokenizer_dir, small_corpus):
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, stop_after=2)
    pretrain_train.run(cfg)
    with pytest.raises(UserError, match="already holds a run: pass --resume"):
        pretrain_train.run(cfg)
    assert (Path(cfg.output) / "checkpoints" / "step-00000002").is_dir()


def test_continued_pretraining_from_an_encoder_without_mlm_head(tmp_path, tokenizer_dir, small_corpus, capsys):
    from transformers import BertConfig, BertModel

    encoder = tmp_path / "encoder"
    BertModel(BertConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(encoder)
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_steps=2, **{"model.path": str(encoder), "adversarial.start": 1})
    pretrain_train.run(cfg)
    out = capsys.readouterr()
    assert "has no MLM head: initialised cls randomly" in out.out + out.err


def test_tokenised_corpus_is_cached(tmp_path, tokenizer_dir, small_corpus):
    from transformers import AutoTokenizer

    from alum.pretrain.data import build_blocks

    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    first = build_blocks(cfg.data, tok, whole_word=False)
    arrow = sorted((tmp_path / "cache").rglob("*.arrow"))
    second = build_blocks(cfg.data, tok, whole_word=False)
    assert sorted((tmp_path / "cache").rglob("*.arrow")) == arrow
    assert [f["filename"] for f in second.train.cache_files] == [f["filename"] for f in first.train.cache_files]


def test_streaming_and_whole_word_masking_train(tmp_path, tokenizer_dir, small_corpus):
    stream = tiny_config(tmp_path / "s", tokenizer_dir, small_corpus, max_steps=3, **{"data.streaming": "true"})
    assert pretrain_train.run(stream)["step"] == 3
    words = tiny_config(tmp_path / "w", tokenizer_dir, small_corpus, max_steps=3, **{"masking.whole_word": "true"})
    assert pretrain_train.run(words)["step"] == 3


def test_method_none_trains_standard_mlm_throughout(tmp_path, tokenizer_dir, small_corpus):
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_steps=4,
                      **{"adversarial.method": "none", "adversarial.options": "{}"})
    pretrain_train.run(cfg)
    rows = [json.loads(line) for line in (Path(cfg.output) / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows if "phase" in r} == {"standard"}


def test_modernbert_pretrains_through_the_switch_and_exports(tmp_path, tokenizer_dir, small_corpus):
    from transformers import AutoModelForMaskedLM

    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, **{"model.family": "modernbert"})
    final = pretrain_train.run(cfg)
    rows = [json.loads(line) for line in (Path(cfg.output) / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows if "phase" in r} == {"standard", "adversarial"}
    assert all(r["adv_loss"] > 0 for r in rows if r.get("phase") == "adversarial")
    model = AutoModelForMaskedLM.from_pretrained(Path(cfg.output) / "final")
    assert model.config.model_type == "modernbert" and final["val_loss"] > 0


def test_wandb_logs_offline(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_steps=2, **{"adversarial.start": 1,
                      "wandb.enabled": "true", "wandb.name": "tiny-offline"})
    pretrain_train.run(cfg)
    runs = list((Path(cfg.output) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))
