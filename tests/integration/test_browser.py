"""The UIs as a person sees them, checked in a real browser (headless Debian `chromium`).

A quick demo (`xfer demo --quick --no-prefect`: the same loop and the same stores as with the
Prefect server, a minute sooner), then `xfer ui` over its work dir. What the browser renders is
compared with what the demo itself reported (its `--json` summary and the drift report of each
window): the Evidently UI lists every scored window with its verdict, its dashboard charts one
verdict bar per window with only the drifted window raised, the latest, a drifted and a clean
window's snapshot show the calibrated verdict (the Metrics tab: the verdict naming the tests that
rejected, each test's statistic, p-value, threshold and decision; the Tests tab: the verdict as
one test, then each test's "p-value > threshold" failing exactly where xfer's test rejects),
and the MLflow page of the champion's version shows the `champion` alias and the gate's decision
as its description. The screenshots are kept in $XFER_SCREENSHOT_DIR (`make screenshots`: the README's
docs/screenshots/), else in the test's temporary directory; each must be a real, non-blank PNG.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from tests.flows.conftest import run_quick_demo
from tests.integration.browser import Browser, Page, check_screenshot, chromium, section
from tests.integration.ui_process import running_xfer_ui

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHOTS = {
    "dashboard": "evidently-dashboard.png",
    "reports": "evidently-reports.png",
    "drift": "evidently-drifted-window.png",
    "clean": "evidently-clean-window.png",
    "champion": "mlflow-champion-version.png",
}
# the dashboard's verdict panel and the one after it, as xfer's workspace titles them
# (xferlib/drift/workspace.py `_panels`)
VERDICT_PANEL, NEXT_PANEL = "Verdict (1 = drift)", "Window size"


@dataclass(frozen=True)
class Demo:
    workdir: Path
    summary: dict[str, Any]  # `xfer demo --json`
    reports: dict[str, dict[str, Any]]  # window id -> the drift report xfer wrote for it
    model_name: str

    def windows(self, status: str | None = None) -> list[str]:
        """Window ids in the order they were checked (those with `status`, if given)."""
        return [w["window"] for w in self.summary["windows"] if status in (None, w["status"])]


@pytest.fixture(scope="module")
def installed() -> None:
    """Fail at once, in one line, when chromium is missing (not after the demo's minutes)."""
    try:
        chromium()
        return
    except RuntimeError as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="module")
def demo(installed: None, tmp_path_factory: pytest.TempPathFactory) -> Demo:
    from xferlib.context import Context

    workdir = tmp_path_factory.mktemp("browser") / "demo"
    out = run_quick_demo(workdir, "--no-prefect")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    reports = {}
    for html in map(
        Path, summary["drift_reports"]
    ):  # drift-<id>.evidently.html beside drift-<id>.json
        report = json.loads(
            html.with_name(html.name.replace(".evidently.html", ".json")).read_text()
        )
        reports[report["window_id"]] = report
    assert sorted(reports) == sorted(w["window"] for w in summary["windows"])
    name = Context.load(workdir).params.registry.model_name
    return Demo(workdir, summary, reports, name)


@pytest.fixture(scope="module")
def uis(demo: Demo) -> Iterator[dict[str, Any]]:
    with running_xfer_ui(demo.workdir) as (_, urls):
        yield urls


@pytest.fixture(scope="module")
def browser(uis: dict[str, Any]) -> Iterator[Browser]:
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("XFER_SCREENSHOT_DIR")
    return Path(chosen).resolve() if chosen else tmp_path_factory.mktemp("screenshots")


def _api(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read().decode())


@pytest.fixture(scope="module")
def project(demo: Demo, uis: dict[str, Any], browser: Browser) -> str:
    """The model's Evidently project, as the UI's project list links to it."""
    home = browser.open(uis["evidently"] + "/", ready=demo.model_name)
    link = rf'href="/projects/([0-9a-f-]{{36}})"[^>]*>(?:<[^>]+>)*{re.escape(demo.model_name)}<'
    (pid,) = re.findall(link, home.dom)
    # cross-check with the UI's JSON API: the same project, under the model's name
    assert {p["id"]: p["name"] for p in _api(uis["evidently"] + "/api/projects")} == {
        pid: demo.model_name
    }
    return str(pid)


@dataclass(frozen=True)
class Row:
    report_id: str
    status: str  # the snapshot's name is "<report id> (<status>)"
    snapshot: str
    tags: list[str]


ROW = re.compile(
    r"(?P<report>[0-9a-f]{16}) \((?P<status>\w+)\) (?P<snapshot>[0-9a-f-]{36}) (?P<tags>[^{]*)\{"
    r'.*?"window_id"\s*:\s*"(?P<window>[\w-]+)"'
)


def _report_rows(page: Page) -> dict[str, Row]:
    """The reports table as the browser shows it: window id -> its row."""
    body = section(page.text, "Timestamp Actions", "Rows per page")
    rows = {}
    for chunk in body.split("View Download")[:-1]:  # each row ends with its two actions
        m = ROW.search(chunk)
        assert m, f"a reports row without a window id: {chunk!r}"
        rows[m["window"]] = Row(m["report"], m["status"], m["snapshot"], m["tags"].split())
    return rows


