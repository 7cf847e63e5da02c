"""A pretraining process killed at any moment, by SIGKILL (nothing runs after it) or SIGTERM (a scheduler's
polite stop), loses at most the steps since its last checkpoint: `--resume` ends on the same weights, to the
bit, as a run never interrupted, and leaves only the last `keep_checkpoints` complete checkpoints.

Each run is a real `alum pretrain` process on a tiny model (12 steps, ALUM from step 6, dropout on, a
checkpoint every step). SIGKILLs land at each point inside writing a checkpoint or the export (chosen by
kill_worker.py, which wraps the calls from outside), and at random moments from this process. The kills
are chained: each resumed run is killed at the next point, so every resume starts from what a kill left."""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from support.pretrain import assert_same_state, checkpoint_contents, pretrain_args
from support.processes import kill_group, launch, one, start

pytestmark = pytest.mark.slow  # some 40 process starts: minutes, not seconds

WORKER = Path(__file__).with_name("kill_worker.py")
STEPS = 12
TIMING = {"tokens_per_s", "step_time", "adv_time_share"}


def run_args(tokenizer: Path, output: Path, cache: Path) -> list[str]:
    return pretrain_args(
        tokenizer, output, 4, 0, "--max-steps", str(STEPS), "adversarial.start_step=6", "eval_every=6", "save_every=1",
        "keep_checkpoints=2", f"data.cache_dir={cache}",
        "model.overrides={hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}",
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prepared")  # the corpus is prepared once, by the reference run


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tokenizer_dir, cache) -> Path:
    """The same run, never interrupted."""
    output = tmp_path_factory.mktemp("kills") / "reference"
    one(*run_args(tokenizer_dir, output, cache))
    return output


def records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING} for x in lines]


def assert_ends_as(run: Path, reference: Path) -> None:
    """The same final weights, final checkpoint (weights, Adam moments, scheduler, random streams, data
    position) and log as the reference; only the last two complete checkpoints; nothing half-written."""
    weights = [load_file(r / "final" / "model.safetensors") for r in (run, reference)]
    assert_same_state(*weights, "final/model.safetensors")
    last = f"step-{STEPS:08d}"
    assert_same_state(checkpoint_contents(run / "checkpoints" / last),
                      checkpoint_contents(reference / "checkpoints" / last), last)
    assert records(run) == records(reference)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [f"step-{STEPS - 1:08d}", last]
    leftovers = [p for p in run.rglob("*") if p.name.endswith((".partial", ".old", ".tmp"))]
    assert leftovers == [], leftovers


def killed(output: str, point: str) -> str:
    """The path the worker reported dying at."""
    assert f"kill_worker: SIGKILL at {point} (" in output, output[-3000:]
    return output.split(f"kill_worker: SIGKILL at {point} (")[1].split(")\n")[0]


# (point, which checkpoint write of the process it dies in, what the kill leaves on disk)
CHAIN = [
    ("partial-made", 2, lambda run, at: Path(at).name.endswith(".partial") and not any(Path(at).iterdir())),
    ("engine-written", 2, lambda run, at: (Path(at) / "engine").is_dir() and not (Path(at) / "rng-rank0.pt").exists()),
    ("rng-written", 2, lambda run, at: Path(at).parent.name.endswith(".partial")
     and not (Path(at).parent / "state.pt").exists()),
    ("state-tmp", 2, lambda run, at: Path(at).is_file() and not Path(at).with_name("state.pt").exists()),
    ("state-written", 2, lambda run, at: Path(at).parent.name.endswith(".partial") and Path(at).is_file()),
    ("published", 2, lambda run, at: len(list((run / "checkpoints").glob("step-*[0-9]"))) == 3),
    ("pruning", 2, lambda run, at: Path(at).is_dir() and not (Path(at) / "engine").exists()),
    ("export-published", 1, lambda run, at: (run / "final").is_dir() and not (run / "final_metrics.json").exists()),
    # the finished run resumed re-saves its last step over the complete one: killed between the two renames
    ("old-moved-aside", 1, lambda run, at: Path(at).is_dir() and not Path(at).with_suffix("").exists()),
    # resumed from step 11, it re-exports over the final/ of the earlier export: killed between the renames
    ("export-aside", 1, lambda run, at: Path(at).is_dir() and not (run / "final").exists()),
]


