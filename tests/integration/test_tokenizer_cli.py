"""`alum tokenizer train` and `alum tokenizer stats` end to end, and every bad input the issue lists:
one line on stderr, exit 2, and no output directory written or lost."""

from __future__ import annotations

import gzip
import json

import pytest

from alum.cli import main
from support.paths import CONFIGS, SAMPLE

PRESETS = CONFIGS / "tokenizer"


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def train(capsys, output, *extra, files=(SAMPLE,), vocab=500):
    return run(capsys, "tokenizer", "train", *extra, "--files", *files, "--vocab-size", vocab, "--output", output,
               "--no-progress")


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("alum tokenizer: error: ")
    return lines[0]


def load(directory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)


def test_short_form_trains_a_tokenizer_transformers_loads(tmp_path, capsys):
    code, out, err = train(capsys, tmp_path / "tok")
    assert code == 0, err
    assert out.startswith("alum tokenizer train: resolved config\ncorpus:")
    assert "vocab_size: 500" in out and f"wrote {tmp_path / 'tok'}: 500 tokens" in out
    tok = load(tmp_path / "tok")
    assert len(tok) == 500 and tok.mask_token == "<mask>"
    saved = (tmp_path / "tok" / "config.yaml").read_text()
    assert saved in out  # the printed config is the saved one


def test_preset_with_overrides_before_and_after_files(tmp_path, capsys):
    code, out, err = run(
        capsys, "tokenizer", "train", "--config", PRESETS / "bert-bpe.yaml", "bpe.min_frequency=3",
        "bpe.vocab_size=450", "--files", SAMPLE, "model_max_length=128", "--output", tmp_path / "tok",
        "--no-progress",
    )
    assert code == 0, err
    tok = load(tmp_path / "tok")
    assert tok.cls_token == "[CLS]" and tok.model_max_length == 128 and len(tok) == 450
    stats = json.loads((tmp_path / "tok" / "stats.json").read_text())
    assert stats["corpus"]["files"] == 1  # the override after --files was not taken for a file


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    code, _, err = run(capsys, "tokenizer", "train", "--files", SAMPLE, "--vocab-size", 300, "--output",
                       tmp_path / "tok")
    assert code == 0
    assert "reading corpus: 100%" in err and "computing merges" in err


def test_compressed_and_columnar_inputs(tmp_path, capsys):
    texts = SAMPLE.read_text(encoding="utf-8").splitlines()[:400]
    with gzip.open(tmp_path / "part.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"body": t}) + "\n" for t in texts[:200])
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "more").mkdir()
    pq.write_table(pa.table({"body": texts[200:]}), tmp_path / "more" / "part.parquet")
    code, _, err = train(capsys, tmp_path / "tok", "--text-column", "body",
                         files=[tmp_path / "*.jsonl.gz", tmp_path / "more"], vocab=400)
    assert code == 0, err
    stats = json.loads((tmp_path / "tok" / "stats.json").read_text())
    assert stats["corpus"]["files"] == 2
    assert stats["corpus"]["lines"] == sum(1 for t in texts if t.strip())


def test_a_saved_dataset_trains_the_tokenizer_its_text_file_trains(tmp_path, capsys):
    import datasets

    texts = SAMPLE.read_text(encoding="utf-8").splitlines()[:300]
    (tmp_path / "corpus.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    rows = datasets.Dataset.from_dict({"body": texts})
    datasets.DatasetDict({"train": rows.select(range(10)), "everything": rows}).save_to_disk(str(tmp_path / "saved"))
    assert train(capsys, tmp_path / "from-text", files=[tmp_path / "corpus.txt"], vocab=400)[0] == 0
    code, _, err = train(capsys, tmp_path / "from-dataset", "--text-column", "body", "--split", "everything",
                         files=[tmp_path / "saved"], vocab=400)
    assert code == 0, err
    vocab = [json.loads((tmp_path / d / "tokenizer.json").read_text())["model"]["vocab"]
             for d in ("from-text", "from-dataset")]
    assert vocab[0] == vocab[1]


def test_missing_path(tmp_path, capsys):
    code, _, err = train(capsys, tmp_path / "tok", files=[tmp_path / "nope.txt"])
    assert code == 2
    assert "corpus path" in error_line(err) and "nope.txt' not found" in err
    assert not (tmp_path / "tok").exists()


def test_empty_corpus(tmp_path, capsys):
    (tmp_path / "blank.txt").write_text("\n   \n\n")
    code, _, err = train(capsys, tmp_path / "tok", files=[tmp_path / "blank.txt"])
    assert code == 2 and "corpus is empty" in error_line(err)
    assert not (tmp_path / "tok").exists()


def bad_bytes_corpus(tmp_path):
    path = tmp_path / "bad.txt"
    good = SAMPLE.read_bytes().splitlines(keepends=True)[:300]
    path.write_bytes(b"".join(good[:10]) + b"caf\xe9 latin-1\n" + b"".join(good[10:]) + b"\xff\xfe\n")
    return path


def test_undecodable_bytes_are_skipped_with_a_count(tmp_path, capsys):
    path = bad_bytes_corpus(tmp_path)
    code, _, err = train(capsys, tmp_path / "tok", files=[path])
    assert code == 0
    assert f"alum tokenizer: warning: skipped 2 line(s) with undecodable bytes (first at {path}:11)" in err
    stats = json.loads((tmp_path / "tok" / "stats.json").read_text())
    assert stats["corpus"]["bad_lines"] == 2 and stats["corpus"]["first_bad"] == f"{path}:11"


def test_strict_stops_at_the_first_undecodable_line(tmp_path, capsys):
    path = bad_bytes_corpus(tmp_path)
    code, _, err = train(capsys, tmp_path / "tok", "--strict", files=[path])
    assert code == 2
    assert f"{path}:11: not valid UTF-8 (byte 0xe9 at column 4)" in error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]