@pytest.fixture(scope="module")
def rows(uis: dict[str, Any], project: str, browser: Browser, shots: Path) -> dict[str, Row]:
    page = browser.open(f"{uis['evidently']}/projects/{project}/reports", ready="Report ID")
    (shown, total) = re.findall(r"1–(\d+) of (\d+)", page.text)[0]
    found = _report_rows(page)
    assert int(shown) == int(total) == len(found), (shown, total, sorted(found))
    browser.screenshot(shots / SHOTS["reports"])  # the test checks the rows themselves
    return found


def test_evidently_lists_every_scored_window_with_its_verdict(
    demo: Demo, uis: dict[str, Any], project: str, rows: dict[str, Row], shots: Path
) -> None:
    snapshot_files = list((demo.workdir / "evidently" / project / "snapshots").glob("*.json"))
    assert len(snapshot_files) == len(demo.windows()) == 5  # the quick demo's 2 clean + 3 shifted
    assert sorted(rows) == sorted(demo.windows())
    for window, row in rows.items():
        status = demo.reports[window]["status"]
        assert (row.report_id, row.status) == (demo.reports[window]["report_id"], status), row
        assert status in row.tags, row
    assert {r.snapshot for r in rows.values()} == {p.stem for p in snapshot_files}
    # the UI's JSON API agrees with what the browser showed
    api = _api(f"{uis['evidently']}/api/projects/{project}/snapshots")
    assert {s["metadata"]["window_id"]: s["id"] for s in api} == {
        w: r.snapshot for w, r in rows.items()
    }
    check_screenshot(shots / SHOTS["reports"])


def _bars(dom: str) -> list[float]:
    """Heights of the bars of the dashboard's verdict panel, left to right (oldest first)."""
    panel = section(dom, VERDICT_PANEL, NEXT_PANEL)
    bars = []
    for rect in re.findall(r"<rect [^>]*MuiBarElement-root[^>]*>", panel):
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', rect))
        bars.append((float(attrs["x"]), float(attrs["height"])))
    return [h for _, h in sorted(bars)]


def test_evidently_dashboard_charts_one_verdict_per_window_and_raises_only_the_drifted(
    demo: Demo, uis: dict[str, Any], project: str, browser: Browser, shots: Path
) -> None:
    page = browser.open(f"{uis['evidently']}/projects/{project}", ready=NEXT_PANEL)
    drifted = [h > 0 for h in _bars(page.dom)]
    assert drifted == [demo.reports[w]["drift"] for w in demo.windows()], drifted
    assert drifted.count(True) == len(demo.windows("drift")) >= 1
    for name in demo.reports[demo.windows()[-1]]["tests"]:  # a p-value panel per test
        assert f"{name}: p-value vs threshold" in page.text
    check_screenshot(browser.screenshot(shots / SHOTS["dashboard"]))


def _which(demo: Demo, kind: str) -> str:
    if kind == "latest":
        return demo.windows()[-1]
    if kind == "drift":
        return demo.windows("drift")[0]
    return next(w for w in demo.windows("no_drift") if "clean" in w)


def _verdict_line(report: dict[str, Any]) -> str:
    """The verdict's one-line reason as xfer words it: the tests that rejected, or none."""
    tests = report["tests"]
    rejected = [name for name, t in tests.items() if t["drift"]]
    if not rejected:
        return f"all {len(tests)} tests above their thresholds"
    return f"{', '.join(rejected)} at or below threshold ({len(rejected)} of {len(tests)} tests)"


def _metrics_expected(report: dict[str, Any]) -> list[str]:
    """What the Metrics tab must show of the window, in this order: the verdict header and its
    counters, one row per test of the calibrated tests' table (numbers as the table rounds them
    and the decision), the window's row count and the accuracy estimate (MeanValue widgets)."""
    status = "DRIFT" if report["drift"] else "NO DRIFT"
    lines = [
        f"xfer verdict (calibrated tests): {status} ({_verdict_line(report)})",
        f"{status} verdict {report['window_size']} window rows "
        f"{report['reference_size']} reference rows",
    ]
    for name, t in report["tests"].items():
        decision = "DRIFT (p <= threshold)" if t["drift"] else "pass"
        lines.append(
            f"{name} {t['statistic']:.4g} {t['p_value']:.4g} {t['threshold']:.4g} {decision}"
        )
    lines.append(f"Row count in dataset (current) {report['window_size']:.3f}")
    if report.get("accuracy"):
        lines.append(
            f"Mean value of 'estimated_accuracy': current: {report['accuracy']['accuracy']:.3f}"
        )
    return lines


@dataclass(frozen=True)
class Alert:
    title: str
    colour: str  # "Success" (SUCCESS), "Error" (FAIL), "Warning"...
    description: str


ALERT = re.compile(
    r'MuiAlert-color(\w+)[^"]*" role="alert".*?MuiAlertTitle-root[^>]*>([^<]*)</div>'
    r"(?:<p>([^<]*)</p>)?",
    flags=re.S,
)


