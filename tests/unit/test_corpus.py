"""The shared corpus reader: inputs, formats, bad bytes, sampling, and byte progress."""

from __future__ import annotations

import gzip
import json

import pytest

from alum.corpus import (
    PROGRESS_CHUNK,
    ReadStats,
    disk_bytes,
    ensure_nonempty,
    file_format,
    iter_texts,
    line_number,
    read_range,
    resolve_files,
)
from alum.errors import UserError

LINES = ["first line", "second: ünïcödé 日本語 😀", "third"]


def write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    if path.suffix == ".gz":
        text = gzip.compress(text)
    path.write_bytes(text)
    return path


def read_all(files, **kwargs):
    stats = ReadStats()
    texts = list(iter_texts(files, stats=stats, **kwargs))
    return texts, stats


def test_resolve_files_expands_dirs_and_globs_sorted(tmp_path):
    for name in ["b.txt", "a.txt", "sub/c.txt", ".hidden"]:
        write(tmp_path / "d" / name, "x\n")
    write(tmp_path / "g1.jsonl", "{}\n")
    write(tmp_path / "g2.jsonl", "{}\n")
    single = write(tmp_path / "one.txt", "x\n")
    files = resolve_files([tmp_path / "d", str(tmp_path / "g*.jsonl"), single])
    names = [f.relative_to(tmp_path).as_posix() for f in files]
    assert names == ["d/a.txt", "d/b.txt", "d/sub/c.txt", "g1.jsonl", "g2.jsonl", "one.txt"]


@pytest.mark.parametrize(
    "spec,message",
    [("missing.txt", "corpus path '.*missing.txt' not found"), ("*.none", "pattern '.*none' matches no file")],
)
def test_resolve_files_names_what_is_missing(tmp_path, spec, message):
    with pytest.raises(UserError, match=message):
        resolve_files([str(tmp_path / spec)])


def test_resolve_files_rejects_empty_dir_and_empty_list(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="directory .* has no files"):
        resolve_files([tmp_path / "empty"])
    with pytest.raises(UserError, match="no corpus files given"):
        resolve_files([])


@pytest.mark.parametrize(
    "name,kind",
    [("a.txt", "text"), ("a", "text"), ("a.txt.gz", "text"), ("a.jsonl.gz", "jsonl"), ("a.JSON", "jsonl"),
     ("a.csv", "csv"), ("a.tsv.gz", "tsv"), ("a.parquet", "parquet")],
)
def test_file_format_from_suffix(tmp_path, name, kind):
    assert file_format(tmp_path / name) == kind


@pytest.mark.parametrize("name", ["c.txt", "c.txt.gz"])
def test_text_lines_strip_line_ends_and_skip_blank(tmp_path, name):
    path = write(tmp_path / name, "first line\r\n\r\n  \nsecond: ünïcödé 日本語 😀\nthird")
    texts, stats = read_all([path])
    assert texts == LINES
    assert stats.lines == 3 and stats.empty_lines == 2 and stats.files == 1
    assert stats.bytes == sum(len(t.encode()) for t in LINES)


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz"])
def test_jsonl_reads_the_named_field(tmp_path, name):
    body = "".join(json.dumps({"body": t, "id": i}) + "\n" for i, t in enumerate(LINES)) + "\n"
    path = write(tmp_path / name, body)
    assert read_all([path], text_column="body")[0] == LINES
    with pytest.raises(UserError, match=r"c.jsonl(.gz)?:1: no 'text' field"):
        read_all([path])


def test_csv_and_tsv_columns(tmp_path):
    csv_path = write(tmp_path / "c.csv", 'id,text\n1,"a, quoted ""line"""\n2,plain\n')
    assert read_all([csv_path])[0] == ['a, quoted "line"', "plain"]
    tsv_path = write(tmp_path / "c.tsv", 'sentence\tlabel\nit\'s "odd\t1\n')
    assert read_all([tsv_path], text_column="sentence")[0] == ["it's \"odd"]
    with pytest.raises(UserError, match=r"c.csv: no 'body' column \(columns: id, text\)"):
        read_all([csv_path], text_column="body")


def test_parquet_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": LINES + [None], "n": [1, 2, 3, 4]}), path)
    texts, stats = read_all([path])
    assert texts == LINES and stats.empty_lines == 1
    with pytest.raises(UserError, match="no 'body' column"):
        read_all([path], text_column="body")