def test_kills_at_every_point_of_a_checkpoint_write(tmp_path, tokenizer_dir, cache, reference, capsys):
    run = tmp_path / "run"
    args = run_args(tokenizer_dir, run, cache)
    for i, (point, nth, left) in enumerate(CHAIN):
        result = launch([sys.executable, str(WORKER), point, str(nth), *args, *(["--resume"] if i else [])])
        assert result.returncode == -signal.SIGKILL, f"{point}: exit {result.returncode}\n{result.stdout[-3000:]}"
        at = killed(result.stdout, point)
        listing = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert left(run, at), f"after a kill at {point} ({at}): {listing}"
    one(*args, "--resume")
    assert_ends_as(run, reference)
    with capsys.disabled():
        print(f"\nkills survived at {len(CHAIN)} points: {', '.join(p for p, _, _ in CHAIN)}")


def trained_past(run: Path, step: int) -> bool:
    """Whether this run's log has a training record past `step` (a line being written is skipped)."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "phase" in record and record["step"] > step:
            return True
    return False


def resume_point(run: Path) -> int:
    done = sorted((run / "checkpoints").glob("step-*[0-9]")) if (run / "checkpoints").is_dir() else []
    return int(done[-1].name.split("-")[1]) if done else 0


def test_kills_at_random_moments_of_training(tmp_path, tokenizer_dir, cache, reference, capsys):
    """20 SIGKILLs, each at a random delay (seeded) after the resumed run took its first step: inside a
    step, a checkpoint write, the export. A chain that reaches the end is checked and a new one begins."""
    draw = random.Random(20261203)
    kills, finished, chains, moments = 0, 0, 0, []
    run = None
    while kills < 20:
        if run is None:
            chains += 1
            run = tmp_path / f"chain-{chains}"
        args = run_args(tokenizer_dir, run, cache)
        begin = resume_point(run)
        with open(tmp_path / f"log-{kills}.txt", "w") as log:
            proc = start([sys.executable, "-m", "alum.cli", *args, "--resume"], log)
            try:
                if begin == STEPS:  # killed after its last checkpoint: this run only saves and exports again
                    proc.wait(timeout=240)
                deadline = time.time() + 240
                while not trained_past(run, begin) and proc.poll() is None and time.time() < deadline:
                    time.sleep(0.02)
                assert begin == STEPS or trained_past(run, begin), (tmp_path / f"log-{kills}.txt").read_text()[-3000:]
                delay = draw.uniform(0.0, 1.5)
                time.sleep(delay if proc.poll() is None else 0)
                alive = proc.poll() is None
                kill_group(proc)
                proc.wait(timeout=60)
            finally:
                kill_group(proc)
        if alive:
            kills += 1
            moments.append(f"{delay:.2f}s after step {begin + 1} (resumed at {begin}, next at {resume_point(run)})")
        else:  # the run ended before the kill: it must end as the reference does
            assert proc.returncode == 0, (tmp_path / f"log-{kills}.txt").read_text()[-3000:]
            assert_ends_as(run, reference)
            finished += 1
            run = None
    if run is not None:
        one(*run_args(tokenizer_dir, run, cache), "--resume")
        assert_ends_as(run, reference)
        finished += 1
    with capsys.disabled():
        print(f"\n{kills} random kills survived over {chains} chain(s), {finished} finished bit-identical:\n  "
              + "\n  ".join(moments))


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_from_the_command_line_checkpoints_exits_and_resumes_exactly(tmp_path, tokenizer_dir, cache,
                                                                              reference, sig, status):
    """SIGTERM (a scheduler's preemption) exits 0; Ctrl-C exits 130, as an interrupted command does, so that
    a script running it stops too. Both end the step and write a checkpoint first."""
    run = tmp_path / "run"
    args = run_args(tokenizer_dir, run, cache)
    with open(tmp_path / "log.txt", "w") as log:
        proc = start([sys.executable, "-m", "alum.cli", *args], log)
        try:
            deadline = time.time() + 240
            while not trained_past(run, 0) and proc.poll() is None and time.time() < deadline:
                time.sleep(0.02)
            proc.send_signal(sig)
            code = proc.wait(timeout=120)
        finally:
            kill_group(proc)
    output = (tmp_path / "log.txt").read_text()
    assert code == status, output[-3000:]
    assert "stopped at step" in output and "continue with --resume" in output, output[-3000:]
    stopped = resume_point(run)
    assert 1 <= stopped < STEPS and not (run / "final").exists()
    assert (run / "checkpoints" / f"step-{stopped:08d}" / "state.pt").is_file()
    one(*args, "--resume")
    assert_ends_as(run, reference)
