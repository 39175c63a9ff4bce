"""Markdown for the drift-power section of README.md / docs (see bench/figures.py).

Reads only `results["drift_power"]` and `results["harm"]` (written by bench/drift_power.py and
bench/harm.py); the same files always give the same text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scipy import stats

Results = dict[str, dict[str, Any]]


def upper95(alarms: int, trials: int) -> float:
    """One-sided 95 % Clopper-Pearson upper bound on a rate seen as alarms / trials."""
    return 1.0 if alarms >= trials else float(stats.beta.ppf(0.95, alarms + 1, trials - alarms))


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _evidently(row: dict[str, Any]) -> str:
    e = row["evidently"]
    return "—" if not e["trials"] else f"{_pct(e['alarms'] / e['trials'])} ({e['trials']})"


def false_alarms(r: dict[str, Any]) -> str:
    alpha = r["setup"]["alpha"]
    lines = [
        f"| clean window n | xfer false alarms | windows | 95 % upper bound | rate ≤ alpha {alpha:g} "
        "| Evidently preset (windows) |",
        "|---|---|---|---|---|---|",
    ]
    for row in sorted((x for x in r["rows"] if x["kind"] == "clean"), key=lambda x: x["n"]):
        up = upper95(row["alarms"], row["trials"])
        verdict = "yes" if row["rate"] <= alpha else "**no**"
        lines.append(
            f"| {row['n']} | {_pct(row['rate'])} ({row['alarms']}) | {row['trials']} | {_pct(up)} "
            f"| {verdict} | {_evidently(row)} |"
        )
    return "\n".join(lines)


def detection(r: dict[str, Any]) -> str:
    shifted = [x for x in r["rows"] if x["kind"] != "clean"]
    sizes = sorted({x["n"] for x in shifted})
    head = "| shift | severity | " + " | ".join(f"xfer n={n}" for n in sizes)
    lines = [head + " | trials | Evidently (largest n) |", "|---|---|" + "---|" * (len(sizes) + 2)]
    cells = sorted({(x["kind"], x["severity"]) for x in shifted})
    for kind, sev in cells:
        rows = {x["n"]: x for x in shifted if (x["kind"], x["severity"]) == (kind, sev)}
        rates = " | ".join(_pct(rows[n]["rate"]) if n in rows else "—" for n in sizes)
        trials = sorted({x["trials"] for x in rows.values()})
        lines.append(
            f"| {kind} | {sev} | {rates} | {', '.join(map(str, trials))} "
            f"| {_evidently(rows[max(rows)])} |"
        )
    return "\n".join(lines)


def drift_power(results: Results) -> str:
    r = results["drift_power"]
    s = r["setup"]
    p = r["provenance"]
    note = (
        f"alpha {s['alpha']:g}, {s['permutations']} permutations, a fresh reference of "
        f"{s['reference_size']} rows per trial; commit `{p['commit'][:7]}`, "
        f"{p['finished_utc'][:10]}{' (quick smoke run)' if r.get('quick') else ''}."
    )
    return "\n\n".join([false_alarms(r), detection(r), note])


def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def harm_estimates(results: Results) -> str:
    """bench/harm.py: the label-free estimates' mean absolute error against true accuracy."""
    r = results.get("harm")
    if r is None:
        return "*No result file yet: run `python bench/harm.py` (writes bench/results/harm.json).*"
    s, t, p = r["summary"], r["targets"], r["provenance"]
    lines = [
        "| windows | count | ATC error (points) | AC error | DoC error | ATC 95 % interval covers the truth |",
        "|---|---|---|---|---|---|",
    ]
    rows = [("**all**", s["all"])] + list(s["by_group"].items())
    for name, b in rows:
        lines.append(
            f"| {name} | {b['windows']} | {_pts(b['atc_mae'])} | {_pts(b['ac_mae'])} "
            f"| {_pts(b['doc_mae'])} | {_pct(b['atc_interval_coverage'])} |"
        )
    a = s["all"]
    met = r["met"]
    verdict = (
        f"Target: ATC mean absolute error ≤ {_pts(t['atc_mae_max'])} points "
        f"({'met' if met['atc_mae_max'] else '**missed**'}: {_pts(a['atc_mae'])}) and below AC's "
        f"({'met' if met['atc_mae_below_ac'] else '**missed**'}: AC {_pts(a['ac_mae'])})."
    )
    st = r["setup"]
    load = f"{p['load_average_start'][0]:.1f}→{p['load_average_end'][0]:.1f}"
    note = (
        f"Champion: {st['backbone']} {st['strategy']} at {st['image_size']} px on {st['train']} "
        f"training images (val accuracy {st['val_accuracy']:.3f}); estimator fit on "
        f"{st['reference_images']} held-out images (accuracy {st['reference_accuracy']:.3f}); windows "
        f"of {st['n']} test images, {st['windows']} per cell. Commit `{p['commit'][:7]}`, "
        f"{p['finished_utc'][:10]}, load average {load}"
        f"{' (quick smoke run)' if r.get('quick') else ''}."
    )
    return "\n\n".join(["\n".join(lines), verdict, note])


RENDERERS: dict[str, Callable[[Results], str]] = {
    "drift_power": drift_power,
    "harm_estimates": harm_estimates,
}
