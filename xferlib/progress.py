"""Progress bars for the long loops (ingest, feature extraction, epochs, scoring), on a terminal only.

A bar is drawn by tqdm on stderr when stderr is a TTY, this is rank 0 (a torchrun worker of another
rank stays silent) and `XFER_PROGRESS` is not off. Anywhere else (CI logs, pipes, Prefect workers)
`bar` hands the iterable back untouched, so logs carry no carriage-return noise and `--json` keeps
stdout to one object either way.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from xferlib import env

T = TypeVar("T")


def enabled() -> bool:
    """Whether bars are drawn in this process now."""
    return env.progress() and env.rank() == 0 and sys.stderr.isatty()


def bar(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """`items`, with a transient bar on stderr when `enabled()`."""
    if not enabled():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(
        items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True
    )
