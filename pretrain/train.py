"""The pretraining loop: standard masked LM until the switch step, then the adversarial method (ALUM by
default) until the end. One DeepSpeed engine throughout; the method decides what a step computes, the
engine how gradients are reduced and applied.

Read top to bottom: setup, preflight, the loop, the end of the run.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from alum.adversarial import Method, Target, build_method, mean_reports
from alum.config import dump_yaml, save_config, to_dict
from alum.errors import UserError
from alum.io import plots
from alum.io.hf_dirs import load_tokenizer
from alum.io.publish import check_directory
from alum.training import distributed, rng
from alum.training.checkpoint import Checkpointer
from alum.training.engine import EngineTrainer, build_engine
from alum.training.metrics import MetricsLog, progress_bar, read_metrics, say
from alum.training.recompute import enable_gradient_checkpointing
from alum.pretrain.card import pretrain_card
from alum.pretrain.config import PretrainConfig
from alum.pretrain.data import MaskedBatches, batch_order, build_blocks, check_data, fixed_validation_batches
from alum.pretrain.export import save_run_tokenizer, write_hf_dir
from alum.pretrain.mlm import evaluate, mlm_forward
from alum.pretrain.model import load_model


def run(cfg: PretrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Train as `cfg` says; returns the final metrics. Raises UserError on bad input, before any work."""
    # ---- setup: everything that can fail on bad input fails here, before a step is taken ----
    output = Path(cfg.output)
    checkpoints = Checkpointer(output / "checkpoints", keep=cfg.keep_checkpoints)
    replace = check_output(output, checkpoints, resume, overwrite)  # a run there is removed only once all is checked
    switch = cfg.switch_step()
    if not 0 <= switch <= cfg.max_steps:
        raise UserError(f"{cfg.adversarial.start_key} puts the switch at step {switch}, beyond max_steps={cfg.max_steps}")
    standard = build_method("none")
    adversary = cfg.adversarial.build(cfg.adversarial.methods[0])  # its options and engine checked as cfg loaded
    if adversary.name == "none":
        switch = cfg.max_steps  # standard MLM throughout: no adversarial phase to log, plot or mark
    if cfg.data.tokenizer is None:
        raise UserError("data.tokenizer is not set (a tokenizer directory, e.g. from `alum tokenizer train`)")
    check_data(cfg.data, cfg.masking.whole_word)  # before anything is built

    say(f"alum pretrain: resolved config\n{dump_yaml(cfg)}")
    say(schedule(cfg, adversary.name, switch))
    rng.seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.data.tokenizer, "data.tokenizer")
    model, origin = load_model(cfg.model, tokenizer, cfg.data.block_size)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model, cfg.model.path or f"model.preset {cfg.model.preset}", "gradient_checkpointing")
    size = f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters"
    blocks = build_blocks(cfg.data, tokenizer, cfg.masking.whole_word)
    masked = MaskedBatches(tokenizer, cfg.masking, seed=cfg.seed)
    micro = cfg.engine.micro_batch_size
    order = batch_order(blocks, micro, cfg.seed)  # resumable by position: its state goes in each checkpoint
    validation = fixed_validation_batches(blocks.validation, masked, micro, cfg.eval_batches, cfg.seed)

    adversarial_updates = (cfg.max_steps - switch) * max(1, adversary.optimizer_steps)
    engine = build_engine(model, cfg.optim, cfg.engine, total_updates=switch + adversarial_updates)
    target = Target(engine.module, mlm_forward)
    adversary.setup(target, total_updates=adversarial_updates)  # SMART's teacher counts from the switch
    trainers = {False: EngineTrainer(engine, standard, target), True: EngineTrainer(engine, adversary, target)}
    device = engine.device
    generators = {"masking": masked.generator}

    step, counters = 0, {"skipped_updates": 0, "bad_streak": 0}
    if resume and checkpoints.latest() is not None:
        check_world_size(checkpoints.latest())
        state = Checkpointer.load(engine, checkpoints.latest(), generators)
        step, counters = state["step"], state["counters"]
        if state.get("switch", switch) != switch:
            raise UserError(f"{cfg.adversarial.start_key} puts the switch at step {switch}, but {checkpoints.latest()} "
                            f"was trained to switch at step {state['switch']}: resume with the same schedule "
                            f"(adversarial.start_step={state['switch']})")
        order.load(state["data"])
        adversary.load_state_dict(state["adversary"])
        say(f"model: {model.config.model_type}, {size}, resumed from {checkpoints.latest()} at step {step}")
    else:
        say(f"model: {origin}; {size}")
    if cfg.adversarial.preflight and switch < cfg.max_steps and step < cfg.max_steps:  # a phase to come
        preflight(adversary, target, preflight_batch(validation, masked, blocks, micro), device, generators)

    # ---- the output directory: written only now, when nothing above can fail on bad input ----
    if distributed.is_main():
        if replace:
            shutil.rmtree(output)
        output.mkdir(parents=True, exist_ok=True)
        save_config(cfg, output / "config.yaml")
        save_run_tokenizer(model, tokenizer, output)  # `alum export` of any checkpoint takes it from here
    distributed.barrier()
    log = MetricsLog(output, cfg.wandb, to_dict(cfg), resume=step > 0)
    log.truncate_after(step)

    def data():
        for item in order:
            rows = [blocks.train[i] for i in item] if blocks.train_size is not None else item
            yield {k: v.to(device) for k, v in masked(rows).items()}

    batches = data()

    def save(at_step: int) -> None:
        state = {"step": at_step, "counters": counters, "data": order.state(), "adversary": adversary.state_dict(),
                 "world_size": distributed.world_size(), "switch": switch}
        path = checkpoints.save(engine, at_step, state, generators)
        say(f"checkpoint: {path}")

    # ---- the loop ----
    window = Window()
    bar = progress_bar(cfg.max_steps, "pretrain", initial=step)
    with stop_signals() as stop:  # SIGTERM and Ctrl-C: a checkpoint at the end of the step
        while step < cfg.max_steps:
            signalled = distributed.any_rank(stop.requested, device)  # a signal reaches each rank at its own moment
            if signalled or (cfg.stop_after is not None and step >= cfg.stop_after):
                save(step)
                say(f"stopped at step {step} of {cfg.max_steps} with a checkpoint; continue with --resume")
                log.close()
                return {"step": step, "stopped": True, **({"signal": stop.signal} if stop.signal else {})}
            adversarial = step >= switch
            if step == switch:
                say(f"step {step + 1} of {cfg.max_steps}: switching from masked LM to '{adversary.name}'")
            started = time.perf_counter()
            micro_batches = [next(batches) for _ in range(cfg.engine.grad_accum)]
            # the step, in EngineTrainer.update: per micro-batch the forward and the adversarial part (the
            # method's loss) and the backward, then the optimizer step; `stepped`: the weights moved
            reports, stepped = trainers[adversarial].update(micro_batches)
            seconds = time.perf_counter() - started if device.type != "cuda" else _synced(started)
            step += 1
            counters["skipped_updates"] += not stepped
            counters["bad_streak"] = 0 if stepped else counters["bad_streak"] + 1
            window.add(reports, micro_batches, seconds, adversarial)
            bar.update(1)

            if counters["bad_streak"] >= cfg.max_bad_steps:
                latest = checkpoints.latest()
                raise UserError(
                    f"{cfg.max_bad_steps} updates in a row had non-finite losses (step {step}); stopping. "
                    f"The last complete checkpoint is {latest or 'none'}: lower optim.lr or check the data"
                )
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                metrics = window.summary(engine, adversary if adversarial else standard, trainers[adversarial], device)
                metrics.update(skipped_updates=counters["skipped_updates"])
                log.log(step, metrics, console=False)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", phase=metrics["phase"])
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                scores = distributed.mean_over_ranks(evaluate(engine.module, validation, device), device)
                if scores:
                    log.log(step, scores, console=False)
                    say(f"step {step}: " + " ".join(f"{k}={v:.4g}" for k, v in scores.items()))
            if step % cfg.save_every == 0 and step < cfg.max_steps:
                save(step)
        bar.close()

    # ---- the end: a checkpoint, the HF export, the loss curve ----
    save(step)
    export = output / "final"
    export_hf(engine, tokenizer, export, lambda staged: pretrain_card(cfg, staged, step, output))
    final = {}
    if distributed.is_main():
        records = read_metrics(output / "metrics.jsonl")
        switched = switch < cfg.max_steps
        png = plots.loss_curve(records, output / "loss_curve.png", switch if switched else None,
                               f"MLM pretraining, {adversary.name} from step {switch + 1}" if switched else "MLM pretraining")
        final = {"step": step, "export": str(export), "loss_curve": str(png),
                 **{k: v for r in records for k, v in r.items() if k.startswith("val_")}}
        (output / "final_metrics.json").write_text(json.dumps(final, indent=2))
        say(f"exported {export} (AutoModelForMaskedLM / AutoTokenizer); loss curve {png}")
    log.close()
    return final


