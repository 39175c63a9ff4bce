"""Item 4 of issue 14: an incident retrains once its accepted labels reach retrain.min_labels,
exactly once per crossing, and again on later labels only after a rejected retrain and the
cool-down. The incident store, the imports and DVC are real; the orchestrator records the retrain
it is asked for instead of training (what it runs is tested in tests/loop and tests/flows)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from xferlib import loop
from xferlib.labels.incidents import IncidentStore
from xferlib.stages import incidents, labels
from xferlib.workdir import Workdir


class Recording(loop.Direct):
    """Direct, except that a requested retrain is recorded (and reported requested), not run."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.requests: list[loop.RetrainRequest] = []
        self._lock = threading.Lock()

    def request_retrain(self, request: loop.RetrainRequest) -> loop.RetrainOutcome:
        with self._lock:
            self.requests.append(request)
        return loop.RetrainOutcome("requested", request.request_id)


def _params(wd: Path, **sections: dict) -> None:
    raw = yaml.safe_load((wd / "params.yaml").read_text())
    for section, values in sections.items():
        raw[section].update(values)
    (wd / "params.yaml").write_text(yaml.safe_dump(raw))


def _import(wd: Path, tmp_path: Path, rows: list[str], name: str) -> labels.LabelImportResult:
    f = tmp_path / name
    f.write_text("image_id,label\n" + "\n".join(rows) + "\n")
    return labels.import_labels(wd, f)


def test_the_retrain_fires_once_when_the_threshold_is_crossed(
    waiting: tuple[Path, str], tmp_path: Path
) -> None:
    wd, inc_id = waiting
    _params(wd, retrain={"min_labels": 3})
    orch = Recording(wd)

    below = _import(wd, tmp_path, ["img0,Coat", "img1,Bag"], "a.csv")
    assert not below.ready_to_retrain and loop.labels_arrived(orch, inc_id) is None
    assert orch.requests == []

    crossing = _import(wd, tmp_path, ["img2,Coat", "img3,Sandal"], "b.csv")
    assert crossing.ready_to_retrain
    state = Workdir(wd).trigger_state
    before = json.loads(state.read_text())["drift"].get("last_retrain") if state.exists() else None
    outcome = loop.labels_arrived(orch, inc_id)
    assert outcome is not None and outcome.status == "requested"
    (request,) = orch.requests
    after = json.loads(state.read_text())["drift"]["last_retrain"]  # the cool-down starts now
    assert after != before
    assert abs(datetime.now(UTC) - datetime.fromisoformat(after)) < timedelta(minutes=5)
    inc = IncidentStore(Workdir(wd).incidents).get(inc_id)
    assert inc.state == "retraining" and request.drift_report == inc.drift_reports[-1]
    feedback = Path(request.feedback)  # the ImageFolder `xfer retrain --feedback` reads
    assert sorted(unquote(p.parent.name) for p in feedback.glob("*/*.png")) == [
        "Bag", "Coat", "Coat", "Sandal",
    ]  # fmt: skip

    # the same crossing seen again (a second import, another worker): nothing more
    assert loop.labels_arrived(orch, inc_id) is None
    during = _import(wd, tmp_path, ["img4,Shirt"], "c.csv")  # arrives while it retrains
    assert during.state == "retraining" and during.labels["Shirt"] == 1
    assert loop.labels_arrived(orch, inc_id) is None and len(orch.requests) == 1


def test_two_workers_racing_on_one_crossing_request_one_retrain(
    waiting: tuple[Path, str], tmp_path: Path
) -> None:
    wd, inc_id = waiting
    _params(wd, retrain={"min_labels": 2})
    _import(wd, tmp_path, ["img0,Coat", "img1,Bag"], "a.csv")
    orch = Recording(wd)
    threads = [threading.Thread(target=loop.labels_arrived, args=(orch, inc_id)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(orch.requests) == 1


def test_later_labels_retrain_again_only_after_a_rejection_and_the_cool_down(
    waiting: tuple[Path, str], tmp_path: Path
) -> None:
    wd, inc_id = waiting
    _params(wd, retrain={"min_labels": 2}, drift={"cooldown_minutes": 60.0})
    orch = Recording(wd)
    _import(wd, tmp_path, ["img0,Coat", "img1,Bag"], "a.csv")
    assert loop.labels_arrived(orch, inc_id) is not None
    report = IncidentStore(Workdir(wd).incidents).get(inc_id).drift_reports[-1]
    incidents.retrain_outcome(wd, report, "finished", "2", "reject")  # the gate said no

    _import(wd, tmp_path, ["img2,Coat"], "b.csv")
    inc = IncidentStore(Workdir(wd).incidents).get(inc_id)
    assert inc.state == "labels_arriving" and inc.challenger_version == "2"
    assert loop.labels_arrived(orch, inc_id) is None  # cooling down
    _params(wd, drift={"cooldown_minutes": 0.0})
    assert loop.labels_arrived(orch, inc_id) is not None
    first, second = orch.requests
    assert first.window_id != second.window_id  # each retrain its own feedback dataset
    states = [t["state"] for t in IncidentStore(Workdir(wd).incidents).get(inc_id).timeline]
    assert states[-4:] == ["retraining", "rejected", "labels_arriving", "retraining"]


def test_a_promoted_retrain_closes_the_incident_and_a_failed_one_waits_for_labels(
    waiting: tuple[Path, str], tmp_path: Path
) -> None:
    wd, inc_id = waiting
    _params(wd, retrain={"min_labels": 1})
    orch = Recording(wd)
    _import(wd, tmp_path, ["img0,Coat"], "a.csv")
    assert loop.labels_arrived(orch, inc_id) is not None
    store = IncidentStore(Workdir(wd).incidents)
    report = store.get(inc_id).drift_reports[-1]
    incidents.retrain_outcome(wd, report, "failed", "", "")
    assert store.get(inc_id).state == "labels_arriving"  # nothing trained; labels kept
    assert loop.labels_arrived(orch, inc_id) is not None
    incidents.retrain_outcome(wd, report, "finished", "3", "promote")
    inc = store.get(inc_id)
    assert inc.state == "closed" and inc.challenger_version == "3"
    assert [t["state"] for t in inc.timeline][-2:] == ["promoted", "closed"]
    with pytest.raises(ValueError, match="no incident of .* is waiting for labels"):
        _import(wd, tmp_path, ["img1,Bag"], "b.csv")