def _test_alerts(dom: str) -> list[Alert]:
    """The Tests tab's results in the order shown, from their alert boxes."""
    return [Alert(unescape(t), c, unescape(d)) for c, t, d in ALERT.findall(dom)]


def _tests_expected(report: dict[str, Any]) -> list[Alert]:
    """The Tests tab of the window as xfer decided it: the verdict's test "no drift" (failing on
    drift), then per calibrated test Evidently's "p-value > threshold", failing where it rejects."""
    colour = {True: "Error", False: "Success"}
    alerts = [
        Alert(
            "xfer verdict: no drift (every calibrated test above its threshold)",
            colour[report["drift"]],
            f"{'drift' if report['drift'] else 'no drift'}: {_verdict_line(report)}",
        )
    ]
    for name, t in report["tests"].items():
        op = "<=" if t["drift"] else ">"
        alerts.append(
            Alert(
                f"{name}: p-value > {t['threshold']:.4g} (no drift)",
                colour[t["drift"]],
                f"{name}: p-value {t['p_value']:.4g} {op} threshold {t['threshold']:.4g}",
            )
        )
    return alerts


@pytest.mark.parametrize("kind", ["latest", "drift", "clean"])
def test_a_window_snapshot_shows_its_calibrated_verdict(
    demo: Demo, uis: dict[str, Any], project: str, rows: dict[str, Row], browser: Browser,
    shots: Path, kind: str,
) -> None:  # fmt: skip
    window = _which(demo, kind)
    report, row = demo.reports[window], rows[window]
    assert row.status == report["status"] == ("drift" if report["drift"] else "no_drift")
    rejected = sum(t["drift"] for t in report["tests"].values())
    assert (rejected > 0) == report["drift"]  # the verdict is the calibrated tests' union
    url = f"{uis['evidently']}/projects/{project}/reports/{row.snapshot}"
    # the Metrics tab: xfer's verdict, then each test's numbers and decision, in that order
    metrics = browser.open(url, ready="xfer verdict (calibrated tests):")
    at = 0
    for line in _metrics_expected(report):
        found = metrics.text.find(line, at)
        assert found >= 0, f"{window}'s Metrics tab lacks {line!r} after {metrics.text[:at]!r}"
        at = found + len(line)

    # the Tests tab: xfer's verdict as one test, then each calibrated test as Evidently's test
    # "p-value > threshold", failing exactly where xfer's test rejects; nothing else (the
    # per-column preset's own, uncalibrated tests are left out of the report)
    tests = browser.click("tab", "Tests", then="All tests")
    assert _test_alerts(tests.dom) == _tests_expected(report), tests.text[:3000]
    counts = re.search(r"(\d+) SUCCESS \d+ WARNING (\d+) FAIL (\d+) ERROR", tests.text)
    assert counts, tests.text[:1500]
    fails = rejected + int(report["drift"])  # the verdict's test fails with the rejecting ones
    assert tuple(map(int, counts.groups())) == (len(report["tests"]) + 1 - fails, fails, 0)
    if kind in SHOTS:
        check_screenshot(browser.screenshot(shots / SHOTS[kind]))


def _version_page(browser: Browser, uis: dict[str, Any], demo: Demo, version: str) -> Page:
    name = urllib.parse.quote(demo.model_name)
    return browser.open(
        f"{uis['mlflow']}/#/models/{name}/versions/{version}", ready="Registered At"
    )


ALIASES = re.compile(r"Aliases\s*:\s*((?:@ [\w-]+\s*)+)")


def _aliases(page: Page, version: str) -> list[str]:
    m = ALIASES.search(section(page.text, f"Version {version}", "Description"))
    return m[1].replace("@", " ").split() if m else []


def test_mlflow_shows_the_champion_alias_and_the_gate_decision_on_its_version_page(
    demo: Demo, uis: dict[str, Any], browser: Browser, shots: Path
) -> None:
    (retrain,) = demo.summary["retrains"]
    champion = demo.summary["champion_version"]
    assert retrain["version"] == champion and retrain["decision"] == "promote", retrain
    page = _version_page(browser, uis, demo, champion)
    assert "champion" in _aliases(page, champion), page.text[:1500]
    # the description, not the tags below it, holds the gate's decision
    described = section(page.text, "Description", "Tags")
    for reason in retrain["reasons"]:
        assert reason in described, (reason, described)
    query = urllib.parse.urlencode({"name": demo.model_name, "version": champion})
    version = _api(f"{uis['mlflow']}/api/2.0/mlflow/model-versions/get?{query}")["model_version"]
    tags = {t["key"]: t["value"] for t in version.get("tags", [])}
    assert tags["xfer.gate.decision_id"] in described
    assert "Promoted" in described and all(r in version["description"] for r in retrain["reasons"])
    check_screenshot(browser.screenshot(shots / SHOTS["champion"]))

    # the version it replaced is not shown as champion: the alias check above can fail
    old = _version_page(browser, uis, demo, "1")
    assert "champion" not in _aliases(old, "1"), old.text[:1500]
