"""Where the checkout and the data it embeds are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
SAMPLE = REPO / "data" / "corpus" / "wikitext-2-raw.sample.txt"
SST2 = REPO / "data" / "glue" / "SST-2"
WNUT17 = REPO / "data" / "ner" / "wnut17"
