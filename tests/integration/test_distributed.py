"""Two CPU processes (gloo) under the deepspeed launcher, through launch/local.sh: every ZeRO stage against one
process, resume in two processes, every core method under every stage, and a killed process.

Every process a test starts is in its own session and is killed with its group when the test ends or times
out, so a hung collective cannot outlive the test (tests/support/processes.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alum.adversarial import METHODS
from support.data import sst2_subset
from support.paths import REPO
from support.pretrain import assert_same_files, assert_same_state, checkpoint_contents, pretrain_args
from support.processes import TIMEOUT, free_port, kill_group, launch, launch_env, one, two

pytestmark = pytest.mark.slow  # several processes per test


def losses(run: Path) -> list[float]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tokenizer_dir) -> dict[str, Path]:
    """One process with 8 blocks per step, and two processes with 4 each under ZeRO 1, 2, 3: the same global
    batch, 4 standard steps and 4 ALUM steps."""
    root = tmp_path_factory.mktemp("dist")
    out = {"single": root / "single"}
    one(*pretrain_args(tokenizer_dir, out["single"], 8, 0))
    for stage in (1, 2, 3):
        out[f"zero{stage}"] = root / f"zero{stage}"
        two(*pretrain_args(tokenizer_dir, out[f"zero{stage}"], 4, stage))
    return out


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_two_processes_follow_the_one_process_loss_curve(runs, stage):
    """Tolerance: 2% per step. The global batch and data order are the same; the masked positions and ALUM's
    noise are drawn per process, so the curves agree closely but not to the bit."""
    single, double = losses(runs["single"]), losses(runs[f"zero{stage}"])
    assert len(single) == len(double) == 8
    for step, (a, b) in enumerate(zip(single, double), start=1):
        assert abs(a - b) <= 0.02 * a, f"step {step}: one process {a:.4f}, two processes {b:.4f}"
    phases = [json.loads(x).get("phase") for x in (runs[f"zero{stage}"] / "metrics.jsonl").read_text().splitlines()]
    assert [p for p in phases if p] == ["standard"] * 4 + ["adversarial"] * 4


def test_stages_agree_with_each_other_to_float_precision(runs):
    curves = [losses(runs[f"zero{s}"]) for s in (1, 2, 3)]
    for curve in curves[1:]:
        assert max(abs(a - b) for a, b in zip(curves[0], curve)) < 1e-4


def test_export_of_a_two_process_run_loads_in_a_plain_process(runs):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    for stage in (2, 3):
        model = AutoModelForMaskedLM.from_pretrained(runs[f"zero{stage}"] / "final")
        tok = AutoTokenizer.from_pretrained(runs[f"zero{stage}"] / "final")
        assert model(**tok("a small test", return_tensors="pt")).logits.isfinite().all()


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_export_of_a_two_process_checkpoint_is_the_engine_in_one_process(runs, stage, tmp_path):
    """`alum export` in one plain process, no launcher, saying one line: the mid-run checkpoint (step 6 of 8) holds the weights
    the engine held, which in fp32 are its fp32 masters, gathered from both ranks' partitions by DeepSpeed's
    reader (ZeRO-1/2: other files than the module states the export reads); the last checkpoint is the
    run's own final/ (written from the engine's gathered module in memory), file for file."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoModelForMaskedLM

    checkpoints = runs[f"zero{stage}"] / "checkpoints"
    for step in (6, 8):
        said = one("export", str(checkpoints / f"step-{step:08d}"), "--output", str(tmp_path / str(step))).stdout
        assert said.splitlines() == [f"exported {checkpoints / f'step-{step:08d}'} to {tmp_path / str(step)} "
                                     "(AutoModelForMaskedLM / AutoTokenizer)"]  # DeepSpeed's and HF's talk: none
    masters = get_fp32_state_dict_from_zero_checkpoint(str(checkpoints / "step-00000006"), tag="engine")
    exported = AutoModelForMaskedLM.from_pretrained(tmp_path / "6").state_dict()
    for key, tensor in masters.items():
        assert exported[key].dtype == tensor.dtype and torch.equal(exported[key], tensor), key
    assert_same_files(tmp_path / "8", runs[f"zero{stage}"] / "final")


