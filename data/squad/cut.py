"""Cut a SQuAD sample: N articles of a SQuAD JSON file (the first N, or N from the article numbered `--first`,
counting from 1), whole (every paragraph and question), in the source's order, with its `version`.
Deterministic: the same source gives the same bytes.

    python data/squad/cut.py SOURCE.json OUT.json --articles N [--first K]
"""

from __future__ import annotations

import argparse
import json


def cut(source: str, out: str, articles: int, first: int = 1) -> None:
    with open(source, encoding="utf-8") as f:
        squad = json.load(f)
    sample = {"version": squad.get("version"), "data": squad["data"][first - 1:first - 1 + articles]}
    with open(out, "w", encoding="utf-8") as f:
        # the official files escape non-ASCII characters; so does the sample
        json.dump(sample, f, ensure_ascii=True)
        f.write("\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--articles", type=int, required=True)
    parser.add_argument("--first", type=int, default=1, help="the number of the first article cut (from 1)")
    args = parser.parse_args()
    cut(args.source, args.out, args.articles, args.first)
