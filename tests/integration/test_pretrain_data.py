"""Pretraining data end to end: a streaming run stopped and resumed ends bit-identical to an uninterrupted
one, and resumes by seeking; a corpus prepared once (`alum prepare`) trains without its text and exactly
as the one-command path does; a mismatched prepared corpus is refused in one line; two processes tokenise a
fresh corpus once."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from alum.cli import main
from alum.pretrain import stream
from alum.pretrain import train as pretrain_train
from support.pretrain import pretrain_args, tiny_config
from support.processes import two


def final_weights(cfg) -> dict[str, torch.Tensor]:
    return load_file(Path(cfg.output) / "final" / "model.safetensors")


def assert_same_weights(a, b) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def test_streaming_run_stopped_and_resumed_is_bit_identical(tmp_path, tokenizer_dir, small_corpus, monkeypatch):
    # One sentence a line, read 4 lines at a time: the resumed run has to read the file again, from an offset.
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("".join(s.strip() + ".\n" for s in small_corpus.read_text().split(". ") if s.strip()))
    monkeypatch.setattr(stream, "_TEXTS_PER_BATCH", 4)
    streaming = {"data.streaming": "true", "data.shuffle_buffer": 8, "keep_checkpoints": 5}
    whole = tiny_config(tmp_path / "a", tokenizer_dir, sentences, **streaming)
    pretrain_train.run(whole)

    parts = tiny_config(tmp_path / "b", tokenizer_dir, sentences, stop_after=2, **streaming)
    assert pretrain_train.run(parts) == {"step": 2, "stopped": True}
    saved = torch.load(Path(parts.output) / "checkpoints/step-00000002/state.pt", weights_only=False)["data"]
    assert saved["buffer"].shape[0] == 8 and saved["position"] > 0  # the buffer and the reader's offset

    opened = []
    original = stream.texts
    monkeypatch.setattr(stream, "texts", lambda part, at, *a: (opened.append(at), original(part, at, *a))[1])
    parts.stop_after = None
    pretrain_train.run(parts, resume=True)
    assert_same_weights(final_weights(whole), final_weights(parts))
    # the validation head is read from byte 0; training continues at the saved offset, not at its start
    assert saved["position"] in opened and opened.count(0) == 1


def test_prepared_corpus_trains_without_its_text_as_the_one_command_path(tmp_path, tokenizer_dir, small_corpus):
    copy = tmp_path / "copy" / "text.txt"
    copy.parent.mkdir()
    shutil.copy(small_corpus, copy)
    prepared = tmp_path / "prepared"
    assert main(["prepare", "--tokenizer", str(tokenizer_dir), "--files", str(copy), "--output", str(prepared),
                 "--block-size", "32", "--no-progress"]) == 0
    shutil.rmtree(copy.parent)  # training must not need the text

    from_dir = tiny_config(tmp_path / "a", tokenizer_dir, small_corpus, max_steps=4,
                           **{"data.prepared": str(prepared), "data.files": "[]"})
    pretrain_train.run(from_dir)
    one_command = tiny_config(tmp_path / "b", tokenizer_dir, small_corpus, max_steps=4)
    pretrain_train.run(one_command)
    assert_same_weights(final_weights(from_dir), final_weights(one_command))


TINY_RUN = ["--max-steps", "2", "data.validation=2", "engine.micro_batch_size=2", "adversarial.preflight=false",
            "model.overrides={hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}"]


def test_a_prepared_corpus_of_another_block_size_is_refused_before_anything_is_built(tmp_path, tokenizer_dir,
                                                                                     small_corpus, capsys, monkeypatch):
    prepared = tmp_path / "prepared"
    assert main(["prepare", "--tokenizer", str(tokenizer_dir), "--files", str(small_corpus), "--output",
                 str(prepared), "--block-size", "32", "--no-progress"]) == 0
    capsys.readouterr()
    for step in ("load_tokenizer", "load_model", "build_engine"):  # the manifest is read first
        monkeypatch.setattr(pretrain_train, step, lambda *a, **k: pytest.fail("built before the data was checked"))
    code = main(["pretrain", "--config", "tiny", "--tokenizer", str(tokenizer_dir), "--data-dir", str(prepared),
                 "--output", str(tmp_path / "run"), "data.block_size=64"])  # the preset's data.files give way
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("alum pretrain: error: data.block_size: ") and "block_size 32, this run asks 64" in err
    assert not (tmp_path / "run").exists()


def test_a_prepared_corpus_gives_the_run_its_tokenizer_and_block_size(tmp_path, tokenizer_dir, small_corpus, capsys):
    prepared = tmp_path / "prepared"
    assert main(["prepare", "--tokenizer", str(tokenizer_dir), "--files", str(small_corpus), "--output",
                 str(prepared), "--block-size", "32", "--no-progress"]) == 0
    capsys.readouterr()
    # the preset's block size (128) gives way to the manifest's; the tokenizer is the one it was made with
    code = main(["pretrain", "--config", "tiny", "--data-dir", str(prepared), "--output", str(tmp_path / "run"),
                 *TINY_RUN])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    assert f"from the prepared corpus's manifest: data.tokenizer={tokenizer_dir.resolve()}, data.block_size=32" in out
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]
    assert (saved["tokenizer"], saved["block_size"]) == (str(tokenizer_dir.resolve()), 32)


def test_prepare_into_a_path_under_a_file_is_a_one_line_error(tmp_path, tokenizer_dir, small_corpus, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    code = main(["prepare", "--tokenizer", str(tokenizer_dir), "--files", str(small_corpus), "--output",
                 str(taken / "prepared"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert err == f"alum prepare: error: --output {taken / 'prepared'}: '{taken}' is a file, not a directory"
    assert taken.read_text() == "mine"


def prepare_cli(tokenizer, files, output, capsys, *extra) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["prepare", "--tokenizer", str(tokenizer), "--files", *map(str, files), "--output", str(output),
                 "--block-size", "16", "--num-proc", "1", "--no-progress", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_prepare_counts_skipped_lines_even_when_there_are_none(tmp_path, tokenizer_dir, small_corpus, capsys):
    code, out, _ = prepare_cli(tokenizer_dir, [small_corpus], tmp_path / "clean", capsys)
    assert code == 0 and "(200 texts, 0 undecodable lines skipped)" in out, out
    mixed = tmp_path / "mixed.txt"
    lines = small_corpus.read_bytes().splitlines(keepends=True)
    mixed.write_bytes(b"".join(lines[:2] + [b"\xff\xfe bad\n"] + lines[2:9] + [b"bad \xc3\n"] + lines[9:]))
    code, out, _ = prepare_cli(tokenizer_dir, [mixed], tmp_path / "mixed", capsys)
    assert code == 0 and f"2 undecodable lines skipped, the first at {mixed}:3" in out, out


def test_a_corpus_the_tokenizer_cannot_represent_is_warned_with_its_share(tmp_path, tokenizer_dir, model_dir,
                                                                         small_corpus, capsys):
    # model_dir's tokenizer is word-level, trained on SST-2 sentences: most WikiText words are unknown to it
    code, _, err = prepare_cli(model_dir, [small_corpus], tmp_path / "unfit", capsys)
    manifest = json.loads((tmp_path / "unfit" / "manifest.json").read_text())
    share = manifest["unknown_tokens"] / manifest["text_tokens"]
    assert code == 0 and share > 0.3
    assert err.strip() == (f"alum prepare: warning: {share:.1%} of the tokens of the corpus are the unknown token "
                           f"'[UNK]' ({manifest['unknown_tokens']:,} of {manifest['text_tokens']:,}): the tokenizer "
                           "does not fit this text")
    code, _, err = prepare_cli(tokenizer_dir, [small_corpus], tmp_path / "fit", capsys)  # byte-level BPE: none
    assert code == 0 and not err.strip()
    # pretraining from the unfit corpus says so too, in its log
    cfg = tiny_config(tmp_path / "run", model_dir, small_corpus, max_steps=3, **{
        "data.prepared": str(tmp_path / "unfit"), "data.files": "[]", "data.block_size": 16,
        "adversarial.preflight": "false"})
    capsys.readouterr()
    pretrain_train.run(cfg)
    assert f"warning: {share:.1%} of the tokens of the corpus are the unknown token" in capsys.readouterr().out


@pytest.mark.slow
def test_two_processes_tokenise_a_fresh_corpus_once(tmp_path, tokenizer_dir):
    cache = tmp_path / "cache"
    result = two(*pretrain_args(tokenizer_dir, tmp_path / "run", 4, 0, f"data.cache_dir={cache}", "--max-steps", "2",
                                "adversarial.start_step=1"))
    built = [line for line in result.stdout.splitlines() if "prepared corpus: built" in line]
    reads = re.findall(r"prepared corpus: rank (\d) reads", result.stdout)
    assert len(built) == 1 and "on rank 0" in built[0], result.stdout[-3000:]
    assert sorted(reads) == ["0", "1"]
    (directory,) = [d for d in cache.iterdir() if d.is_dir()]
    assert json.loads((directory / "manifest.json").read_text())["built_by"]["rank"] == 0
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


def test_a_saved_dataset_prepares_the_blocks_its_text_file_prepares(tmp_path, tokenizer_dir, small_corpus, capsys):
    import datasets
    import pyarrow as pa

    texts = small_corpus.read_text(encoding="utf-8").splitlines()
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"body": texts})}).save_to_disk(str(tmp_path / "saved"))
    assert prepare_cli(tokenizer_dir, [small_corpus], tmp_path / "from-text", capsys)[0] == 0
    code, out, err = prepare_cli(tokenizer_dir, [tmp_path / "saved"], tmp_path / "from-saved", capsys,
                                 "--text-column", "body")
    assert code == 0, err

    def blocks(folder: Path) -> list:
        shards = sorted(folder.rglob("part-*.arrow"))
        assert shards
        return [row for s in shards for row in pa.ipc.open_stream(pa.memory_map(str(s))).read_all().to_pylist()]

    expected = blocks(tmp_path / "from-text")
    assert len(expected) > 10 and blocks(tmp_path / "from-saved") == expected
