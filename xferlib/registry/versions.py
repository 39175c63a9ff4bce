"""Reading the registry (aliases, versions, URIs, lineage) and its primitive writes (one alias, tags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from xferlib.registry.client import call_with_retries, mlflow_client

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"
STATUS, DECISION, REASONS, DECISION_ID = (
    "xfer.gate.status",
    "xfer.gate.decision",
    "xfer.gate.reasons",
    "xfer.gate.decision_id",
)
REPLACED = "xfer.gate.replaced"  # on a new champion: the version it replaced
ROLLBACK_TO = "xfer.gate.rollback_to"  # on a rolled-back version: the version restored
LINEAGE_TAGS = (
    "xfer.data_version",
    "xfer.parent_version",
    "xfer.drift_report",
    "xfer.flow_run_id",
    "xfer.pipeline_rev",  # the work dir commit holding the params + dvc.yaml it was trained with
    "xfer.dvc_exp",  # or the DVC experiment it was trained in
)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    description: str = ""  # Markdown: the gate's decision (see ops.decision_steps)


def aliases(tracking_uri: str, name: str) -> dict[str, str]:
    client = mlflow_client(tracking_uri)
    model = call_with_retries(
        tracking_uri, f"read model {name}", lambda: client.get_registered_model(name)
    )
    return {
        alias: str(v) for alias, v in (model.aliases or {}).items()
    }  # ints on sqlite, str on HTTP


def champion_version(tracking_uri: str, name: str) -> str | None:
    """The version the `champion` alias points at, or None."""
    return aliases(tracking_uri, name).get(CHAMPION)


def get_version_info(tracking_uri: str, name: str, version: str) -> VersionInfo:
    client = mlflow_client(tracking_uri)
    mv = call_with_retries(
        tracking_uri,
        f"read {name} v{version}",
        lambda: client.get_model_version(name, str(version)),
    )
    return VersionInfo(
        name,
        str(mv.version),
        mv.run_id or "",
        mv.source or "",
        dict(mv.tags or {}),
        list(mv.aliases or []),
        mv.description or "",
    )


def resolve_uri(model_uri: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """`models:/NAME@alias` or `models:/NAME/3` -> (name, version); aliases need `tracking_uri`."""
    if not model_uri.startswith("models:/"):
        raise ValueError(
            f"{model_uri!r} is not a registry URI; use models:/NAME@champion or models:/NAME/3"
        )
    body = model_uri[len("models:/") :].strip("/")
    if "@" in body:
        name, alias = body.rsplit("@", 1)
        if tracking_uri is None:
            raise ValueError(f"resolving {model_uri} needs a tracking URI; pass tracking_uri")
        version = aliases(tracking_uri, name).get(alias)
        if version is None:
            raise LookupError(
                f"model {name!r} has no alias {alias!r}; register and promote a version first"
            )
        return name, version
    name, _, version = body.rpartition("/")
    if not name or not version.isdigit():
        raise ValueError(f"{model_uri!r} is malformed; use models:/NAME@champion or models:/NAME/3")
    return name, version


def lineage(model_uri: str, tracking_uri: str) -> dict[str, str]:
    """Where a version came from: run, data version, parent version, drift report, flow run."""
    name, version = resolve_uri(model_uri, tracking_uri)
    info = get_version_info(tracking_uri, name, version)
    client = mlflow_client(tracking_uri)
    run_tags = call_with_retries(
        tracking_uri, "read run", lambda: client.get_run(info.run_id)
    ).data.tags
    out = {"name": name, "version": version, "run_id": info.run_id}
    for tag in LINEAGE_TAGS:
        out[tag.removeprefix("xfer.")] = info.tags.get(tag) or run_tags.get(tag) or ""
    return out


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    client = mlflow_client(tracking_uri)
    call_with_retries(
        tracking_uri,
        f"set {name}@{alias}",
        lambda: client.set_registered_model_alias(name, alias, version),
    )


def describe_version(tracking_uri: str, name: str, version: str, markdown: str) -> None:
    """Set the version's description (Markdown, shown on its page in the MLflow UI)."""
    client = mlflow_client(tracking_uri)
    call_with_retries(
        tracking_uri,
        f"describe {name} v{version}",
        lambda: client.update_model_version(name, version, description=markdown),
    )


def drop_alias_of(tracking_uri: str, name: str, alias: str, version: str) -> None:
    """Remove `alias` if it still points at `version` (it may have moved on to a newer one)."""
    if aliases(tracking_uri, name).get(alias) != version:
        return
    client = mlflow_client(tracking_uri)
    call_with_retries(
        tracking_uri,
        f"drop {name}@{alias}",
        lambda: client.delete_registered_model_alias(name, alias),
    )


def tag_version(tracking_uri: str, name: str, version: str, tags: dict[str, str]) -> None:
    client = mlflow_client(tracking_uri)
    for key, value in tags.items():
        call_with_retries(
            tracking_uri,
            f"tag {name} v{version}",
            partial(client.set_model_version_tag, name, version, key, value),
        )


def unfinished_versions(tracking_uri: str, name: str) -> list[VersionInfo]:
    client = mlflow_client(tracking_uri)
    found = call_with_retries(
        tracking_uri, f"list {name}", lambda: client.search_model_versions(f"name = '{name}'")
    )
    return [
        VersionInfo(name, str(v.version), v.run_id or "", v.source or "", dict(v.tags or {}))
        for v in found
        if (v.tags or {}).get(STATUS) == "applying"
    ]


def drop_alias(client: Any, name: str, alias: str) -> None:
    if alias in (client.get_registered_model(name).aliases or {}):
        client.delete_registered_model_alias(name, alias)
