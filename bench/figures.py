"""Render the figures of README.md and docs/*.md from bench/results/*.json (`make figures`).

A document marks each generated section with a pair of HTML comments:

    <!-- figures:NAME -->
    ...generated Markdown, never edited by hand...
    <!-- /figures:NAME -->

NAME is a renderer from the `RENDERERS` tables of the render_*.py modules beside this file; each
reads only the loaded result files, so the same results always give the same text. `--check`
renders in memory and exits 1 naming each stale section (the results test runs it), so a figure
in the docs can never drift from the file it comes from.

    python bench/figures.py           # rewrite the marked sections
    python bench/figures.py --check   # exit 1 if any section is stale
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RENDER_MODULES = ("render_speed", "render_drift", "render_loop")
SECTION = re.compile(
    r"(?P<open><!-- figures:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<close><!-- /figures:(?P=name) -->)",
    re.S,
)
Renderer = Callable[[dict[str, dict[str, Any]]], str]


def renderers() -> dict[str, Renderer]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    table: dict[str, Renderer] = {}
    for name in RENDER_MODULES:
        for key, fn in importlib.import_module(name).RENDERERS.items():
            if key in table:
                raise ValueError(f"figure section {key!r} is defined twice (in {name})")
            table[key] = fn
    return table


def load_results() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


def render_doc(text: str, table: dict[str, Renderer], results: dict[str, Any], doc: str) -> str:
    def one(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in table:
            raise SystemExit(f"{doc}: unknown figure section {name!r}; known: {sorted(table)}")
        body = table[name](results).rstrip("\n") + "\n"
        return f"{m['open']}{body}{m['close']}"

    return SECTION.sub(one, text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a section is stale")
    args = ap.parse_args()
    table, results, stale = renderers(), load_results(), []
    for doc in DOCS:
        old = doc.read_text()
        new = render_doc(old, table, results, doc.name)
        if new == old:
            continue
        names = [m["name"] for m in SECTION.finditer(old)]
        stale.append(f"{doc.relative_to(ROOT)} ({', '.join(names)})")
        if not args.check:
            doc.write_text(new)
    if args.check and stale:
        print("stale figure sections, run `make figures`: " + "; ".join(stale))
        return 1
    for line in stale:
        print(f"rendered {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
