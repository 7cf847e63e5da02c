"""The pretrain stage end to end on a tiny model: exact resume across the switch, the preflight leaves no
trace, checkpoints survive failures and SIGTERM, bad input stops before training, the export loads."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from alum.adversarial import ForwardOutput
from alum.cli import main
from alum.errors import UserError
from alum.pretrain import train as pretrain_train
from alum.pretrain.export import export_checkpoint
from alum.pretrain.config import PretrainConfig
from alum.training.metrics import read_metrics
from support.paths import REPO
from support.pretrain import assert_same_files, assert_same_state, checkpoint_contents, tiny_config


def final_weights(cfg: PretrainConfig) -> dict[str, torch.Tensor]:
    return load_file(Path(cfg.output) / "final" / "model.safetensors")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def test_resume_across_the_switch_is_bit_identical(tmp_path, tokenizer_dir, small_corpus, capsys):
    whole = tiny_config(tmp_path / "a", tokenizer_dir, small_corpus)
    pretrain_train.run(whole)

    parts = tiny_config(tmp_path / "b", tokenizer_dir, small_corpus, stop_after=2)
    stopped = pretrain_train.run(parts)
    assert stopped == {"step": 2, "stopped": True}
    assert not (Path(parts.output) / "final").exists()
    moved = tiny_config(tmp_path / "b", tokenizer_dir, small_corpus, max_steps=8)  # half of 8: the switch at 4
    moved.adversarial.start_step, moved.adversarial.start_fraction = None, 0.5
    with pytest.raises(UserError, match=r"adversarial.start_fraction=0.5 puts the switch at step 4, but .*step-00000002 "
                                        r"was trained to switch at step 3"):
        pretrain_train.run(moved, resume=True)
    parts.stop_after = None
    capsys.readouterr()
    pretrain_train.run(parts, resume=True)
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("model: ")]
    assert said == [f"model: bert, 0.02M parameters, resumed from {Path(parts.output) / 'checkpoints' / 'step-00000002'} "
                    "at step 2"]  # and not that a model was randomly initialised

    assert_same_weights(final_weights(whole), final_weights(parts))
    log = [line for line in (Path(parts.output) / "metrics.jsonl").read_text().splitlines()]
    assert log == (Path(whole.output) / "metrics.jsonl").read_text().splitlines() or _same_but_timing(log, whole)


@pytest.mark.parametrize("method, stop_after", [("smart", 2), ("smart", 4), ("freeat", 4)])
def test_method_state_travels_in_checkpoints_and_resumes_exactly(tmp_path, tokenizer_dir, small_corpus, method,
                                                                 stop_after):
    """SMART as the pretraining method: its teacher is the model at the switch (step 3), its beta schedule
    counts the 3 adversarial updates, and a run stopped on either side of the switch resumes bit-identical.
    FreeAT: the delta it carries from batch to batch comes back from the checkpoint."""
    options = {"adversarial.method": method, "adversarial.options": "{}"}
    whole = tiny_config(tmp_path / "a", tokenizer_dir, small_corpus, **options)
    pretrain_train.run(whole)
    parts = tiny_config(tmp_path / "b", tokenizer_dir, small_corpus, stop_after=stop_after, **options)
    pretrain_train.run(parts)
    parts.stop_after = None
    pretrain_train.run(parts, resume=True)

    assert_same_weights(final_weights(whole), final_weights(parts))
    states = [torch.load(Path(c.output) / "checkpoints" / "step-00000006" / "state.pt", weights_only=False)
              ["adversary"] for c in (whole, parts)]
    assert_same_state(states[0], states[1])
    if method == "smart":
        assert states[0]["teacher"]["updates"] == 3
    else:
        assert states[0]["carried"].abs().sum() > 0


def _same_but_timing(log, whole):
    import json

    timing = {"tokens_per_s", "step_time", "adv_time_share"}
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k not in timing} for x in lines]  # noqa: E731
    return strip(log) == strip((Path(whole.output) / "metrics.jsonl").read_text().splitlines())


def test_metrics_log_phases_and_export_loads_without_our_code(tmp_path, tokenizer_dir, small_corpus, capsys):
    import json

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus)
    capsys.readouterr()
    result = pretrain_train.run(cfg)
    records = [json.loads(x) for x in (Path(cfg.output) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "phase" in r]
    assert [r["phase"] for r in train] == ["standard"] * 3 + ["adversarial"] * 3
    # the schedule at start, and one line at the switch, as the phases in the log have it
    out = capsys.readouterr().out.splitlines()
    assert "schedule: masked LM for steps 1-3, then 'alum' for steps 4-6 (adversarial.start_step=3)" in out
    assert [line for line in out if "switching" in line] == ["step 4 of 6: switching from masked LM to 'alum'"]
    adversarial = train[-1]
    for key in ("loss", "adv_loss", "delta_norm", "delta_effective", "delta_lost", "delta_cosine", "adv_skipped", "lr",
                "tokens_per_s", "step_time"):
        assert key in adversarial, key
    assert adversarial["delta_effective"] > 0 and adversarial["delta_cosine"] > 0.99  # float32: delta arrives whole
    assert {"val_loss", "val_perplexity", "val_accuracy"} <= set(records[-1])
    assert Path(result["loss_curve"]).stat().st_size > 10_000
    model = AutoModelForMaskedLM.from_pretrained(result["export"])
    tok = AutoTokenizer.from_pretrained(result["export"])
    ids = tok("The tower is tall.", return_tensors="pt")
    assert model(**ids).logits.shape[-1] == len(tok)


def watch_preflight(monkeypatch, fail_with: BaseException | None = None) -> list[dict]:
    """Counts preflight calls and the method steps each one ran, and notes whether the step moved the global
    random stream (so restoring it is not vacuous); with `fail_with`, that step raises it instead."""
    calls: list[dict] = []
    original = pretrain_train.preflight

    def spy(method, target, batch, device, generators):
        call = {"steps": 0, "moved_rng": False}
        calls.append(call)
        real_step = method.step

        def step(*args, **kwargs):
            call["steps"] += 1
            if fail_with is not None:
                raise fail_with
            before = torch.get_rng_state()
            try:
                return real_step(*args, **kwargs)
            finally:
                call["moved_rng"] = not torch.equal(before, torch.get_rng_state())

        method.step = step  # on this instance only, for this call
        try:
            return original(method, target, batch, device, generators)
        finally:
            del method.step

    monkeypatch.setattr(pretrain_train, "preflight", spy)
    return calls


@pytest.mark.parametrize("method", [{}, {"adversarial.method": "smart", "adversarial.options": "{}"}],
                         ids=["alum", "smart"])  # SMART's step also gives birth to its teacher: method state
def test_preflight_changes_nothing(tmp_path, tokenizer_dir, small_corpus, monkeypatch, method):
    """The preflight runs one real adversarial step (which draws noise) and leaves no trace: the final
    checkpoint, weights, Adam moments, scheduler, every random stream and the loop and method state, equals
    that of a run without it."""
    calls = watch_preflight(monkeypatch)
    with_preflight = tiny_config(tmp_path / "a", tokenizer_dir, small_corpus, max_steps=4, **method)
    pretrain_train.run(with_preflight)
    assert calls == [{"steps": 1, "moved_rng": True}]
    without = tiny_config(tmp_path / "b", tokenizer_dir, small_corpus, max_steps=4,
                          **{"adversarial.preflight": "false", **method})
    pretrain_train.run(without)
    assert len(calls) == 1, "adversarial.preflight=false still ran the preflight"

    assert_same_weights(final_weights(with_preflight), final_weights(without))
    last = [Path(c.output) / "checkpoints" / "step-00000004" for c in (with_preflight, without)]
    a, b = checkpoint_contents(last[0]), checkpoint_contents(last[1])
    moments = a["engine/mp_rank_00_model_states.pt"]["optimizer"]["state"]
    assert moments and all({"exp_avg", "exp_avg_sq"} <= set(m) for m in moments.values())  # compared below
    assert {"rng-rank0.pt", "state.pt"} <= set(a)
    assert_same_state(a, b)


def test_a_run_without_an_adversarial_phase_says_so_and_runs_no_preflight(tmp_path, tokenizer_dir, small_corpus,
                                                                          monkeypatch, capsys):
    calls = watch_preflight(monkeypatch)
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_steps=2)
    cfg.adversarial.start_step, cfg.adversarial.start_fraction = None, 1.0  # a share: 1.0 is the whole run
    capsys.readouterr()
    pretrain_train.run(cfg)
    out = capsys.readouterr().out.splitlines()
    assert "schedule: masked LM for all 2 steps (adversarial.start_fraction=1.0 puts the switch at the end)" in out
    assert calls == [] and not any("switching" in line for line in out)


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 100000000000 bytes. Error code 12 (Cannot allocate memory)"),
], ids=["cuda", "cpu"])
def test_out_of_memory_in_the_preflight_stops_before_training(tmp_path, tokenizer_dir, small_corpus, monkeypatch,
                                                              capsys, error):
    from alum.training.engine import EngineTrainer

    calls = watch_preflight(monkeypatch, fail_with=error)
    updates = []
    monkeypatch.setattr(EngineTrainer, "update", lambda self, batches: updates.append(1))
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus)
    with pytest.raises(UserError) as raised:
        pretrain_train.run(cfg)
    message = str(raised.value)
    assert calls == [{"steps": 1, "moved_rng": False}] and updates == []
    assert "\n" not in message and "out of memory" in message
    for setting in ("engine.micro_batch_size", "data.block_size", "adversarial.preflight=false"):
        assert setting in message, setting
    output = Path(cfg.output)
    assert not (output / "checkpoints").exists() and not (output / "final").exists()
    assert not (output / "metrics.jsonl").exists() or (output / "metrics.jsonl").read_text() == ""


def test_other_runtime_errors_in_the_preflight_are_not_called_memory_errors(tmp_path, tokenizer_dir, small_corpus,
                                                                             monkeypatch):
    watch_preflight(monkeypatch, fail_with=RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        pretrain_train.run(tiny_config(tmp_path, tokenizer_dir, small_corpus))


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
    assert result == {"step": 3, "stopped": True, "signal": "SIGTERM"}
    assert (Path(cfg.output) / "checkpoints" / "step-00000003" / "state.pt").is_file()


def interrupt_during_step(monkeypatch, step: int, times: int) -> None:
    """Ctrl-C (SIGINT to this process) `times` over, while step `step` computes its forward."""
    calls = {"n": 0}
    original = pretrain_train.mlm_forward

    def forward(model, batch):
        calls["n"] += 1
        if calls["n"] == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return original(model, batch)

    monkeypatch.setattr(pretrain_train, "mlm_forward", forward)


@pytest.fixture
def sigint_noted():
    """While the run is not in charge of Ctrl-C, a SIGINT here is noted and nothing more (pytest's own handler
    would end the whole session); the run's handlers must give this one back when it ends."""
    heard = []

    def note(signum, frame):
        heard.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    yield note, heard
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_ends_the_step_with_a_checkpoint(tmp_path, tokenizer_dir, small_corpus, monkeypatch, sigint_noted,
                                                capfd):
    note, heard = sigint_noted
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, save_every=100, **{"adversarial.preflight": "false"})
    interrupt_during_step(monkeypatch, 3, times=1)
    assert pretrain_train.run(cfg) == {"step": 3, "stopped": True, "signal": "SIGINT"}
    assert (Path(cfg.output) / "checkpoints" / "step-00000003" / "state.pt").is_file() and not heard
    assert "Ctrl-C: ending this step, then a checkpoint" in capfd.readouterr().err  # written to the terminal
    assert signal.getsignal(signal.SIGINT) is note  # given back


