"""Bad input to `alum finetune` ends in one line naming the file, line or key, exit status 2, before any
training (no output directory is created)."""

from __future__ import annotations

import pytest

from alum.cli import main
from support.data import sst2_subset, write_tsv
from support.models import build_model_dir


@pytest.fixture
def files(tmp_path):
    return sst2_subset(tmp_path, 16, 8)


def fails(capsys, tmp_path, model, train, dev, *extra) -> str:
    out = tmp_path / "out"
    code = main(["finetune", "--config", "sst2", "--model", str(model), "--train-file",
                 str(train), "--dev-file", str(dev), "--output", str(out), "--max-steps", "1", *extra])  # flags first
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("alum finetune: error: ")
    assert not out.exists(), "nothing may be written before the input is known to be good"
    return err


def test_missing_column(capsys, tmp_path, model_dir, files):
    train = write_tsv(tmp_path / "renamed.tsv", ["text", "label"], [["good", 1]])
    err = fails(capsys, tmp_path, model_dir, train, files[1])
    assert "renamed.tsv: no column 'sentence' (task.text_columns)" in err


def test_label_outside_the_task_set(capsys, tmp_path, model_dir, files):
    dev = write_tsv(tmp_path / "dev3.tsv", ["sentence", "label"], [["good", 1], ["so so", 3]])
    err = fails(capsys, tmp_path, model_dir, files[0], dev)
    assert "dev3.tsv:3: label '3' in column 'label' is not one of the task's labels" in err


def test_empty_split(capsys, tmp_path, model_dir, files):
    dev = write_tsv(tmp_path / "empty.tsv", ["sentence", "label"], [])
    assert "empty.tsv: the dev split has no examples" in fails(capsys, tmp_path, model_dir, files[0], dev)


def test_model_directory_without_weights(capsys, tmp_path, model_dir, files):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((model_dir / "config.json").read_text())
    err = fails(capsys, tmp_path, bare, *files)
    assert f"{bare}: no weights (model.safetensors or pytorch_model.bin)" in err


def test_tokenizer_that_does_not_match_the_model(capsys, tmp_path, model_dir, files):
    small = build_model_dir(tmp_path / "small-vocab", vocab_size=50)  # the 400-token tokenizer does not fit it
    err = fails(capsys, tmp_path, small, *files, f"tokenizer={model_dir}")
    assert "the tokenizer has 400 tokens but the model" in err and "does not match the model" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["adversarial.options.smart.alpah=2"], "unknown key 'adversarial.options.smart.alpah' (did you mean 'alpha'?)"),
        (["--method", "none,fgmm"], "adversarial.method: unknown method 'fgmm'"),
        (["--method", "freeat", "engine.grad_accum=2"], "engine.grad_accum: freeat takes an optimizer step"),
        (["data.max_seq_len=100"], "data.max_seq_len is 100 but the model in"),
    ],
)
def test_config_errors_name_the_key(capsys, tmp_path, model_dir, files, extra, message):
    assert message in fails(capsys, tmp_path, model_dir, *files, *extra)


def test_no_model_given(capsys, tmp_path):
    code = main(["finetune", "--config", "sst2"])
    assert code == 2 and "model: not set" in capsys.readouterr().err
