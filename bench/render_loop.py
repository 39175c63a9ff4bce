"""Markdown for the demo and transfer sections of README.md / docs (see bench/figures.py).

Each renderer reads only its loaded result file; the same file always gives the same text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

Results = dict[str, dict[str, Any]]


def _prov(r: dict[str, Any]) -> str:
    p = r["provenance"]
    load = f"{p['load_average_start'][0]:.1f}→{p['load_average_end'][0]:.1f}"
    return f"commit `{p['commit'][:7]}`, {p['finished_utc'][:10]}, load average {load}"


def _spread(f: dict[str, float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    med, lo, hi = (fmt.format(f[k] * scale) for k in ("median", "min", "max"))
    return med if f["n"] == 1 or lo == hi else f"{med} ({lo}–{hi})"


def demo_windows(results: Results) -> str:
    r = results["demo"]
    runs = [run["summary"] for run in r["runs"]]
    lines = ["| window | verdicts over the runs | actions |", "|---|---|---|"]
    for i, w in enumerate(runs[0]["windows"]):
        seen = [s["windows"][i] for s in runs if len(s["windows"]) > i]
        verdicts = Counter(x["status"] for x in seen)
        actions = Counter(x["action"] for x in seen)
        fmt = lambda c: ", ".join(f"{k} ×{n}" for k, n in sorted(c.items()))  # noqa: E731
        lines.append(f"| {w['window']} | {fmt(verdicts)} | {fmt(actions)} |")
    return "\n".join(lines)


def demo_figures(results: Results) -> str:
    r = results["demo"]
    f, n = r["figures"], len(r["runs"])
    decisions = Counter(d["decision"] for run in r["runs"] for d in run["summary"]["retrains"])
    mode = "Prefect server + runner" if r["mode"]["prefect"] else "plain calls (--no-prefect)"
    rows = [
        "| model | clean holdout | shifted holdout |",
        "|---|---|---|",
        f"| v1 | {_spread(f['v1_clean'])} | {_spread(f['v1_shifted'])} |",
        f"| champion after the loop | {_spread(f['champion_clean'])} | {_spread(f['champion_shifted'])} |",
        "",
        f"Median (min–max) over {n} runs of `xfer demo --json` ({mode}; `bench/results/demo.json`, "
        f"{_prov(r)}). Recovered **{_spread(f['recovered_fraction'], 100, '{:.0f}')} %** of the "
        f"accuracy v1 lost on the shifted holdout; clean-holdout change "
        f"{_spread(f['clean_change'], 100, '{:+.1f}')} points. Gate decisions: "
        + ", ".join(f"{k} ×{v}" for k, v in sorted(decisions.items()))
        + f". The loop took {_spread(f['loop_seconds'], 1, '{:.0f}')} s "
        f"({_spread(f['wall_seconds'], 1, '{:.0f}')} s with start-up).",
    ]
    return "\n".join(rows)


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "not run"
    acc = f"{row['accuracy_mean']:.3f}"
    if row["accuracy_std"] is not None:
        acc += f" ± {row['accuracy_std']:.3f}"
    notes = [] if row["seeds"] == 3 else [f"{row['seeds']} seed"]
    if row["strategy"] == "scratch" and not all(r["stopped_early"] for r in row["runs"]):
        notes.append("budget reached")
    return f"{acc} ({'; '.join(notes)})" if notes else acc


def _missing(name: str) -> str:
    return (
        f"*No result file: `bench/results/{name}.json` has not been regenerated with provenance "
        f"yet (`python bench/{name}.py`).*"
    )


def transfer_table(results: Results) -> str:
    if "transfer" not in results:
        return _missing("transfer")
    r = results["transfer"]
    rows = {(x["strategy"], x["labels_per_class"]): x for x in r["rows"]}
    labels = r["config"].get("labels_per_class") or sorted({p for _, p in rows})
    strategies = r["config"].get("strategies") or list(dict.fromkeys(s for s, _ in rows))
    head = "| strategy | " + " | ".join(f"{p} / class" for p in labels) + " |"
    lines = [head, "|---" * (len(labels) + 1) + "|"]
    for s in strategies:
        name = "scratch (same architecture)" if s == "scratch" else s
        lines.append(f"| {name} | " + " | ".join(_cell(rows.get((s, p))) for p in labels) + " |")
    sel, b, cfg = r["selection"], r["budgets"], r["config"]
    gaps = []
    for p in labels:
        if ("scratch", p) in rows:
            best = max(
                (x for (s, q), x in rows.items() if q == p and s != "scratch"),
                key=lambda x: x["accuracy_mean"],
            )
            gap = 100 * (best["accuracy_mean"] - rows[("scratch", p)]["accuracy_mean"])
            gaps.append(f"{gap:+.1f} points at {p} / class ({best['strategy']})")
    lines += [
        "",
        f"{cfg['backbone']} at {cfg['image_size']} px, {cfg['test_images']:,} test images, "
        f"mean ± std over seeds (`bench/results/transfer.json`, {_prov(r)}). Chosen on "
        f"{cfg['validation_images']} validation images, never on test: "
        f"`freeze_bn_stats: {str(sel['freeze_bn_stats']).lower()}` and scratch learning rate "
        f"{sel['scratch_lr']:g}{_edge(sel)}. Scratch optimizer steps: {_scratch_steps(r['rows'])} "
        f"(requested budget {b['scratch_max_steps']}, early stopping after "
        f"{b['scratch_patience_steps']} without improvement; the longest fine-tuning cell takes "
        f"{b['longest_fine_tune_steps']}). "
        "Best pretrained minus scratch: " + "; ".join(gaps) + ".",
    ]
    if r.get("recipe"):
        lines += ["", _recipe_note(r["recipe"])]
    if r.get("scratch_match"):
        lines += ["", _match_note(r["scratch_match"], r["rows"])]
    if not r.get("complete", True):
        lines.append(
            "**Partial run**: the cells marked *not run* did not finish; the rest are final."
        )
    return "\n".join(lines)


def _recipe_note(recipe: dict[str, Any]) -> str:
    changes = ", ".join(f"`{k}: {v}`" for k, v in recipe["changes"].items()) or "no change"
    return (
        f"`recipe` = `full` at {recipe['image_size']} px with {changes}, chosen by "
        f"`bench/recipe.py` on its held-out selection split (commit `{str(recipe['commit'])[:7]}`); "
        "`semi` = the same plus teacher → pseudo-labels → student over 10,000 unlabelled train images."
    )


def _match_note(match: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    scratch = {x["labels_per_class"]: x for x in rows if x["strategy"] == "scratch"}
    tried = ", ".join(f"{p} / class {scratch[p]['accuracy_mean']:.3f}" for p in match["tried"])
    where = (
        f"scratch needs **{match['matched_at']} labels per class**"
        if match["matched_at"]
        else f"scratch did not get there with up to {match['tried'][-1]} labels per class"
    )
    return (
        f"To match the best pretrained cell at 50 / class ({match['target_cell']}, "
        f"{match['target']:.3f}), {where} (scratch at {tried})."
    )


def recipe_ablation(results: Results) -> str:
    if "recipe" not in results:
        return _missing("recipe")
    r = results["recipe"]
    base = next(x for x in r["rows"] if x["name"] == "base")["selection_accuracy_mean"]
    lines = [
        "| configuration | size | selection accuracy | vs base | seconds |",
        "|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        changes = ", ".join(f"{k}={v}" for k, v in x["changes"].items()) or "—"
        secs = sum(run["seconds"] for run in x["runs"]) / len(x["runs"])
        delta = 100 * (x["selection_accuracy_mean"] - base)
        lines.append(
            f"| {x['name']} ({changes}) | {x['image_size']} | "
            f"{x['selection_accuracy_mean']:.3f} | {delta:+.1f} | {secs:.0f} |"
        )
    cfg = r["config"]
    lines += [
        "",
        f"{cfg['backbone']}, {cfg['labels_per_class']} labels per class, mean over "
        f"{cfg['seeds']} seed(s); scored on {cfg['selection_images']:,} held-out train images "
        f"(never test), early stopping on {cfg['validation_images']} more "
        f"(`bench/results/recipe.json`, {_prov(r)}; seconds per run on "
        f"{cfg['threads']} thread(s), load average {r['load_average_1m']['mean']:.1f}).",
    ]
    if not r.get("complete", True):
        lines.append("**Partial run**: the rows above finished; the chosen recipe is not final.")
    return "\n".join(lines)


def _edge(sel: dict[str, Any]) -> str:
    grid = [float(k) for k in sel["scratch_lr_val_accuracy"]]
    return " (the largest in the grid)" if sel["scratch_lr"] == max(grid) else ""


def _scratch_steps(rows: list[dict[str, Any]]) -> str:
    steps = [
        f"{run['optimizer_steps']} at {row['labels_per_class']} / class"
        for row in rows
        if row["strategy"] == "scratch"
        for run in row["runs"]
    ]
    return ", ".join(dict.fromkeys(steps)) or "no"


def transfer_selection(results: Results) -> str:
    if "transfer" not in results:
        return _missing("transfer")
    sel = results["transfer"]["selection"]
    bn = sel["freeze_bn_stats_val_accuracy"]
    strategies = list(bn["true"])
    lines = [
        "| freeze_bn_stats | " + " | ".join(strategies) + " |",
        "|---" * (len(strategies) + 1) + "|",
    ]
    for key in ("true", "false"):
        lines.append(f"| {key} | " + " | ".join(f"{bn[key][s]:.3f}" for s in strategies) + " |")
    lrs = ", ".join(f"{lr}: {acc:.3f}" for lr, acc in sel["scratch_lr_val_accuracy"].items())
    lines += [
        "",
        f"Validation accuracy at {sel['labels_per_class']} labels per class, seed {sel['seed']}. "
        f"Scratch learning rate on validation ({sel['scratch_lr_selection_steps']} steps each): {lrs}.",
    ]
    return "\n".join(lines)


def label_budget(results: Results) -> str:
    if "label_budget" not in results:
        return _missing("label_budget")
    r = results["label_budget"]
    cells = {(x["labels"], x["selection"], x["unlabelled"]): x for x in r["rows"]}
    budgets = sorted({x["labels"] for x in r["rows"]})
    variants = [
        ("kcenter_entropy", False, "active (incident's request)"),
        ("random", False, "random"),
        ("kcenter_entropy", True, "active + unlabelled"),
        ("random", True, "random + unlabelled"),
    ]
    lines = [
        "| labels | " + " | ".join(v[2] for v in variants) + " |",
        "|---" * (len(variants) + 1) + "|",
    ]
    for b in budgets:
        row = []
        for sel, unl, _ in variants:
            x = cells.get((b, sel, unl))
            row.append(
                "not run"
                if x is None
                else f"{100 * x['recovered_mean']:.0f} % ({100 * x['clean_change_mean']:+.1f} pt)"
            )
        lines.append(f"| {b} | " + " | ".join(row) + " |")
    cfg, t = r["config"], r["target"]
    verdict = (
        f"met by {t['cheapest']['labels']} labels ({t['cheapest']['selection']}"
        f"{', + unlabelled' if t['cheapest']['unlabelled'] else ''})"
        if t["met"]
        else "**missed**"
    )
    lines += [
        "",
        f"Recovered share of the shifted-domain loss (clean-holdout change in points), mean over "
        f"{cfg['seeds']} seeds; v1 {r['v1']['clean']:.3f} clean, {r['v1']['shifted']:.3f} shifted "
        f"({cfg['shift']}, {cfg['stream_images']:,} drifted images to choose from, "
        f"{cfg['test_images']:,} test images each side; `bench/results/label_budget.json`, "
        f"{_prov(r)}). Target ({t['rule']}): {verdict}.",
    ]
    if not r.get("complete", True):
        lines.append("**Partial run**: the cells marked *not run* did not finish.")
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[Results], str]] = {
    "demo-windows": demo_windows,
    "demo-figures": demo_figures,
    "transfer": transfer_table,
    "transfer-selection": transfer_selection,
    "recipe": recipe_ablation,
    "label_budget": label_budget,
}