def test_a_second_ctrl_c_stops_at_once(tmp_path, tokenizer_dir, small_corpus, monkeypatch, sigint_noted):
    note, heard = sigint_noted
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, save_every=100, **{"adversarial.preflight": "false"})
    interrupt_during_step(monkeypatch, 3, times=2)
    with pytest.raises(KeyboardInterrupt):
        pretrain_train.run(cfg)
    assert not (Path(cfg.output) / "checkpoints").exists() and not heard
    assert signal.getsignal(signal.SIGINT) is note


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


def poison_forward(monkeypatch, bad) -> dict:
    """mlm_forward with a NaN loss on the calls `bad(n)` picks (n counts from 1; the logits stay finite).
    The forward runs either way, so the random streams move as in a clean run."""
    original, calls = pretrain_train.mlm_forward, {"n": 0}

    def forward(model, batch):
        calls["n"] += 1
        out = original(model, batch)
        return ForwardOutput(out.logits, out.loss * float("nan")) if bad(calls["n"]) else out

    monkeypatch.setattr(pretrain_train, "mlm_forward", forward)
    return calls


def module_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint / "engine/mp_rank_00_model_states.pt", weights_only=False)["module"]


def test_non_finite_losses_in_a_row_stop_with_a_usable_checkpoint(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    """NaN losses from step 3 on; a checkpoint is written at step 4, inside the streak, and the run stops at
    step 5. The error names the newest complete checkpoint; its weights are finite and those of the last
    good update (step 2: the skipped updates applied nothing), and the run resumes from it to the end."""
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_bad_steps=3, **{"adversarial.preflight": "false"})
    poisoned = {"on": True}
    poison_forward(monkeypatch, lambda n: poisoned["on"] and n > 2)  # one forward per step before the switch
    with pytest.raises(UserError, match="3 updates in a row had non-finite losses \\(step 5\\)") as raised:
        pretrain_train.run(cfg)
    checkpoints = Path(cfg.output) / "checkpoints"
    named = Path(str(raised.value).split("The last complete checkpoint is ")[1].split(":")[0])
    assert named == checkpoints / "step-00000004" and named.is_dir()
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-00000002", "step-00000004"]
    weights = module_weights(named)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert_same_state(weights, module_weights(checkpoints / "step-00000002"))
    assert torch.load(named / "state.pt", weights_only=False)["counters"] == {"skipped_updates": 2, "bad_streak": 2}

    poisoned["on"] = False  # the cause fixed (in life: a lower lr, clean data), the run continues from it
    assert pretrain_train.run(cfg, resume=True)["step"] == 6
    final = final_weights(cfg)
    assert all(torch.isfinite(v).all() for v in final.values())
    assert not torch.equal(final["cls.predictions.bias"], weights["cls.predictions.bias"])  # it trained on