def test_export_of_a_zero3_checkpoint_missing_a_rank_is_one_line(runs, tmp_path, capsys):
    """ZeRO-3 weights live in every rank's partition: a copy of the checkpoint without rank 1's is refused in one
    line naming it, and nothing is written."""
    import shutil

    from alum.cli import main

    run = tmp_path / "run"
    shutil.copytree(runs["zero3"] / "checkpoints" / "step-00000006", run / "checkpoints" / "step-00000006")
    shutil.copytree(runs["zero3"] / "tokenizer", run / "tokenizer")
    shutil.copy(runs["zero3"] / "config.yaml", run / "config.yaml")
    (run / "checkpoints" / "step-00000006" / "engine" / "zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink()
    capsys.readouterr()
    assert main(["export", str(run / "checkpoints" / "step-00000006"), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    engine = run / "checkpoints" / "step-00000006" / "engine"
    assert err.count("\n") == 1 and err.startswith(f"alum export: error: {engine}: cannot read the engine's weights"), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_two_process_checkpoint_resumes_exactly_in_two_processes(runs, tokenizer_dir, tmp_path):
    run = tmp_path / "resumed"
    two(*pretrain_args(tokenizer_dir, run, 4, 2, "--stop-after", "3"))
    assert not (run / "final").exists()
    two(*pretrain_args(tokenizer_dir, run, 4, 2, "--resume"))
    a, b = load_file(runs["zero2"] / "final" / "model.safetensors"), load_file(run / "final" / "model.safetensors")
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resuming_with_another_world_size_says_what_to_do(runs, tokenizer_dir, tmp_path):
    run = tmp_path / "resized"
    two(*pretrain_args(tokenizer_dir, run, 4, 2, "--stop-after", "3"))
    result = launch([sys.executable, "-m", "alum.cli", *pretrain_args(tokenizer_dir, run, 4, 2, "--resume")])
    assert result.returncode == 2
    assert "written by 2 process(es) and this run has 1: resume with 2" in result.stdout


def test_every_method_under_every_zero_stage_matches_stage_0_or_is_refused(tmp_path):
    """Two updates of two accumulated micro-batches per process (FreeAT: one, it steps per replay)."""
    launch_env = {"DS_ACCELERATOR": "cpu", "ALUM_DIST_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    launcher = Path(sys.executable).parent / "deepspeed"
    args = [str(launcher), "--num_gpus", "2", "--master_port", free_port(), "--no_local_rank",
            str(REPO / "tests/integration/dist_methods_worker.py"), str(tmp_path)]
    os.environ.update(launch_env)
    try:
        result = launch(args, timeout=420)
    finally:
        for key in launch_env:
            os.environ.pop(key, None)
    assert result.returncode == 0, result.stdout[-4000:]
    outcome = {s: json.loads((tmp_path / f"zero{s}-results.json").read_text()) for s in (0, 1, 2, 3)}
    assert "refused" in outcome[3]["smart"] and "ZeRO stage 3" in outcome[3]["smart"]["refused"]
    for stage in (1, 2, 3):
        for name in METHODS:
            if "refused" in outcome[stage][name]:
                assert (stage, name) == (3, "smart")
                continue
            ref = torch.load(tmp_path / f"zero0-{name}.pt")
            got = torch.load(tmp_path / f"zero{stage}-{name}.pt")
            worst = max((ref[k] - got[k]).abs().max().item() for k in ref)
            assert worst < 1e-4, f"{name} under ZeRO-{stage} differs from ZeRO-0 by {worst:.2e}"


def test_a_killed_process_stops_the_run_with_a_usable_checkpoint(tokenizer_dir, tmp_path):
    run = tmp_path / "killed"
    args = ["bash", "launch/local.sh", "2", *pretrain_args(tokenizer_dir, run, 4, 2, "--max-steps", "400", "save_every=2")]
    proc = subprocess.Popen(args, cwd=REPO, env=launch_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.time() + TIMEOUT
        while not list((run / "checkpoints").glob("step-*[0-9]")) and time.time() < deadline:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            time.sleep(0.5)
        assert list((run / "checkpoints").glob("step-*[0-9]")), "no checkpoint before the deadline"
        listing = subprocess.run(["ps", "-o", "pid=,args=", "--sid", str(proc.pid)], capture_output=True, text=True).stdout
        workers = [int(line.split()[0]) for line in listing.splitlines() if "-m alum.cli" in line and "deepspeed" not in line]
        assert len(workers) == 2, listing
        os.kill(max(workers), signal.SIGKILL)  # the rank started last
        started = time.time()
        out, _ = proc.communicate(timeout=120)
        waited = time.time() - started
    finally:
        kill_group(proc)
    assert proc.returncode != 0
    assert waited < 120
    assert "exits with return code" in out or "exited" in out.lower(), out[-2000:]
    latest = sorted(p for p in (run / "checkpoints").iterdir() if not p.name.endswith(".partial"))[-1]
    state = torch.load(latest / "state.pt", weights_only=False)
    assert state["world_size"] == 2
    # the checkpoint is usable: resumed, the run reaches a later step exactly as one that was never killed
    stop = f"--stop-after={state['step'] + 2}"
    two(*args[3:], stop, "--resume")
    reference = tmp_path / "uninterrupted"
    two(*pretrain_args(tokenizer_dir, reference, 4, 2, "--max-steps", "400", "save_every=2"), stop)
    step = f"step-{state['step'] + 2:08d}"
    assert_same_state(checkpoint_contents(reference / "checkpoints" / step), checkpoint_contents(run / "checkpoints" / step))


def test_finetune_runs_under_the_launcher_in_two_processes(model_dir, tmp_path):
    train, dev = sst2_subset(tmp_path, 64, 32)
    out = tmp_path / "ft"
    result = two("finetune", "--config", "sst2", "--model", str(model_dir), "--train-file",
                 str(train), "--dev-file", str(dev), "--output", str(out), "--seeds", "1", "--max-steps", "4",
                 "data.max_seq_len=32", "engine.micro_batch_size=8", "--deepspeed", "zero2")
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["method"] == "smart" and 0 <= summary["mean"] <= 1
    assert (out / "best" / "config.json").is_file()
    assert result.stdout.count("summary:") == 1  # rank 0 alone reports