def test_bad_bytes_are_skipped_and_counted_or_stop_strict_runs(tmp_path):
    path = write(tmp_path / "bad.txt", b"good\nbad \xff byte\nalso good\n\xc3\n")
    texts, stats = read_all([path])
    assert texts == ["good", "also good"]
    assert stats.bad_lines == 2 and stats.first_bad == f"{path}:2"
    with pytest.raises(UserError, match=r"bad.txt:2: not valid UTF-8 \(byte 0xff at column 5\)"):
        read_all([path], strict=True)


def test_corrupt_gzip_is_a_user_error(tmp_path):
    path = tmp_path / "c.txt.gz"
    path.write_bytes(gzip.compress(b"x\n" * 1000)[:30])
    with pytest.raises(UserError, match="c.txt.gz: cannot read"):
        read_all([path])


def test_sample_keeps_a_seeded_fraction(tmp_path):
    path = write(tmp_path / "c.txt", "".join(f"line {i}\n" for i in range(2000)))
    half, _ = read_all([path], sample=0.5, seed=1)
    again, _ = read_all([path], sample=0.5, seed=1)
    other, _ = read_all([path], sample=0.5, seed=2)
    assert half == again and half != other
    assert 850 < len(half) < 1150
    numbers = [int(text.split()[1]) for text in half]
    assert numbers == sorted(numbers)  # a sample keeps the corpus order


def test_ensure_nonempty(tmp_path):
    blank = write(tmp_path / "blank.txt", "\n  \n\t\n")
    with pytest.raises(UserError, match="corpus is empty .*blank.txt"):
        ensure_nonempty([blank])
    ensure_nonempty([blank, write(tmp_path / "full.txt", "\nx\n")])


@pytest.mark.parametrize("name", ["big.txt", "big.txt.gz", "big.jsonl"])
def test_progress_adds_up_to_the_bytes_on_disk(tmp_path, name):
    line = json.dumps({"text": "word " * 40}) if name.endswith("jsonl") else "word " * 40
    count = 3 * PROGRESS_CHUNK // len(line)
    path = write(tmp_path / name, (line + "\n") * count)
    small = write(tmp_path / "small.txt", "x\n")
    calls = []
    texts = list(iter_texts([path, small], progress=calls.append))
    assert len(texts) == count + 1
    assert sum(calls) == disk_bytes([path, small])
    assert all(n > 0 for n in calls)
    assert len(calls) >= 3  # reported during the big file, not only at its end


def test_progress_on_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(10000)]}), path, row_group_size=2000)
    calls = []
    assert len(list(iter_texts([path], progress=calls.append))) == 10000
    assert sum(calls) == path.stat().st_size and len(calls) > 1


def test_a_range_names_the_line_of_a_bad_record_wherever_it_starts(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "one"}\n{"text": "two"}\n{"text": \n{"text": "four"}\n')
    cut = len('{"text": "one"}\n') + 3  # inside line 2: this range starts at line 3
    with pytest.raises(UserError, match=r"c.jsonl:3: not valid JSON"):
        list(read_range(path, cut, path.stat().st_size))
    assert line_number(path, 0) == 1 and line_number(path, path.stat().st_size) == 5


def test_a_saved_dataset_is_read_as_its_rows_and_a_dataset_dict_by_split(tmp_path):
    import datasets

    rows = datasets.Dataset.from_dict({"body": LINES, "n": [1, 2, 3]})
    rows.save_to_disk(str(tmp_path / "one"), num_shards=2)  # two arrow files, read in the dataset's order
    assert len(list((tmp_path / "one").glob("*.arrow"))) == 2
    datasets.DatasetDict({"train": rows, "validation": rows.select([2]).flatten_indices()}).save_to_disk(
        str(tmp_path / "dict"))
    assert list(iter_texts(resolve_files([tmp_path / "one"]), text_column="body")) == LINES
    assert list(iter_texts(resolve_files([tmp_path / "dict"], split="validation"), text_column="body")) == ["third"]
    with pytest.raises(UserError, match=r"dict: no split 'test' \(data.split\); the dataset holds train, validation"):
        resolve_files([tmp_path / "dict"], split="test", split_key="data.split")
    with pytest.raises(UserError, match=r"data-00000-of-00001.arrow: no 'text' column \(columns: body, n\)"):
        list(iter_texts(resolve_files([tmp_path / "dict"])))
    with pytest.raises(UserError, match=r"'.*one' is a `datasets` dataset saved with save_to_disk: name the folder"):
        resolve_files([tmp_path / "one" / "state.json"])

