"""Markdown for the speed benches' sections of README.md / docs (see bench/figures.py).

One renderer per bench, keyed by the bench's name; each reads only that bench's loaded result
file and nothing else (no clock, no environment), so the same file always gives the same text.
A ratio is shown as `median (min–max, n pairs)` of its interleaved pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Results = dict[str, dict[str, Any]]
Paired = dict[str, Any]


def _num(x: float, digits: int | None = None) -> str:
    if digits is None:
        digits = 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2
    return f"{x:,.{digits}f}"


def ratio(p: Paired, digits: int | None = None) -> str:
    """`median (min–max, n pairs)` of a paired-ratio dict."""
    r = p["ratio"]
    lo, hi = _num(r["min"], digits), _num(r["max"], digits)
    return f"{_num(r['median'], digits)} ({lo}–{hi}, {r['n']} pairs)"


def seconds(s: dict[str, float], digits: int | None = None) -> str:
    """`median (min–max)` of a spread of seconds."""
    return f"{_num(s['median'], digits)} ({_num(s['min'], digits)}–{_num(s['max'], digits)})"


def footer(r: dict[str, Any]) -> str:
    """Where the figures come from: commit, date, command, load average; flags a smoke run."""
    p = r["provenance"]
    start, end = p["load_average_start"][0], p["load_average_end"][0]
    load = f"load average (1 min) {start:.1f} at start, {end:.1f} at end"
    sampled = r.get("load_average_1m")
    if sampled:
        load += f", sampled mean {sampled['mean']:.1f} ({sampled['min']:.1f}–{sampled['max']:.1f})"
    smoke = " **Smoke run (--quick): not a result to quote.**" if r.get("quick") else ""
    return (
        f"\n`{p['command']}` at commit `{p['commit'][:7]}`{' (dirty)' if p['dirty'] else ''}, "
        f"{p['finished_utc'][:10]}, {p['cores']} cores, {load}. "
        f"Ratios: median (min–max, n pairs) over interleaved pairs.{smoke}\n"
    )


def _threads(n: int) -> str:
    return f"{n} torch thread{'s' if n != 1 else ''}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def drift_speed(results: Results) -> str:
    r = results["drift_speed"]
    cap = r["params"]["mmd_max_rows"]
    rows = []
    for row in r["rows"]:
        s = row["seconds"]
        if "evidently_over_xfer_full_mmd" in row:
            full_s, full_r = seconds(s["xfer_full_mmd"]), ratio(row["evidently_over_xfer_full_mmd"])
        else:
            skip = row["full_mmd_skipped"]
            full_s = f"not run: kernel {skip['kernel_gb']} GB > {skip['limit_gb']} GB limit"
            full_r = "—"
        rows.append([
            f"{row['rows']:,} × {row['columns']}",
            seconds(s["evidently"]),
            seconds(s["xfer"]),
            full_s,
            ratio(row["evidently_over_xfer"]),
            full_r,
        ])  # fmt: skip
    header = ["rows × columns", "Evidently s", f"xfer s (MMD ≤ {cap:,} rows/side)",
              "xfer s (MMD on all rows)", "Evidently ÷ xfer", "Evidently ÷ xfer, all rows"]  # fmt: skip
    ref = f"Reference: {r['params']['reference_size']:,} rows of the same columns. "
    return f"{_table(header, rows)}\n\n{ref}Measured: {r['what']}." + footer(r)


def logging_overhead(results: Results) -> str:
    r = results["logging_overhead"]
    pts, secs, vs = r["points_written"], r["seconds"], r["steps_per_s_vs_none"]
    rows = [["none", r["variants"]["none"], "0", seconds(secs["none"]), "1 (baseline)"]]
    for name, p in vs.items():
        rows.append([name, r["variants"][name], f"{pts[name]:,}", seconds(secs[name]), ratio(p, 3)])
    head = ["variant", "writes", "points stored", "seconds / repetition", "steps/s ÷ none"]
    same = r["tracker_vs_sync_same_points"]
    like = _table(
        ["same points, Tracker vs synchronous log_batch", "Tracker steps/s ÷ sync steps/s"],
        [
            [f"every step ({pts['tracker_every_step']:,} points)", ratio(same["every_step"], 3)],
            [f"window means ({pts['tracker_default']:,} points)", ratio(same["window_means"], 3)],
        ],
    )
    reg = r["registry"]
    backends = list(reg)
    registry = _table(
        ["registry operation (seconds)", *backends],
        [
            ["register_candidate", *(seconds(reg[b]["register_s"]) for b in backends)],
            [
                "decide + apply_decision (promote)",
                *(seconds(reg[b]["promote_s"]) for b in backends),
            ],
        ],
    )
    loop = f"{r['steps_per_repetition']} steps a repetition, {_num(r['step_ms_none'], 1)} ms a step"
    return (
        f"{_table(head, rows)}\n\n{like}\n\n{registry}\n\n{loop} "
        f"(tiny conv net, {_threads(r['torch_threads'])}, {r['backend']}); registry rounds: "
        f"{r['registry_rounds']}." + footer(r)
    )


def data_path(results: Results) -> str:
    r = results["data_path"]
    by = r["by_threads"]
    keys = [f"{t}_threads" for t in r["threads"]]
    paths = list(by[keys[0]]["img_per_s_median"])
    rows = [[f"{p} img/s", *(_num(by[k]["img_per_s_median"][p], 0) for k in keys)] for p in paths]
    for w in r["workers"]:
        name = f"loose_w{w}"
        rows.append(
            [f"**shard ÷ {name}**", *(ratio(by[k]["shard_over_loose"][name]) for k in keys)]
        )
    head = ["figure", *(_threads(t) for t in r["threads"])]
    t = r["train_step"]
    train = (
        f"For scale, xfer's train step (EfficientNet-Lite0, {r['image_size']} px, {t['precision']}, "
        f"{_threads(t['threads'])}): {_num(t['train_img_per_s'], 1)} img/s; frozen forward "
        f"{_num(t['frozen_forward_img_per_s'], 0)} img/s."
    )
    what = f"{r['images']:,} images resized to {r['image_size']} px, batch {r['batch']}."
    return f"{_table(head, rows)}\n\n{what} {train}" + footer(r)


def _phases(row: dict[str, Any], kind: str) -> str:
    """Median seconds of add / push / pull for one kind of repo."""
    by_phase = row["seconds_by_phase"]
    return " / ".join(_num(by_phase[p][kind]["median"], 1) for p in by_phase)


def dvc_shards(results: Results) -> str:
    r = results["dvc_shards"]
    rows = []
    for row in r["rows"]:
        by = row["loose_over_shards_by_phase"]
        rows.append([
            f"{row['images']:,}",
            f"{row['files_tracked']['shards']:,} / {row['files_tracked']['loose']:,}",
            f"{_phases(row, 'shards')} / **{_num(row['seconds_total']['shards']['median'], 1)}**",
            f"{_phases(row, 'loose')} / **{_num(row['seconds_total']['loose']['median'], 1)}**",
            f"**{ratio(row['loose_over_shards'])}**",
            " / ".join(_num(by[p]["ratio"]["median"], 1) for p in by),
        ])  # fmt: skip
    head = ["images", "files (shards / loose)", "shards s: add / push / pull / total",
            "loose s: add / push / pull / total", "loose ÷ shards", "by phase (medians)"]  # fmt: skip
    skipped = "".join(
        f"\nNot measured: {s['images']:,} images (loose repetitions projected at "
        f"{_num(s['projected_loose_s_all_repetitions'], 0)} s, over the {s['cap_minutes']:g}-minute cap)."
        for s in r["skipped"]
    )
    note = f"Seconds are medians. {r['sizes_note']}."
    return f"{_table(head, rows)}\n\n{note}{skipped}" + footer(r)


def _verdict(p: Paired, target: float) -> str:
    """Met only when every pair clears the target; a spread across it proves nothing either way."""
    below = sum(a / b < target for a, b in p["pairs"])
    if below == 0:
        return "met in every pair"
    if p["ratio"]["median"] < target:
        return f"**missed** ({below} of {len(p['pairs'])} pairs below the target)"
    return f"**not shown**: the median clears it but {below} of {len(p['pairs'])} pairs fall below"


def loop_overhead(results: Results) -> str:
    r = results["loop_overhead"]
    secs = r["seconds_per_run"]
    verdict = _verdict(r["xfer_over_bare"], r["target"])
    rows = [
        [f"**xfer ÷ bare steps/s** (target ≥ {r['target']})", f"**{ratio(r['xfer_over_bare'], 3)}**: {verdict}"],
        ["xfer loop without checkpoint and logger ÷ bare", ratio(r["xfer_no_checkpoint_over_bare"], 3)],
        ["xfer ÷ xfer without checkpoint and logger", ratio(r["xfer_over_xfer_no_checkpoint"], 3)],
        *([f"seconds per run, {k}", seconds(v)] for k, v in secs.items()),
    ]  # fmt: skip
    c = r["config"]
    what = (
        f"{c['backbone']}, {c['image_size']} px, {c['images']} train + {c['val']} val images, "
        f"{c['epochs']} epochs, batch {c['batch_size']} ({r['steps_per_run']} steps a run), "
        f"{c['precision']}{' + channels_last' if c['channels_last'] else ''}, "
        f"{_threads(r['machine']['torch_threads'])}; last.pt {_num(r['checkpoint_mb'])} MB "
        "written every epoch."
    )
    return _table(["figure", "value"], rows) + f"\n\n{what}" + footer(r)


def precision(results: Results) -> str:
    r = results["precision"]
    rows = []
    for name, b in r["backbones"].items():
        fp32 = b["img_per_s_median"]
        rows.append([name, "fp32 (img/s)", _num(fp32["fp32/train"], 1), _num(fp32["fp32/eval"], 1)])
        for mode, p in b["speedup_vs_fp32"].items():
            rows.append([name, f"{mode} ÷ fp32", ratio(p["train"]), ratio(p["eval"])])
    what = (
        f"{r['device']}, {_threads(r['threads'])}, {r['image_size']} px, batch "
        f"{r['batch_size']}, {r['steps_per_call']} step(s) per timed call."
    )
    return _table(["backbone", "mode", "train", "eval"], rows) + f"\n\n{what}" + footer(r)


def feature_cache(results: Results) -> str:
    r = results["feature_cache"]
    s = r["seconds"]
    rows = [
        ["recompute features every epoch", seconds(s["recompute"]), "1 (baseline)"],
        ["fine_tune(linear_probe), cold cache", seconds(s["cached_cold"]), ratio(r["recompute_over_cached_cold"])],
        ["same, warm cache", seconds(s["cached_warm"]), ratio(r["recompute_over_cached_warm"])],
    ]  # fmt: skip
    what = (
        f"{r['backbone']}, {r['image_size']} px, {r['images']:,} images, {r['epochs']} epochs, "
        f"{r['precision']}, {_threads(r['threads'])}."
    )
    return _table(["linear probe", "seconds", "recompute ÷ this"], rows) + f"\n\n{what}" + footer(r)


RENDERERS: dict[str, Callable[[Results], str]] = {
    "drift_speed": drift_speed,
    "logging_overhead": logging_overhead,
    "data_path": data_path,
    "dvc_shards": dvc_shards,
    "loop_overhead": loop_overhead,
    "precision": precision,
    "feature_cache": feature_cache,
}
