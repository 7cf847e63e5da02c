"""Reading text corpora, shared by the tokenizer and pretrain stages.

Inputs are files, globs or directories; plain text (one document or sentence per line), JSON lines, CSV,
TSV, parquet or arrow with a named text column; any of the text formats may be gzip-compressed (`.gz`). A
folder written by `datasets`' `save_to_disk` is read as the dataset it holds (a DatasetDict's split chosen by
name, `train` by default): its arrow files, in their order. Reading
is streamed line by line, so memory does not grow with the corpus. Bad bytes are skipped and counted, or
stop the run at the first one with its file and line (`strict`). An optional `progress` callback hears how
many bytes of the files on disk have been read, so a progress bar can show a true total, compressed or not.
"""

from __future__ import annotations

import csv
import glob
import gzip
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from alum.errors import UserError

FORMATS = ("text", "jsonl", "csv", "tsv", "parquet", "arrow")
_SUFFIX_FORMAT = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet",
                  ".arrow": "arrow"}


@dataclass
class ReadStats:
    files: int = 0
    lines: int = 0  # texts yielded
    bytes: int = 0  # UTF-8 bytes of the texts yielded
    bad_lines: int = 0  # lines skipped for undecodable bytes
    empty_lines: int = 0
    first_bad: str = ""  # "file:line" of the first skipped line, for the warning that counts them


# Progress is reported in chunks: a callback per line would cost more than reading the line.
PROGRESS_CHUNK = 1 << 20

Progress = Callable[[int], None]


def resolve_files(specs: Sequence[str | Path], what: str = "corpus", split: str = "train",
                  split_key: str = "the split") -> list[Path]:
    """Expand files, globs and directories (recursively, sorted) into a list of files; a `save_to_disk`
    folder into the arrow files of its dataset (of its `split`, named by `split_key`, for a DatasetDict)."""
    if not specs:
        raise UserError(f"no {what} files given")
    files: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir() and saved_dataset(path):
            files.extend(saved_arrow_files(path, split, split_key))
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not found:
                raise UserError(f"{what} directory '{spec}' has no files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(str(spec)):
            found = sorted(Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file())
            if not found:
                raise UserError(f"{what} pattern '{spec}' matches no file")
            files.extend(found)
        else:
            raise UserError(f"{what} path '{spec}' not found")
    for folder in dict.fromkeys(f.parent for f in files):
        if saved_dataset(folder) and any(f.parent == folder and f.suffix == ".json" for f in files):
            # a directory walked file by file reached a saved dataset's JSON: name the folder itself
            raise UserError(f"'{folder}' is a `datasets` dataset saved with save_to_disk: name the folder itself "
                            f"among the {what} paths, not the files in it")
    return files


def saved_arrow_files(folder: Path, split: str, split_key: str) -> list[Path]:
    """The arrow files of a `save_to_disk` folder, in the dataset's row order (its state.json lists them)."""
    if (folder / "dataset_dict.json").is_file():
        splits = _json_file(folder / "dataset_dict.json").get("splits", [])
        if split not in splits:
            raise UserError(f"{folder}: no split '{split}' ({split_key}); the dataset holds {', '.join(splits)}")
        folder = folder / split
    state = _json_file(folder / "state.json")
    names = [entry.get("filename") for entry in state.get("_data_files", []) if isinstance(entry, dict)]
    missing = [n for n in names if not n or not (folder / n).is_file()]
    if not names or missing:
        raise UserError(f"{folder / 'state.json'}: lists no arrow file, or one that is missing "
                        f"({missing[0] if missing and missing[0] else 'none listed'}): save the dataset again")
    return [folder / n for n in names]


def _json_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable JSON file ({err}); is this a save_to_disk folder?") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object; is this a save_to_disk folder?")
    return data


def saved_dataset(folder: Path) -> bool:
    """Whether `folder` is what `Dataset.save_to_disk` (or `DatasetDict.save_to_disk`) writes: Arrow files
    beside the JSON that describes them, none of it text."""
    return (folder / "dataset_dict.json").is_file() or all(
        (folder / name).is_file() for name in ("dataset_info.json", "state.json"))


def disk_bytes(files: Sequence[Path]) -> int:
    """The total that `iter_texts(..., progress=...)` reports when it has read every file."""
    return sum(Path(f).stat().st_size for f in files)


def file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return _SUFFIX_FORMAT.get(suffixes[-1] if suffixes else "", "text")