def test_vocab_smaller_than_byte_alphabet_plus_specials(tmp_path, capsys):
    code, _, err = train(capsys, tmp_path / "tok", vocab=100)
    assert code == 2
    assert "bpe.vocab_size 100 is smaller than the byte-level alphabet (256) plus 5 special tokens" in error_line(err)
    assert not (tmp_path / "tok").exists()


def test_vocab_smaller_than_classic_alphabet_plus_specials(tmp_path, capsys):
    code, _, err = train(capsys, tmp_path / "tok", "bpe.algorithm=classic", vocab=120)
    assert code == 2 and "smaller than the corpus alphabet plus special tokens" in error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "tok"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    code, _, err = train(capsys, out)
    assert code == 2 and "exists and is not empty (use --overwrite to replace it)" in error_line(err)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    code, _, err = train(capsys, out, "--overwrite")
    assert code == 0, err
    assert not (out / "mine.txt").exists() and load(out).mask_token_id == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]


@pytest.mark.parametrize("existing", [False, True])
def test_failure_while_training_leaves_no_output_and_keeps_the_old(tmp_path, capsys, monkeypatch, existing):
    import alum.tokenizer.train as stage

    real = stage.iter_texts

    def dies_halfway(*args, **kwargs):
        for number, text in enumerate(real(*args, **kwargs)):
            if number == 500:
                raise KeyboardInterrupt  # Ctrl-C while the trainer reads
            yield text

    monkeypatch.setattr(stage, "iter_texts", dies_halfway)
    out = tmp_path / "tok"
    if existing:
        out.mkdir()
        (out / "tokenizer.json").write_text("old")
    code, _, err = train(capsys, out, *(["--overwrite"] if existing else []))
    assert code == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["tok"] if existing else [])
    if existing:
        assert (out / "tokenizer.json").read_text() == "old"


def test_failure_while_saving_leaves_no_half_written_output(tmp_path, capsys, monkeypatch):
    import alum.tokenizer.train as stage

    def half_save(tokenizer, cfg, directory):
        tokenizer.save(str(directory / "tokenizer.json"))
        raise OSError("disk full")

    monkeypatch.setattr(stage, "save_hf", half_save)
    with pytest.raises(OSError, match="disk full"):
        train(capsys, tmp_path / "tok")
    assert list(tmp_path.iterdir()) == []


def test_unknown_config_key(tmp_path, capsys):
    code, _, err = train(capsys, tmp_path / "tok", "bpe.vocab_sise=3")
    assert code == 2 and "unknown key 'bpe.vocab_sise' (did you mean 'vocab_size'?)" in error_line(err)


def test_missing_files_and_output_are_named(tmp_path, capsys):
    code, _, err = run(capsys, "tokenizer", "train", "--output", tmp_path / "tok")
    assert code == 2 and "no corpus files given" in error_line(err)
    code, _, err = run(capsys, "tokenizer", "train", "--files", SAMPLE)
    assert code == 2 and "no output directory given" in error_line(err)


def test_stats_table_and_json(tmp_path, capsys):
    assert train(capsys, tmp_path / "tok")[0] == 0
    code, out, err = run(capsys, "tokenizer", "stats", "--tokenizer", tmp_path / "tok", "--files", SAMPLE,
                         "--no-progress")
    assert code == 0, err
    assert "vocab size       500" in out and "unknown tokens   0 (0.000%)" in out
    code, out, _ = run(capsys, "tokenizer", "stats", "--tokenizer", tmp_path / "tok", "--files", SAMPLE, "--json",
                       "--no-progress")
    result = json.loads(out)
    assert code == 0 and result["vocab_size"] == 500 and result["unk_rate"] == 0.0
    assert result["bytes"] == json.loads((tmp_path / "tok" / "stats.json").read_text())["corpus"]["text_bytes"]
    assert 1.0 < result["bytes_per_token"] < 8.0 and 1.0 < result["tokens_per_word"] < 3.0


def test_stats_on_a_missing_tokenizer(tmp_path, capsys):
    code, _, err = run(capsys, "tokenizer", "stats", "--tokenizer", tmp_path / "none", "--files", SAMPLE)
    assert code == 2 and "tokenizer '" in error_line(err) and "not found" in err
