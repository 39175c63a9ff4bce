"""Watch after a promotion: the previous champion scores in shadow, and a new champion that does
worse on the traffic that follows is rolled back by itself (issue 15, item 3).

For `registry.watch_windows` windows after a promotion the scorer also runs the version the
champion replaced (`shadow_version`: the `previous-champion` alias, while it is still the version
the champion's gate replaced) and writes its confidence into the window's monitoring rows
(`shadow_version`, `shadow_max_softmax`). `judge` compares the two label-free accuracy estimates
on the same rows (ATC, each fit on its own version's labelled reference, see
`xferlib.drift.estimate`): when the champion's is lower than the previous one's by more than
`registry.rollback_margin`, `registry.rollback` moves the aliases back (crash-safe, an audit row
with the reason, the reason in the version's description) and a `rolled_back` alert says why.
The count of judged windows is a tag on the champion version (`WATCHED`), so every worker sees it.
Labels, once they exist, are the better judge; until then the estimate is what there is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xferlib.context import Context

if TYPE_CHECKING:
    from xferlib.data.imageset import ImageList
    from xferlib.drift import AccuracyEstimate, Reference

WATCHED = "xfer.watch.windows"
SHADOW_VERSION, SHADOW_CONFIDENCE = "shadow_version", "shadow_max_softmax"


@dataclass(frozen=True)
class WatchResult:
    """One watched window: both estimates, the margin, and whether the aliases rolled back."""

    champion: str
    shadow: str
    champion_estimate: float
    shadow_estimate: float
    margin: float
    watched: int  # windows judged since the promotion, this one included
    rolled_back: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shadow_version(ctx: Context, champion: str) -> str | None:
    """The version to score in shadow beside `champion`, or None when no watch is running."""
    from xferlib.registry.versions import DECISION, PREVIOUS, REPLACED, aliases, get_version_info

    if ctx.params.registry.watch_windows == 0:
        return None
    uri, name = ctx.wd.mlflow_uri, ctx.params.registry.model_name
    tags = get_version_info(uri, name, champion).tags
    previous = tags.get(REPLACED, "")
    if tags.get(DECISION) != "promoted" or not previous:  # a first version has nothing to watch
        return None
    if int(tags.get(WATCHED, "0")) >= ctx.params.registry.watch_windows:
        return None
    return previous if aliases(uri, name).get(PREVIOUS) == previous else None


def shadow_columns(ctx: Context, version: str, images: ImageList) -> dict[str, Any]:
    """The shadow version's confidence on every image, for the window's monitoring rows."""
    from xferlib.registry import load_predictor

    name = ctx.params.registry.model_name
    pred = load_predictor(f"models:/{name}/{version}", ctx.wd.mlflow_uri)
    probs = pred.infer(images).probs
    return {SHADOW_VERSION: version, SHADOW_CONFIDENCE: probs.max(axis=1)}


def judge(
    ctx: Context,
    frame: pd.DataFrame,
    estimate: AccuracyEstimate | None,
    reference_for: Callable[[Context, str, str], Reference],
) -> WatchResult | None:
    """Compare the champion's estimate on this window with its shadow's; roll back when worse."""
    if SHADOW_CONFIDENCE not in frame or estimate is None:
        return None
    rows = frame[frame[SHADOW_CONFIDENCE].notna()]
    if rows.empty:
        return None
    name, reg = ctx.params.registry.model_name, ctx.params.registry
    champion, shadow = str(rows["model_version"].iloc[-1]), str(rows[SHADOW_VERSION].iloc[-1])
    ref = reference_for(ctx, name, shadow)
    if ref.accuracy is None:  # a reference built without labels: nothing to compare with
        return None
    scores = rows[SHADOW_CONFIDENCE].to_numpy(dtype=np.float64)
    theirs = ref.accuracy.estimate(scores, ctx.params.drift.seed).accuracy
    watched = _count(ctx, champion)
    worse = estimate.accuracy < theirs - reg.rollback_margin
    reason = (
        f"estimated accuracy {estimate.accuracy:.3f} on window {watched} of the watch, "
        f"v{shadow} (the previous champion) {theirs:.3f} on the same images: "
        f"{'more' if worse else 'not more'} than {reg.rollback_margin:.3f} lower"
    )
    rolled = worse and _roll_back(ctx, champion, shadow, reason)
    return WatchResult(
        champion, shadow, estimate.accuracy, theirs, reg.rollback_margin, watched, rolled, reason
    )


def _count(ctx: Context, champion: str) -> int:
    from xferlib.registry.versions import get_version_info, tag_version

    uri, name = ctx.wd.mlflow_uri, ctx.params.registry.model_name
    n = int(get_version_info(uri, name, champion).tags.get(WATCHED, "0")) + 1
    tag_version(uri, name, champion, {WATCHED: str(n)})
    return n


def _roll_back(ctx: Context, champion: str, shadow: str, reason: str) -> bool:
    """Roll back unless the aliases moved meanwhile (another worker, a manual rollback)."""
    from xferlib.alerts import Alert, AlertSink
    from xferlib.registry import rollback
    from xferlib.registry.versions import CHAMPION, PREVIOUS, aliases

    uri, name = ctx.wd.mlflow_uri, ctx.params.registry.model_name
    now = aliases(uri, name)
    if now.get(CHAMPION) != champion or now.get(PREVIOUS) != shadow:
        return False
    row = rollback(uri, name, reason=f"automatic, after a promotion: {reason}")
    AlertSink(ctx.wd.alerts).send(
        Alert(
            kind="rolled_back",
            model_name=name,
            model_version=str(row.champion_after),
            message=f"{name} rolled back from v{champion} to v{shadow} by the watch: {reason}",
            details={"decision_id": row.decision_id},
            dedup_key=f"rolled_back:{name}:{row.decision_id}",
        )
    )
    return True