def accumulated_run(tmp_path, tokenizer_dir, small_corpus, monkeypatch, name: str, bad=(), zero=(), stage=0):
    """4 standard MLM updates of 2 micro-batches each (forward call n: update (n+1)//2), with a NaN loss on
    the calls in `bad` and a loss times zero (a micro-batch that contributes nothing) on those in `zero`."""
    original, calls = pretrain_train.mlm_forward, {"n": 0}

    def forward(model, batch):
        calls["n"] += 1
        out = original(model, batch)
        scale = float("nan") if calls["n"] in bad else 0.0 if calls["n"] in zero else None
        return out if scale is None else ForwardOutput(out.logits, out.loss * scale)

    monkeypatch.setattr(pretrain_train, "mlm_forward", forward)
    cfg = tiny_config(tmp_path / name, tokenizer_dir, small_corpus, max_steps=4, save_every=1, keep_checkpoints=4,
                      **{"engine.grad_accum": 2, "adversarial.method": "none", "adversarial.options": "{}",
                         "engine.deepspeed": f"zero{stage}"})
    pretrain_train.run(cfg)
    return Path(cfg.output) / "checkpoints"


@pytest.mark.parametrize("call,stage", [(3, 0), (4, 0), (4, 2)],
                         ids=["first-micro-batch", "last-micro-batch", "last-micro-batch-zero2"])
