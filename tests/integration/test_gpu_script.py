"""The GPU run's script (benchmarks/gpu/run.sh) in its tiny CPU mode: the same parts on tiny shapes, each
under its deadline, ending in one table, with every part's figures written to the output directory."""

from __future__ import annotations

import json

import pytest

from support.paths import REPO
from support.processes import launch

pytestmark = pytest.mark.slow


def test_tiny_mode_runs_every_part_and_reports_them(tmp_path):
    out = tmp_path / "out"
    extra = tmp_path / "contrast.tsv"  # an extra evaluation file, its task told by its header
    extra.write_text("".join((REPO / "data/glue/SST-2/dev.tsv").read_text().splitlines(keepends=True)[:41]))
    result = launch(["bash", "benchmarks/gpu/run.sh", "--tiny", str(out), str(extra)], timeout=480)
    assert result.returncode == 0, result.stdout[-4000:]

    parts = [line.split("\t") for line in (out / "parts.tsv").read_text().splitlines()]
    assert [p[0] for p in parts] == ["tests", "pretrain", "evidence"]
    assert all(p[1] == "0" for p in parts), parts  # each finished before its deadline

    bench = json.loads((out / "pretrain.json").read_text())["shapes"]["tiny"]
    assert bench["ours"]["tokens_per_s"] > 0 and bench["trainer"]["tokens_per_s"] > 0
    assert bench["peak_memory_mib"]["alum"] > 0

    evidence = json.loads((out / "evidence.json").read_text())
    sst2 = evidence["tasks"]["sst2"]
    runs = {(r["method"], r["seed"]) for r in sst2["runs"]}
    assert {("none", 1), ("smart", 1), ("freelb", 1)} <= runs  # at least one whole round of seeds
    for run in sst2["runs"]:
        assert 0.0 <= run["dev"]["accuracy"] <= 1.0
        assert set(run["extra"]) == {str(extra)}  # the extra file, scored by every trained model
    assert {m: s["seeds"] for m, s in sst2["summary"].items()} == {
        m: sum(r["method"] == m for r in sst2["runs"]) for m in ("none", "smart", "freelb")}

    # the table is the last thing printed, and names every part and method
    table = result.stdout[result.stdout.index("| part"):]
    assert table.strip() == (out / "summary.txt").read_text().strip()
    for word in ("pytest -m gpu", "ALUM step / standard step", "sst2 none", "sst2 smart", "sst2 freelb"):
        assert word in table