def schedule(cfg: PretrainConfig, method: str, switch: int) -> str:
    """What the run will do, step by step, and the key that decided it."""
    total = cfg.max_steps
    if switch >= total:
        why = "adversarial.method=none" if method == "none" else f"{cfg.adversarial.start_key} puts the switch at the end"
        return f"schedule: masked LM for all {total} steps ({why})"
    standard = f"masked LM for steps 1-{switch}, then " if switch else ""
    return f"schedule: {standard}'{method}' for steps {switch + 1}-{total} ({cfg.adversarial.start_key})"


def check_output(output: Path, checkpoints: Checkpointer, resume: bool, overwrite: bool) -> bool:
    """Never lose work: an output directory with a run in it needs --resume or --overwrite. Returns whether
    the run there is to be replaced (by the caller, once every other check has passed)."""
    check_directory(output)
    if resume:
        return False
    has_run = checkpoints.latest() is not None or (output / "metrics.jsonl").exists()
    if has_run and not overwrite:
        raise UserError(f"{output} already holds a run: pass --resume to continue it or --overwrite to replace it")
    return has_run


def check_world_size(path: Path) -> None:
    """Data order, random streams and ZeRO partitions all depend on the number of processes."""
    written = len(list(path.glob("rng-rank*.pt")))
    if written != distributed.world_size():
        raise UserError(
            f"{path} was written by {written} process(es) and this run has {distributed.world_size()}: resume with "
            f"{written} (bash launch/local.sh {written} pretrain ... --resume)"
        )