def test_a_non_finite_micro_batch_contributes_nothing_to_its_update(tmp_path, tokenizer_dir, small_corpus,
                                                                     monkeypatch, call, stage):
    """What the engine does (alum/training/engine.py): a non-finite micro-batch loss is not backpropagated;
    the update still happens with the other micro-batch's gradient (scaled by 1/grad_accum as always), so
    it equals, to the bit, an update in which that micro-batch's loss was multiplied by zero. When the
    dropped one is the last, a zero backward closes the window: under ZeRO-2 that backward is what reduces
    the earlier micro-batch's gradient into the optimizer's partition."""
    nan = accumulated_run(tmp_path, tokenizer_dir, small_corpus, monkeypatch, "nan", bad={call}, stage=stage)
    zero = accumulated_run(tmp_path, tokenizer_dir, small_corpus, monkeypatch, "zero", zero={call}, stage=stage)
    clean = accumulated_run(tmp_path, tokenizer_dir, small_corpus, monkeypatch, "clean", stage=stage)
    state = torch.load(nan / "step-00000004" / "state.pt", weights_only=False)
    assert state["counters"] == {"skipped_updates": 0, "bad_streak": 0}
    weights = module_weights(nan / "step-00000004")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert_same_state(checkpoint_contents(nan / "step-00000004"), checkpoint_contents(zero / "step-00000004"))
    clean_bias = module_weights(clean / "step-00000004")["cls.predictions.bias"]
    assert not torch.equal(weights["cls.predictions.bias"], clean_bias)  # the NaN micro-batch did drop out


