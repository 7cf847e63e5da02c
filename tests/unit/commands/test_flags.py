"""The command line as a whole (alum/cli.py, alum/commands/flags.py): every stage takes the same flag for the
same thing, and `alum --version` answers."""

from __future__ import annotations

import argparse

import pytest

from alum import cli

# What several stages take, and the stages that take it. A stage left out of a list does not take the thing
# at all (evaluate reads no corpus; prepare has no config); one listed must take it under this name.
SHARED = {
    "--tokenizer": ["tokenizer stats", "prepare", "pretrain", "finetune", "evaluate"],
    "--files": ["tokenizer train", "tokenizer stats", "prepare", "pretrain"],
    "--text-column": ["tokenizer train", "tokenizer stats", "prepare", "pretrain"],
    "--strict": ["tokenizer train", "tokenizer stats", "prepare", "pretrain"],
    "--block-size": ["prepare", "pretrain"],
    "--model": ["finetune", "evaluate"],
    "--max-seq-len": ["finetune", "evaluate"],
    "--attack-eps": ["finetune", "evaluate"],
    "--attack-steps": ["finetune", "evaluate"],
    "--attack-step-size": ["finetune", "evaluate"],
    "--attack-norm": ["finetune", "evaluate"],
    "--attack-level": ["finetune", "evaluate"],
    "--no-attack": ["finetune", "evaluate"],
    "--output": ["tokenizer train", "prepare", "pretrain", "export", "finetune", "evaluate", "quickstart"],
    "--overwrite": ["tokenizer train", "prepare", "pretrain", "export", "finetune", "quickstart"],
    "--resume": ["pretrain", "finetune"],
    "--max-steps": ["pretrain", "finetune"],
    "--method": ["pretrain", "finetune"],
    "--deepspeed": ["pretrain", "finetune"],
    "--config": ["tokenizer train", "pretrain", "finetune"],
}


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, by its name as typed ("tokenizer stats")."""
    def subparsers(parser):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    found = {}
    for name, parser in subparsers(cli.build_parser()).items():
        if name == "tokenizer":
            found.update({f"tokenizer {action}": p for action, p in subparsers(parser).items()})
        else:
            found[name] = parser
    return found


@pytest.mark.parametrize("flag", SHARED)
def test_every_stage_takes_the_same_flag_for_the_same_thing(flag):
    taking = [name for name, parser in commands().items() if flag in parser._option_string_actions]
    assert sorted(taking) == sorted(SHARED[flag])


def test_version(capsys):
    from importlib.metadata import version

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"alum {version('alum')}"


def test_finetune_help_says_what_resume_keeps(capsys):
    assert cli.main(["finetune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--resume keep the seeds an earlier run in the output directory finished" in text
    assert "there is no resume inside a seed" in text and "latest complete checkpoint" not in text