def preflight_batch(validation, masked, blocks, micro):
    """A validation batch, or the first training blocks when none is held out (masking them draws from a
    copy of the generator, so the training stream is untouched)."""
    if validation:
        return validation[0]
    rows = [blocks.train[i] for i in range(micro)] if blocks.train_size is not None else blocks.train.take(micro)
    saved = masked.generator.get_state()
    batch = masked(rows)
    masked.generator.set_state(saved)
    return batch


def preflight(method: Method, target: Target, batch, device, generators) -> None:
    """One adversarial step at start-up, so an out-of-memory error shows now rather than at the switch.
    Its backward drops the graph: weights, optimizer and every random stream are left as they were."""

    class NoUpdate:
        def backward(self, loss):
            del loss

        def optimizer_step(self):
            pass

    saved_rng, saved_state = rng.capture(generators), copy.deepcopy(method.state_dict())
    try:
        method.step(target, {k: v.to(device) for k, v in batch.items()}, NoUpdate())
    except RuntimeError as err:  # torch.OutOfMemoryError is one
        if not _out_of_memory(err):
            raise
        raise UserError(
            f"the preflight '{method.name}' step ran out of memory ({str(err).splitlines()[0][:120]}): lower "
            "engine.micro_batch_size (raise engine.grad_accum to keep the batch) or data.block_size; "
            "adversarial.preflight=false skips this check, and the run would fail the same way at the switch"
        ) from None
    finally:
        rng.restore(saved_rng, generators)
        method.load_state_dict(saved_state)
    say(f"preflight: one '{method.name}' step ran at start-up")