def iter_texts(
    files: Sequence[Path],
    *,
    text_column: str = "text",
    strict: bool = False,
    sample: float = 1.0,
    seed: int = 0,
    stats: ReadStats | None = None,
    progress: Progress | None = None,
) -> Iterator[str]:
    """Yield the non-empty texts of `files` in order; with `sample` < 1 keep that fraction of them.

    `progress(n)` is called with the bytes of the files on disk read since its last call, about every
    PROGRESS_CHUNK bytes and at the end of each file, so its calls add up to `disk_bytes(files)`.
    """
    stats = stats if stats is not None else ReadStats()
    rng = random.Random(seed)
    for path in files:
        stats.files += 1
        for text in _read(Path(path), text_column, strict, stats, progress):
            if not text.strip():
                stats.empty_lines += 1
                continue
            if sample < 1.0 and rng.random() >= sample:
                continue
            stats.lines += 1
            stats.bytes += len(text.encode("utf-8"))
            yield text


def ensure_nonempty(files: Sequence[Path], text_column: str = "text") -> None:
    """Fail early, with the file names, if the corpus holds no text at all. When every line that held
    anything was skipped for undecodable bytes, the corpus is not empty but unreadable: say where."""
    stats = ReadStats()
    for _ in iter_texts(files, text_column=text_column, stats=stats):
        return
    if stats.bad_lines:
        raise UserError(
            f"the corpus has no decodable text: its {stats.bad_lines} non-blank line(s) are all undecodable "
            f"(not UTF-8; first at {stats.first_bad}): convert the files to UTF-8"
        )
    names = ", ".join(str(f) for f in files[:3]) + (" ..." if len(files) > 3 else "")
    raise UserError(f"corpus is empty (no non-blank text in {names})")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


class _DiskMeter:
    """Reports, through `progress`, how far into a file on disk reading has come (never past its size)."""

    def __init__(self, path: Path, progress: Progress | None):
        self.progress = progress
        self.size = path.stat().st_size if progress is not None else 0
        self.reported = 0

    def advance(self, position: int) -> None:
        position = min(position, self.size)
        if self.progress is not None and position > self.reported:
            self.progress(position - self.reported)
            self.reported = position

    def finish(self) -> None:
        self.advance(self.size)


def _decoded_lines(
    path: Path, strict: bool, stats: ReadStats, progress: Progress | None = None
) -> Iterator[tuple[int, str]]:
    try:
        with _open_binary(path) as raw:
            meter = _DiskMeter(path, progress)
            compressed = getattr(raw, "fileobj", None)  # a .gz file's own file: its position is on-disk bytes
            read = pending = 0
            for number, line in enumerate(raw, start=1):
                if progress is not None:
                    pending += len(line)
                    if pending >= PROGRESS_CHUNK:
                        read, pending = read + pending, 0
                        meter.advance(compressed.tell() if compressed is not None else read)
                try:
                    yield number, line.decode("utf-8")
                except UnicodeDecodeError as err:
                    if strict:
                        raise UserError(
                            f"{path}:{number}: not valid UTF-8 (byte 0x{line[err.start]:02x} at column {err.start + 1})"
                        ) from None
                    stats.bad_lines += 1
                    stats.first_bad = stats.first_bad or f"{path}:{number}"
            meter.finish()
    except (OSError, EOFError) as err:  # a truncated or corrupt .gz
        raise UserError(f"{path}: cannot read ({err})") from None


def _read(path: Path, column: str, strict: bool, stats: ReadStats, progress: Progress | None = None) -> Iterator[str]:
    kind = file_format(path)
    if kind == "text":
        for _, line in _decoded_lines(path, strict, stats, progress):
            yield line.rstrip("\r\n")
    elif kind == "jsonl":
        for number, line in _decoded_lines(path, strict, stats, progress):
            if line.strip():
                yield _json_text(path, lambda: number, line, column)
    elif kind in ("csv", "tsv"):
        lines = (line for _, line in _decoded_lines(path, strict, stats, progress))
        reader = csv.DictReader(lines, delimiter="\t" if kind == "tsv" else ",", quoting=_quoting(kind))
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise UserError(f"{path}: no '{column}' column (columns: {', '.join(reader.fieldnames or [])})")
        for row in reader:
            yield row[column] or ""
    elif kind == "arrow":
        yield from _read_arrow(path, column, progress)
    else:
        yield from _read_parquet(path, column, progress)


def _quoting(kind: str) -> int:
    # GLUE-style TSV files hold unbalanced quotes inside sentences; quotes are data there, not syntax.
    return csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL


def _read_parquet(path: Path, column: str, progress: Progress | None = None) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises its own error types for a bad file
        raise UserError(f"{path}: not a readable parquet file ({err})") from None
    if column not in table.schema_arrow.names:
        raise UserError(f"{path}: no '{column}' column (columns: {', '.join(table.schema_arrow.names)})")
    meter = _DiskMeter(path, progress)
    rows, done = max(table.metadata.num_rows, 1), 0
    for batch in table.iter_batches(columns=[column], batch_size=4096):
        for value in batch.column(0).to_pylist():
            yield "" if value is None else str(value)
        done += batch.num_rows  # parquet is decoded a batch at a time: progress by rows, in bytes of the file
        meter.advance(meter.size * done // rows)
    meter.finish()


def _read_arrow(path: Path, column: str, progress: Progress | None = None) -> Iterator[str]:
    """An Arrow IPC file: the stream format `datasets` writes (save_to_disk, its cache), or the file format."""
    import pyarrow as pa

    try:
        source = pa.memory_map(str(path))
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_file(source)
            reader = (reader.get_batch(i) for i in range(reader.num_record_batches)), reader.schema
        else:
            reader = iter(reader), reader.schema
    except Exception as err:  # pyarrow raises its own error types for a bad file
        raise UserError(f"{path}: not a readable arrow file ({err})") from None
    batches, schema = reader
    if column not in schema.names:
        raise UserError(f"{path}: no '{column}' column (columns: {', '.join(schema.names)})")
    meter = _DiskMeter(path, progress)
    for batch in batches:
        for value in batch.column(column).to_pylist():
            yield "" if value is None else str(value)
        meter.advance(source.tell())  # the map's position: how far into the file the batches have come
    meter.finish()


# ---- reading a part of a file: what parallel preparation and resumable streaming build on ----


def splittable(path: Path) -> bool:
    """Whether a file can be read from any byte offset: uncompressed text and JSON lines hold one text per
    line. A .gz stream has no offsets to seek to, and a CSV record may span lines."""
    return Path(path).suffix.lower() != ".gz" and file_format(Path(path)) in ("text", "jsonl")


def read_range(
    path: Path,
    start: int,
    end: int,
    *,
    text_column: str = "text",
    strict: bool = False,
    stats: ReadStats | None = None,
    progress: Progress | None = None,
) -> Iterator[tuple[int, str]]:
    """(offset just past the line, text) for every non-empty text whose line *starts* in [start, end) of a
    `splittable` file. Ranges that tile a file read each line exactly once, wherever the cuts fall, and
    `progress` hears exactly end - start bytes. A range does not know its line numbers: an error counts the
    lines before its offset (once, on the way out)."""
    stats = stats if stats is not None else ReadStats()
    path = Path(path)
    jsonl = file_format(path) == "jsonl"
    try:
        raw = open(path, "rb")
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err})") from None
    with raw:
        position = start
        if start > 0:  # the line running through the cut belongs to the range before it
            raw.seek(start - 1)
            position = start - 1 + len(raw.readline())
        reported = start
        while position < end:
            line = raw.readline()
            if not line:
                break
            at, position = position, position + len(line)
            if progress is not None and position - reported >= PROGRESS_CHUNK:
                progress(min(position, end) - reported)
                reported = min(position, end)
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                if strict:
                    raise UserError(f"{path}:{line_number(path, at)}: not valid UTF-8 (byte 0x{line[err.start]:02x} "
                                    f"at column {err.start + 1})") from None
                stats.bad_lines += 1
                stats.first_bad = stats.first_bad or f"{path}:{line_number(path, at)}"
                continue
            if jsonl:
                text = _json_text(path, lambda: line_number(path, at), text, text_column) if text.strip() else ""
            else:
                text = text.rstrip("\r\n")
            if not text.strip():
                stats.empty_lines += 1
                continue
            stats.lines += 1
            stats.bytes += len(text.encode("utf-8"))
            yield position, text
        if progress is not None and end > reported:
            progress(end - reported)


def line_number(path: Path, offset: int) -> int:
    """The 1-based number of the line starting at byte `offset` of `path`."""
    with open(path, "rb") as raw:
        count, done = 1, 0
        while done < offset:
            chunk = raw.read(min(PROGRESS_CHUNK, offset - done))
            if not chunk:
                break
            count, done = count + chunk.count(b"\n"), done + len(chunk)
    return count


def _json_text(path: Path, number: Callable[[], int], line: str, column: str) -> str:
    """The text column of one JSON line; `number()` gives its line number, asked for only on an error."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{number()}: not valid JSON ({err.msg})") from None
    if not isinstance(record, dict) or column not in record:
        raise UserError(f"{path}:{number()}: no '{column}' field (set the text column)")
    value = record[column]
    return "" if value is None else str(value)


__all__ = [
    "FORMATS",
    "PROGRESS_CHUNK",
    "ReadStats",
    "disk_bytes",
    "ensure_nonempty",
    "file_format",
    "iter_texts",
    "line_number",
    "read_range",
    "resolve_files",
    "saved_arrow_files",
    "saved_dataset",
    "splittable",
]
