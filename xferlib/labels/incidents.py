"""Incidents: what a drift verdict the policy acts on opens, and its life until it is closed.

    open -> labels_requested -> labels_arriving (counts per class, again per import)
         -> retraining -> promoted (-> closed) | rejected (-> labels_arriving: more labels)
    open -> retraining        labels were at hand with the request (`xfer monitor --feedback`)
    retraining -> labels_arriving | open   the retrain failed: nothing was trained, labels kept
    any state but closed -> closed         an operator closes it

`advance` is the pure transition (an illegal one raises `IllegalTransition`, one line); the
`IncidentStore` keeps one JSON document per incident in a `DocStore` (a folder or s3:// prefix
every worker reaches) and changes it by compare-and-swap, so two workers never lose each other's
change. Each model has at most one active incident: a drifted window seen while it is active
joins it (its window and drift report are added) instead of opening another.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from xferlib.docstore import Doc, DocStore

State = Literal[
    "open", "labels_requested", "labels_arriving", "retraining", "promoted", "rejected", "closed"
]
STATES: tuple[str, ...] = get_args(State)
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"labels_requested", "retraining", "closed"}),
    "labels_requested": frozenset({"labels_arriving", "closed"}),
    "labels_arriving": frozenset({"labels_arriving", "retraining", "closed"}),
    "retraining": frozenset({"promoted", "rejected", "labels_arriving", "open", "closed"}),
    "promoted": frozenset({"closed"}),
    "rejected": frozenset({"labels_arriving", "retraining", "closed"}),
    "closed": frozenset(),
}
ACTIVE = frozenset(STATES) - {"promoted", "closed"}  # states in which new windows join


class IllegalTransition(ValueError):
    """A transition the lifecycle does not allow; the message names the valid next states."""


class UnknownIncident(LookupError):
    """No incident with that id in the store."""


@dataclass(frozen=True)
class Incident:
    id: str
    model_name: str
    model_version: str  # the champion whose windows drifted
    state: State
    opened_at: str
    windows: tuple[str, ...] = ()
    drift_reports: tuple[str, ...] = ()
    # one entry per state entered: {"state", "at", "note"}
    timeline: tuple[dict[str, str], ...] = ()
    label_request: dict[str, Any] = field(default_factory=dict)  # where the batch is, how many
    labels: dict[str, int] = field(default_factory=dict)  # accepted labels per class
    label_data_version: str = ""  # DVC version of the accepted labels dataset
    retrain_request: str = ""  # the request id of the retrain it ran (its in-flight holder)
    challenger_version: str = ""
    retrains: int = 0

    @property
    def accepted(self) -> int:
        return sum(self.labels.values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d | {k: list(d[k]) for k in ("windows", "drift_reports", "timeline")}

    @staticmethod
    def from_dict(d: Doc) -> Incident:
        tuples = {k: tuple(d.get(k) or ()) for k in ("windows", "drift_reports", "timeline")}
        return Incident(**{**d, **tuples})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def advance(inc: Incident, state: str, note: str = "", at: str = "", **changes: Any) -> Incident:
    """`inc` moved to `state` (with `changes` to its fields), the move on its timeline."""
    if state not in STATES:
        raise IllegalTransition(f"unknown incident state {state!r}; valid: {', '.join(STATES)}")
    allowed = TRANSITIONS[inc.state]
    if state not in allowed:
        valid = ", ".join(sorted(allowed)) or "none (it is closed)"
        raise IllegalTransition(
            f"incident {inc.id} cannot go from {inc.state} to {state}; valid next states: {valid}"
        )
    entry = {"state": state, "at": at or _now(), "note": note}
    return replace(inc, **changes, state=state, timeline=(*inc.timeline, entry))  # type: ignore[arg-type]


def _pointer(model_name: str) -> str:
    """The key of the document naming a model's active incident."""
    return "active-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in model_name)


class IncidentStore:
    """Incidents as documents of a DocStore: `inc-...` one per incident, `active-<model>` the
    pointer to each model's active one."""

    def __init__(self, root: str) -> None:
        self.docs = DocStore(root)

    def get(self, incident_id: str) -> Incident:
        got = self.docs.get(incident_id) if incident_id.startswith("inc-") else None
        if got is None:
            raise UnknownIncident(
                f"no incident {incident_id!r} in {self.docs.root}; list them with `xfer incidents`"
            )
        return Incident.from_dict(got[0])

    def all(self) -> list[Incident]:
        """Every incident, oldest first."""
        found = [self.docs.get(k) for k in self.docs.keys() if k.startswith("inc-")]
        return sorted(
            (Incident.from_dict(g[0]) for g in found if g), key=lambda i: (i.opened_at, i.id)
        )

    def active(self, model_name: str) -> Incident | None:
        got = self.docs.get(_pointer(model_name))
        current = got[0].get("incident") if got else None
        if not current:
            return None
        try:
            inc = self.get(current)
        except UnknownIncident:  # the opener died between pointer and document: none is active
            return None
        return inc if inc.state in ACTIVE else None

    def open_or_join(
        self, model_name: str, model_version: str, window: str, report_id: str
    ) -> tuple[Incident, bool]:
        """The model's active incident with this window and report added, or a new one (True)."""
        for _ in range(20):
            if (inc := self.active(model_name)) is not None:
                return self._join(inc.id, window, report_id), False
            at = _now()
            new_id = f"inc-{at[:19].replace('-', '').replace(':', '')}-{uuid.uuid4().hex[:6]}"
            got = self.docs.get(_pointer(model_name))
            if not self.docs.put(
                _pointer(model_name), {"incident": new_id}, got[1] if got else None
            ):
                continue  # another worker opened one meanwhile: join theirs
            inc = Incident(
                new_id, model_name, model_version, "open", at,
                windows=(window,) if window else (), drift_reports=(report_id,),
                timeline=({"state": "open", "at": at, "note": f"drift report {report_id}"},),
            )  # fmt: skip
            self.docs.put(new_id, inc.to_dict(), None)
            return inc, True
        raise RuntimeError(f"could not open an incident for {model_name}: the store kept changing")

    def _join(self, incident_id: str, window: str, report_id: str) -> Incident:
        def change(inc: Incident) -> Incident:
            windows = inc.windows if not window or window in inc.windows else (*inc.windows, window)
            reports = inc.drift_reports
            if report_id not in reports:
                reports = (*reports, report_id)
            return replace(inc, windows=windows, drift_reports=reports)

        return self.change(incident_id, change)

    def change(self, incident_id: str, fn: Callable[[Incident], Incident]) -> Incident:
        """Apply `fn` by compare-and-swap (re-applied if another worker changed it first)."""
        self.get(incident_id)  # one line for an unknown id

        def apply(doc: Doc | None) -> Doc:
            if doc is None:
                raise UnknownIncident(f"incident {incident_id} vanished from {self.docs.root}")
            return fn(Incident.from_dict(doc)).to_dict()

        return Incident.from_dict(self.docs.update(incident_id, apply))

    def transition(self, incident_id: str, state: str, note: str = "", **changes: Any) -> Incident:
        """Move an incident to `state` (checked against the lifecycle), atomically."""
        return self.change(incident_id, lambda inc: advance(inc, state, note, **changes))

    def find_by_report(self, report_id: str) -> Incident | None:
        """The incident a drift report opened or joined (the newest, if several)."""
        hits = [i for i in self.all() if report_id and report_id in i.drift_reports]
        return hits[-1] if hits else None