# CUDA raises torch.OutOfMemoryError; other devices a RuntimeError that says so in their own words (torch's
# CPU allocator: "DefaultCPUAllocator: can't allocate memory", or "not enough memory" on some systems).
_OOM_WORDS = ("out of memory", "can't allocate memory", "not enough memory")


def _out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or any(w in str(err).lower() for w in _OOM_WORDS)


class Window:
    """Step reports between two log lines, averaged."""

    def __init__(self):
        self.reports, self.steps, self.tokens, self.seconds, self.adversarial = [], 0, 0, 0.0, False

    def add(self, reports, micro_batches, seconds, adversarial):
        self.reports += reports
        self.steps += 1
        self.tokens += sum(int(b["attention_mask"].sum()) for b in micro_batches)
        self.seconds += seconds
        self.adversarial = adversarial

    def summary(self, engine, method, trainer, device) -> dict:
        means = mean_reports(self.reports)
        adv_seconds = means.pop("adv_seconds")
        means.pop("adv_skipped")  # the method's running total is logged instead
        if "grad_norm" in means:
            means["grad_norm_delta"] = means.pop("grad_norm")
        values = distributed.mean_over_ranks(means, device)
        metrics = {
            "phase": "adversarial" if self.adversarial else "standard",
            "method": method.name,
            **values,
            "adv_skipped": method.skipped_total,
            "bad_losses": trainer.bad_losses,
            "lr": engine.get_lr()[0],
            "tokens_per_s": self.tokens * distributed.world_size() / max(self.seconds, 1e-9),
            "step_time": self.seconds / max(1, self.steps),
            "adv_time_share": adv_seconds / max(self.seconds, 1e-9),
        }
        self.__init__()
        return metrics


def export_hf(engine, tokenizer, path: Path, card) -> None:
    """The final model as a plain HF directory with its card (weights gathered from every rank under ZeRO-3)."""
    import deepspeed

    module = engine.module
    zero3 = engine.zero_optimization_stage() == 3
    params = list(module.parameters()) if zero3 else []
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=zero3):
        if distributed.is_main():
            write_hf_dir(module, tokenizer, path, card)
    distributed.barrier()


class _Stop:
    """The signal that asked the loop to stop after its current step, if one did."""

    signal: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None


@contextlib.contextmanager
def stop_signals() -> Iterator[_Stop]:
    """SIGTERM (a scheduler preempting the job) and a first Ctrl-C end the current step, write a checkpoint and
    stop; a second Ctrl-C stops at once, as Ctrl-C does elsewhere. The handlers before are back on exit."""
    stop = _Stop()

    def on_term(signum, frame):
        stop.signal = stop.signal or "SIGTERM"

    def on_interrupt(signum, frame):
        if stop.signal == "SIGINT":
            raise KeyboardInterrupt
        stop.signal = "SIGINT"
        # os.write, not print: a handler may run inside a print, or inside the progress bar's lock
        os.write(2, b"\nCtrl-C: ending this step, then a checkpoint (Ctrl-C again stops at once, losing the steps "
                    b"since the last checkpoint)\n")

    previous = {}
    for number, handler in ((signal.SIGTERM, on_term), (signal.SIGINT, on_interrupt)):
        try:
            previous[number] = signal.signal(number, handler)
        except ValueError:  # not the main thread (e.g. inside a test runner's worker)
            pass
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _synced(started: float) -> float:
    torch.cuda.synchronize()
    return time.perf_counter() - started