def test_an_update_whose_every_micro_batch_is_non_finite_is_skipped(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    checkpoints = accumulated_run(tmp_path, tokenizer_dir, small_corpus, monkeypatch, "nan", bad={3, 4})
    assert torch.load(checkpoints / "step-00000004" / "state.pt", weights_only=False)["counters"] == \
        {"skipped_updates": 1, "bad_streak": 0}
    records = [json.loads(x) for x in (checkpoints.parent / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_updates"] for r in records if "skipped_updates" in r] == [0, 1, 1, 1]
    engine = [checkpoint_contents(checkpoints / f"step-{s:08d}")["engine/mp_rank_00_model_states.pt"] for s in (1, 2)]
    for key in ("module", "optimizer", "lr_scheduler", "global_steps"):
        assert_same_state(engine[0][key], engine[1][key], key)  # the skipped update changed nothing
    assert all(torch.isfinite(v).all() for v in module_weights(checkpoints / "step-00000004").values()
               if v.is_floating_point())


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"data.files": "[/nonexistent/corpus.txt]"}, "corpus path '/nonexistent/corpus.txt' not found"),
        ({"adversarial.start_step": "50"}, "adversarial.start_step=50 puts the switch at step 50, beyond max_steps=6"),
        ({"adversarial.method": "almu"}, "unknown method 'almu'"),
        ({"adversarial.options.alum.alpah": "3"}, "unknown key 'adversarial.options.alum.alpah'"),
        ({"adversarial.options": "{alpha: 3}"}, "adversarial.options.alpha: unknown method"),
        ({"data.block_size": "100000"}, "block"),
    ],
)
def test_bad_input_stops_before_training(tmp_path, tokenizer_dir, small_corpus, overrides, message):
    with pytest.raises(UserError, match=message):  # as the config loads (methods, options) or as the run starts
        pretrain_train.run(tiny_config(tmp_path, tokenizer_dir, small_corpus, **overrides))
    assert not (tmp_path / "run" / "checkpoints").exists()  # tiny_config's output


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


