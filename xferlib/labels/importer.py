"""Reading annotators' labels: a Label Studio JSON export or a CSV `image_id,label`.

Every row ends either accepted or rejected with a reason, never dropped: `malformed_row` (not a
task / wrong field count / blank id or label), `no_annotation` (a task nobody labelled, or every
annotation cancelled), `unknown_image` (not in the incident's request), `unknown_class` (not a
class of the champion), `conflicting_labels` (two labels for one image, in this file or against
an earlier import: every row of that image is held back, since which one is right is a person's
call) and `duplicate` (the same label again). A file that cannot be read at all (missing, not
UTF-8, broken JSON, a CSV without the columns, no rows) raises `UnreadableLabels`, one line.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CSV_COLUMNS = ("image_id", "label")
_FIX = "export JSON from Label Studio (Export > JSON) or write a CSV with header image_id,label"


class UnreadableLabels(ValueError):
    """The labels file as a whole cannot be read; the message names the problem and the fix."""


@dataclass(frozen=True)
class LabelRow:
    row: int  # 1-based: the CSV data row or the JSON task
    image_id: str
    label: str


@dataclass(frozen=True)
class RejectedRow:
    row: int
    image_id: str
    label: str
    reason: str
    detail: str
    raw: str  # the row as given, so nothing is lost

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_labels(path: Path) -> tuple[list[tuple[LabelRow, str]], list[RejectedRow]]:
    """The rows of a labels file (each with its raw text) and the rows that are malformed."""
    text = _text(path)
    if not text.strip():
        raise UnreadableLabels(f"labels file {path} is empty; {_FIX}")
    rows = _json_rows(path, text) if text.lstrip()[:1] in "[{" else _csv_rows(path, text)
    if not rows[0] and not rows[1]:
        raise UnreadableLabels(f"labels file {path} holds no rows; {_FIX}")
    return rows


def _text(path: Path) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise UnreadableLabels(
            f"labels file {path} does not exist; pass the exported file"
        ) from None
    except IsADirectoryError:
        raise UnreadableLabels(f"labels file {path} is a folder; pass the exported file") from None
    except UnicodeDecodeError:
        raise UnreadableLabels(f"labels file {path} is not UTF-8 text; {_FIX}") from None


def _json_rows(path: Path, text: str) -> tuple[list[tuple[LabelRow, str]], list[RejectedRow]]:
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableLabels(
            f"labels file {path} is not valid JSON (line {exc.lineno}: {exc.msg}); {_FIX}"
        ) from None
    if not isinstance(tasks, list):
        raise UnreadableLabels(
            f"labels file {path} is JSON but not a list of Label Studio tasks; {_FIX}"
        )
    good: list[tuple[LabelRow, str]] = []
    bad: list[RejectedRow] = []
    for i, task in enumerate(tasks, start=1):
        raw = json.dumps(task, sort_keys=True, default=str)
        image_id, labels, problem = _task(task)
        if problem:
            reason = "no_annotation" if problem.startswith("no ") else "malformed_row"
            bad.append(RejectedRow(i, image_id, "", reason, problem, raw))
        elif len(set(labels)) > 1:  # annotators of one task disagree
            why = f"annotations disagree: {sorted(set(labels))}"
            bad.append(RejectedRow(i, image_id, ",".join(labels), "conflicting_labels", why, raw))
        else:
            good.append((LabelRow(i, image_id, labels[0]), raw))
    return good, bad


def _task(task: Any) -> tuple[str, list[str], str]:
    """(image id, the chosen labels of its annotations, a problem or "")."""
    if not isinstance(task, Mapping) or not isinstance(task.get("data", {}), Mapping):
        return "", [], "not a Label Studio task (an object with data and annotations)"
    data = task.get("data") or {}
    image_id = str(data.get("image_id") or _stem(data.get("image") or task.get("image") or ""))
    if not image_id:
        return "", [], "the task names no image (data.image_id or data.image)"
    if "annotations" not in task and isinstance(task.get("choice"), str):  # JSON-MIN export
        return image_id, [task["choice"]], ""
    labels = []
    for ann in task.get("annotations") or []:
        if not isinstance(ann, Mapping) or ann.get("was_cancelled"):
            continue
        chosen = _choices(ann.get("result") or [])
        if len(chosen) > 1:
            return image_id, [], f"one annotation chose {len(chosen)} classes: {chosen}"
        labels += chosen
    return (image_id, labels, "") if labels else (image_id, [], "no annotation chose a class")


def _choices(results: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for r in results:
        value = r.get("value") if isinstance(r, Mapping) else None
        choices = value.get("choices") if isinstance(value, Mapping) else None
        if isinstance(choices, list):
            out += [str(c) for c in choices]
    return out


def _stem(image: Any) -> str:
    """`/data/local-files/?d=images/<id>.png` or any path/URL -> `<id>`."""
    name = str(image).rstrip("/").rsplit("/", 1)[-1].rsplit("=", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def _csv_rows(path: Path, text: str) -> tuple[list[tuple[LabelRow, str]], list[RejectedRow]]:
    lines = text.splitlines()
    try:
        reader = csv.reader(lines)
        header = [h.strip() for h in next(reader)]
    except (csv.Error, StopIteration) as exc:
        raise UnreadableLabels(
            f"labels file {path} is not a readable CSV ({exc}); {_FIX}"
        ) from None
    if not all(c in header for c in CSV_COLUMNS):
        raise UnreadableLabels(
            f"labels file {path} has columns {header[:5]}, not image_id and label; {_FIX}"
        )
    at = [header.index(c) for c in CSV_COLUMNS]
    good: list[tuple[LabelRow, str]] = []
    bad: list[RejectedRow] = []
    for i, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue
        try:
            fields = next(csv.reader(io.StringIO(line)))
        except csv.Error as exc:
            bad.append(RejectedRow(i, "", "", "malformed_row", f"not CSV: {exc}", line))
            continue
        if len(fields) != len(header):
            why = f"{len(fields)} fields, the header has {len(header)}"
            bad.append(RejectedRow(i, "", "", "malformed_row", why, line))
            continue
        image_id, label = (fields[k].strip() for k in at)
        if not image_id or not label:
            bad.append(
                RejectedRow(i, image_id, label, "malformed_row", "blank image_id or label", line)
            )
            continue
        good.append((LabelRow(i, image_id, label), line))
    return good, bad


def check_rows(
    rows: list[tuple[LabelRow, str]],
    requested: set[str],
    classes: set[str],
    earlier: Mapping[str, str],
) -> tuple[list[LabelRow], list[RejectedRow]]:
    """Accept the rows that label a requested image with a known class, once and consistently
    (`earlier`: image id -> the label an earlier import accepted)."""
    bad: list[RejectedRow] = []
    valid: list[tuple[LabelRow, str]] = []
    for row, raw in rows:
        if row.image_id not in requested:
            why = "not an image of this incident's label request"
            bad.append(RejectedRow(row.row, row.image_id, row.label, "unknown_image", why, raw))
        elif row.label not in classes:
            why = f"not a class of the champion; valid: {', '.join(sorted(classes))}"
            bad.append(RejectedRow(row.row, row.image_id, row.label, "unknown_class", why, raw))
        else:
            valid.append((row, raw))
    seen: dict[str, set[str]] = defaultdict(set)
    for row, _ in valid:
        seen[row.image_id].add(row.label)
    accepted: list[LabelRow] = []
    taken: set[str] = set()
    for row, raw in valid:
        labels = seen[row.image_id] | (
            {earlier[row.image_id]} if row.image_id in earlier else set()
        )
        if len(labels) > 1:
            why = f"labelled {sorted(labels)}" + (
                f" (an earlier import accepted {earlier[row.image_id]!r})"
                if row.image_id in earlier
                else ""
            )
            bad.append(
                RejectedRow(row.row, row.image_id, row.label, "conflicting_labels", why, raw)
            )
        elif row.image_id in earlier or row.image_id in taken:
            where = "an earlier import" if row.image_id in earlier else "an earlier row"
            why = f"{where} already labelled it {row.label!r}"
            bad.append(RejectedRow(row.row, row.image_id, row.label, "duplicate", why, raw))
        else:
            taken.add(row.image_id)
            accepted.append(row)
    return accepted, sorted(bad, key=lambda r: r.row)