def test_a_corpus_of_undecodable_lines_says_so_with_file_and_line(tmp_path, tokenizer_dir, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1") + b"\n" + "na\xefve\n".encode("latin-1"))
    code = main(["pretrain", "--config", "tiny", "--tokenizer", str(tokenizer_dir),
                 "--files", str(bad), "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert "undecodable" in err and f"first at {bad}:1" in err and "empty" not in err and "0 block" not in err


def test_fp16_without_a_gpu_is_a_one_line_error_before_any_work(tmp_path, tokenizer_dir, small_corpus, capsys,
                                                                 monkeypatch):
    """DeepSpeed refuses fp16 without CUDA deep inside its initialisation (a traceback after the data is
    tokenised); bf16 runs on the CPU and is not refused (test_deepspeed_config.py)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("build_blocks", "load_model"):
        monkeypatch.setattr(pretrain_train, name, lambda *a, **k: pytest.fail("work began before the check"))
    code = main(["pretrain", "--config", "tiny", "--tokenizer", str(tokenizer_dir), "--files", str(small_corpus),
                 "--output", str(tmp_path / "run"), "engine.precision=fp16"])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in captured.out + captured.err, err
    assert err.startswith("alum pretrain: error: engine.precision=fp16 needs a CUDA GPU") and "fp32" in err
    assert not (tmp_path / "run").exists()


TINY_RUN = ["--max-steps", "2", "data.block_size=32", "data.validation=2", "engine.micro_batch_size=2",
            "adversarial.preflight=false",
            "model.overrides={hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}"]


def test_a_preset_trains_on_its_shipped_corpus_from_any_directory(tmp_path, tokenizer_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/ here: the preset's data/corpus/... is the sample inside the package
    code = main(["pretrain", "--config", "tiny", "--tokenizer", str(tokenizer_dir), "--output", "out",
                 f"data.cache_dir={tmp_path / 'cache'}", *TINY_RUN])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert (tmp_path / "out" / "final" / "model.safetensors").is_file()


def test_a_missing_corpus_is_found_before_anything_is_built(tmp_path, tokenizer_dir, monkeypatch, capsys):
    for step in ("load_tokenizer", "load_model", "build_engine"):
        monkeypatch.setattr(pretrain_train, step, lambda *a, **k: pytest.fail("built before the data was checked"))
    code = main(["pretrain", "--config", "tiny", "--tokenizer", str(tokenizer_dir), "--output", str(tmp_path / "out"),
                 "--files", str(tmp_path / "nope.txt"), *TINY_RUN])
    out, err = capsys.readouterr()
    assert code == 2 and err.strip() == f"alum pretrain: error: corpus path '{tmp_path / 'nope.txt'}' not found"
    assert "model:" not in out and not (tmp_path / "out").exists()


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
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_steps=2, **{"model.path": str(encoder), "adversarial.start_step": 1})
    pretrain_train.run(cfg)
    out = capsys.readouterr()
    assert "has no MLM head: initialised cls randomly" in out.out + out.err
    # a run from model.path exports any checkpoint with that model's shape (and its 64 positions)
    last = Path(cfg.output) / "checkpoints" / "step-00000002"
    assert main(["export", str(last), "--output", str(tmp_path / "last")]) == 0
    assert_same_files(tmp_path / "last", Path(cfg.output) / "final")


def test_tokenised_corpus_is_cached(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    """Counts the texts handed to the tokenizer (Packer.add, the one place corpus text is encoded): a second
    build of the same files encodes none; after a file changes, the next build encodes it again."""
    from transformers import AutoTokenizer

    from alum.pretrain import packing
    from alum.pretrain.data import build_blocks

    encoded = []
    real_add = packing.Packer.add
    monkeypatch.setattr(packing.Packer, "add", lambda self, texts: encoded.append(len(texts)) or real_add(self, texts))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(small_corpus.read_text(encoding="utf-8"), encoding="utf-8")
    cfg = tiny_config(tmp_path, tokenizer_dir, corpus)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)

    first = build_blocks(cfg.data, tok, whole_word=False)
    texts = sum(encoded)
    assert texts > 100, f"the first build encoded {texts} texts"
    second = build_blocks(cfg.data, tok, whole_word=False)
    assert sum(encoded) == texts, f"the second build encoded {sum(encoded) - texts} texts again"
    assert len(second.train) == len(first.train) and second.train[0] == first.train[0]

    with corpus.open("a", encoding="utf-8") as f:
        f.write("An edited corpus is read and tokenised again, never served from a stale cache.\n")
    third = build_blocks(cfg.data, tok, whole_word=False)
    assert sum(encoded) > texts, "an edited file was served from the cache"
    assert len(third.train) + len(third.validation) >= len(first.train) + len(first.validation)


def words_of(row: dict) -> list[list[int]]:
    """The positions of each word of a block: a token continues a word when it starts where the one before
    it ended (no space between them) and neither is a special token."""
    words: list[list[int]] = []
    previous_end, previous_special = None, True
    for i, ((start, end), special) in enumerate(zip(row["offset_mapping"], row["special_tokens_mask"])):
        if special:
            previous_special = True
            continue
        if previous_special or start != previous_end:
            words.append([])
        words[-1].append(i)
        previous_end, previous_special = end, False
    return words


def masked_word_counts(rows: list[dict], labels: torch.Tensor) -> tuple[int, int, int]:
    """(words wholly masked, words partly masked, words of more than one token) over a batch."""
    whole = partly = long = 0
    for row, row_labels in zip(rows, labels):
        for word in words_of(row):
            picked = [bool(row_labels[i] != -100) for i in word]
            long += len(word) > 1
            whole += all(picked)
            partly += any(picked) and not all(picked)
    return whole, partly, long


def test_streaming_and_whole_word_masking_train(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    stream = tiny_config(tmp_path / "s", tokenizer_dir, small_corpus, max_steps=3, **{"data.streaming": "true"})
    assert pretrain_train.run(stream)["step"] == 3

    from alum.pretrain.config import MaskingConfig
    from alum.pretrain.data import MaskedBatches

    seen: list[tuple[list[dict], torch.Tensor]] = []

    class Recording(MaskedBatches):
        def __call__(self, rows):
            batch = super().__call__(rows)
            seen.append(([dict(r) for r in rows], batch["labels"].clone()))
            return batch

    monkeypatch.setattr(pretrain_train, "MaskedBatches", Recording)
    words = tiny_config(tmp_path / "w", tokenizer_dir, small_corpus, max_steps=3, **{"masking.whole_word": "true"})
    assert pretrain_train.run(words)["step"] == 3
    assert len(seen) >= 3 and all("offset_mapping" in r for rows, _ in seen for r in rows)
    counts = [masked_word_counts(rows, labels) for rows, labels in seen]
    whole, partly, long = (sum(c[i] for c in counts) for i in range(3))
    assert partly == 0, f"{partly} words masked in part under whole-word masking"
    assert long > 100 and whole > 20, (whole, long)  # words of several tokens exist, and words were masked

    # the same blocks masked token by token split words: the check above can fail
    from transformers import AutoTokenizer

    per_token = MaskedBatches(AutoTokenizer.from_pretrained(tokenizer_dir), MaskingConfig(whole_word=False), seed=0)
    partly = 0
    for rows, _ in seen:
        plain = [{k: v for k, v in r.items() if k != "offset_mapping"} for r in rows]
        partly += masked_word_counts(rows, per_token(plain)["labels"])[1]
    assert partly > 5


def assert_export_is_the_engine(export: Path, engine: dict[str, torch.Tensor]) -> None:
    """Every tensor of the module, tied ones included, as the engine held it, to the bit and in its dtype."""
    from transformers import AutoModelForMaskedLM

    loaded = AutoModelForMaskedLM.from_pretrained(export).state_dict()
    assert engine.keys() <= loaded.keys()
    for key, tensor in engine.items():
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor), key


def check_card(directory: Path, run: Path, step: int, command: str | None = None) -> None:
    """The card of a pretraining export: front matter the Hub reads, the schedule, the step, the last
    validation loss the run logged at or before `step`, and the command that made it."""
    text = (directory / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(text.split("---\n")[1])
    # no base_model: the model was built from scratch; the method's tag is alum's own name, given once
    assert front == {"library_name": "transformers", "pipeline_tag": "fill-mask", "tags": ["alum"]}
    assert f"weights at step {step} of 6" in text and "then `alum` for steps 4-6 (adversarial.start_step=3)" in text
    validation = [r for r in read_metrics(run / "metrics.jsonl") if "val_loss" in r and r["step"] <= step][-1]
    assert f"- val_loss: {validation['val_loss']:.6g}" in text and f"- step: {validation['step']}" in text
    if command is not None:
        assert f"- command: `{command}`" in text


def exported_last_is_final(tmp_path, tokenizer_dir, small_corpus, **overrides) -> Path:
    """A run of 2 steps with a checkpoint at each; its last checkpoint exported equals its final/, file for
    file. Returns the export."""
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_steps=2, save_every=1, eval_every=2,
                      **{"adversarial.start_step": 1, **overrides})
    pretrain_train.run(cfg)
    last = Path(cfg.output) / "checkpoints" / "step-00000002"
    assert main(["export", str(last), "--output", str(tmp_path / "last")]) == 0
    assert_same_files(tmp_path / "last", Path(cfg.output) / "final")
    return tmp_path / "last"


def test_export_of_any_checkpoint_is_the_engine_at_that_step(tmp_path, tokenizer_dir, small_corpus, capsys):
    """`alum export` of a mid-run checkpoint holds the weights the engine held at that step; of the last
    checkpoint, what the run's own final/ holds, file for file; both load in the fill-mask pipeline, which
    truncates an input longer than the block size where the model's positions end."""
    from transformers import AutoTokenizer, pipeline

    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus)  # checkpoints at steps 4 and 6 of 6 remain
    pretrain_train.run(cfg)
    checkpoints, final = Path(cfg.output) / "checkpoints", Path(cfg.output) / "final"
    mid, last = tmp_path / "mid", tmp_path / "last"
    capsys.readouterr()
    assert main(["export", str(checkpoints / "step-00000004"), "--output", str(mid)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        f"exported {checkpoints / 'step-00000004'} to {mid} (AutoModelForMaskedLM / AutoTokenizer)"
    check_card(mid, Path(cfg.output), 4, f"alum export {checkpoints / 'step-00000004'} --output {mid}")
    check_card(final, Path(cfg.output), 6)  # the run was started in this process without the CLI
    assert_export_is_the_engine(mid, module_weights(checkpoints / "step-00000004"))
    assert not torch.equal(load_file(mid / "model.safetensors")["bert.embeddings.word_embeddings.weight"],
                           final_weights(cfg)["bert.embeddings.word_embeddings.weight"])  # two steps apart

    assert main(["export", str(checkpoints / "step-00000006"), "--output", str(last)]) == 0
    assert_same_files(last, final)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.old"))

    assert AutoTokenizer.from_pretrained(mid).model_max_length == 32  # data.block_size: the model's positions
    moved_run_exports_with_its_own_tokenizer(Path(cfg.output), tmp_path, mid)
    fill = pipeline("fill-mask", model=str(mid))
    guesses = fill("The tower is <mask>. " + "A long text. " * 200, tokenizer_kwargs={"truncation": True})
    assert len(guesses) == 5 and all(g["token_str"] for g in guesses)

    assert main(["export", str(checkpoints / "step-00000006"), "--output", str(mid), "--overwrite"]) == 0
    assert_same_files(mid, final)  # replaced whole, nothing left beside it
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("mid")) == ["mid"]


@pytest.mark.parametrize("stage", [0, 3])
def test_export_of_a_bf16_checkpoint_is_what_the_engine_computed_with(tmp_path, tokenizer_dir, small_corpus, stage):
    """In bf16 the engine computes with bf16 weights and keeps fp32 masters: the export holds the bf16 ones, as
    final/ does. Under ZeRO-3 (one process) they are DeepSpeed's gathered masters cast to the module's dtype."""
    last = exported_last_is_final(tmp_path, tokenizer_dir, small_corpus,
                                  **{"engine.precision": "bf16", "engine.deepspeed": f"zero{stage}"})
    assert {t.dtype for t in load_file(last / "model.safetensors").values()} == {torch.bfloat16}


@pytest.mark.parametrize("family", ["roberta", "modernbert"])
def test_export_of_other_families_is_their_final_export(tmp_path, tokenizer_dir, small_corpus, family):
    """The run's architecture is rebuilt from its config in any family: RoBERTa's positions offset by the
    padding index (model_max_length is still the block size), ModernBERT's own names and rotary positions."""
    from transformers import AutoTokenizer

    last = exported_last_is_final(tmp_path, tokenizer_dir, small_corpus, **{"model.family": family})
    assert AutoTokenizer.from_pretrained(last).model_max_length == 32


def moved_run_exports_with_its_own_tokenizer(run: Path, tmp_path: Path, exported: Path) -> None:
    """The run keeps its tokenizer: moved, its tokenizer directory gone, it exports as before. A run without
    that copy (written before runs kept one) takes data.tokenizer, and one of another size is refused."""
    import shutil

    import yaml

    from support.data import sst2_lines
    from support.models import build_tokenizer

    moved = tmp_path / "moved"
    shutil.copytree(run / "checkpoints" / "step-00000004", moved / "checkpoints" / "step-00000004")
    shutil.copytree(run / "tokenizer", moved / "tokenizer")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["tokenizer"] = str(tmp_path / "gone")
    (moved / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["export", str(moved / "checkpoints" / "step-00000004"), "--output", str(tmp_path / "again")]) == 0
    assert_same_files(tmp_path / "again", exported, same_run=False)

    shutil.rmtree(moved / "tokenizer")
    other = build_tokenizer(tmp_path / "other-tok", sst2_lines(200), vocab=300)
    config["data"]["tokenizer"] = str(tmp_path / "other-tok")
    (moved / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(UserError, match=rf"step-00000004 has \d+ embedding rows but the run's tokenizer "
                                        rf"{re.escape(str(tmp_path / 'other-tok'))} gives {len(other)}: the tokenizer "
                                        "was changed"):
        export_checkpoint(moved / "checkpoints" / "step-00000004", tmp_path / "never")
    assert not (tmp_path / "never").exists()


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


def test_wandb_logs_offline_by_default(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    """wandb.enabled alone, nothing in the environment saying offline: the run logs offline and never asks
    for the network. No API key and a server address where nothing listens: an online run would fail at
    wandb.init; connections from this process to anything but the loopback are refused and recorded."""
    import socket

    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_OFFLINE", "WANDB_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: a connection is refused
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    outside: list = []
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and self.family != socket.AF_UNIX:
            outside.append(address)
            raise OSError("the network is off in this test")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_steps=2, **{"adversarial.start_step": 1,
                      "wandb.enabled": "true", "wandb.name": "tiny-default"})
    assert cfg.wandb.mode == "offline"  # the shipped default
    pretrain_train.run(cfg)
    assert outside == []
    assert not list((Path(cfg.output) / "wandb").glob("run-*")), "an online run directory was made"
    runs = list((Path(cfg.output) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


def test_gradient_checkpointing_pretrains_the_same_model(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    """`gradient_checkpointing: true` through masked LM and ALUM: the same final weights to float32 rounding
    (tests/unit/training/test_recompute.py has the arithmetic)."""
    enabled, real = [], pretrain_train.enable_gradient_checkpointing

    def spy(model, *args):
        real(model, *args)
        enabled.append(model.is_gradient_checkpointing)

    monkeypatch.setattr(pretrain_train, "enable_gradient_checkpointing", spy)
    finals = []
    for name, on in (("plain", "false"), ("checkpointed", "true")):
        cfg = tiny_config(tmp_path / name, tokenizer_dir, small_corpus, max_steps=4, gradient_checkpointing=on,
                          **{"adversarial.start_step": 2})
        pretrain_train.run(cfg)
        finals.append(final_weights(cfg))
    assert enabled == [True]  # the second run only
    for key, tensor in finals[0].items():
        # four Adam steps of lr 1e-3 from gradients equal to float32 rounding: far inside 1e-5
        torch.testing.assert_close(finals[1][key], tensor, rtol=1e-5, atol=1e-5, msg=key)
