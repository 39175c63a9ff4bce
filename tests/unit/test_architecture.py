"""The import rules of docs/architecture.md: xferlib never imports prefect, each outside SDK is
imported by its one adapter module only, a module imports only from its own layer or below, and
there is no import cycle. Walks the AST, so it also catches lazy imports."""

import ast
import functools
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "xferlib"

# SDK -> modules (relative to xferlib/, prefix match) allowed to import it
ADAPTERS = {
    "prefect": (),
    "mlflow": ("registry/",),
    "evidently": ("drift",),
    "boto3": ("storage",),
    "botocore": ("storage",),
}


@functools.cache
def _imports(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SystemError:  # CPython 3.11.7's "AST constructor recursion depth mismatch" (gh-106905)
        tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _modules() -> list[Path]:
    return sorted(LIB.rglob("*.py"))


def test_the_library_has_modules_to_check() -> None:
    assert len(_modules()) > 5


@pytest.mark.parametrize("sdk", sorted(ADAPTERS))
def test_sdk_is_imported_only_by_its_adapter(sdk: str) -> None:
    offenders = []
    for path in _modules():
        rel = path.relative_to(LIB).as_posix()
        if sdk in _imports(path) and not rel.startswith(ADAPTERS[sdk]):
            offenders.append(rel)
    assert offenders == [], f"{sdk} imported outside {ADAPTERS[sdk] or 'flows/'}: {offenders}"


def test_importing_xferlib_cli_pulls_in_no_heavy_sdk() -> None:
    import subprocess
    import sys

    code = "import sys, xferlib.cli, xferlib.config, xferlib.workdir; print(sorted(m for m in ('torch','mlflow','evidently','prefect','dvc') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# The layers of docs/architecture.md, lowest first: module prefixes (relative to xferlib, dotted).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config", "workdir", "env", "atomic", "secrets", "context"),
    ("storage", "alerts", "monitoring", "versioning", "progress", "services", "docstore"),
    ("data", "labels"),
    ("models",),
    ("finetune", "evaluate"),
    ("drift",),
    ("registry",),
    ("release",),
    ("stages",),
    ("loop", "demo", "ui"),
    ("cli", "distributed_worker"),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _graph() -> dict[str, frozenset[str]]:
    """xferlib module -> the xferlib modules it imports (a `from pkg import sub` names the submodule)."""
    mods = {_module_name(p): p for p in _modules()}
    graph: dict[str, frozenset[str]] = {}
    for name, path in mods.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    found.add(sub if sub in mods else node.module)
        graph[name] = frozenset(found & mods.keys() - {name})
    return graph


def _layer(module: str) -> int | None:
    rel = module.removeprefix("xferlib.")
    for i, prefixes in enumerate(LAYERS):
        if any(rel == p or rel.startswith(p + ".") for p in prefixes):
            return i
    return None


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _graph() if m != "xferlib" and _layer(m) is None]
    assert unplaced == [], f"add these to LAYERS and docs/architecture.md: {unplaced}"


def test_modules_import_only_from_their_own_layer_or_below() -> None:
    upward = [
        f"{m} -> {t}"
        for m, targets in _graph().items()
        for t in targets
        if m != "xferlib" and t != "xferlib" and (_layer(t) or 0) > (_layer(m) or 0)
    ]
    assert upward == [], f"imports up the layers: {upward}"


def test_there_is_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == [], f"import cycles: {cycles}"


def test_the_import_graph_sees_from_imports() -> None:
    """The layer and cycle tests see `from pkg import name` edges (else they would pass vacuously)."""
    graph = _graph()
    assert "xferlib.registry.client" in graph["xferlib.registry.runs"]


def _environment_reads(path: Path) -> list[str]:
    """`os.environ`, `os.environb`, `os.getenv`, `os.putenv`/`unsetenv` and `from os import ...` of them."""
    names = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
    hits = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in names
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            hits.append(f"os.{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            hits += [f"from os import {a.name}" for a in node.names if a.name in names]
    return hits


def test_only_env_touches_the_environment() -> None:
    offenders = {}
    for path in _modules():
        rel = path.relative_to(LIB).as_posix()
        if rel != "env.py" and (hits := _environment_reads(path)):
            offenders[rel] = hits
    assert offenders == {}, f"read environment variables through xferlib.env: {offenders}"


def test_the_environment_check_sees_reads(tmp_path: Path) -> None:
    """The walk above finds every spelling (else it would pass vacuously)."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\nfrom os import getenv\n"
        "a = os.environ.get('A')\nb = os.getenv('B')\nc = os.environ['C']\n"
    )
    hits = _environment_reads(probe)
    assert len(hits) == 4 and "from os import getenv" in hits, hits
    assert _environment_reads(LIB / "env.py"), "env.py itself reads os.environ"


# The one module every stage may import: the result types.
STAGE_SHARED = frozenset({"xferlib.stages.results"})


def test_no_stage_imports_another_stage() -> None:
    graph = _graph()
    stages = [m for m in graph if m.startswith("xferlib.stages.") and m not in STAGE_SHARED]
    assert {
        "xferlib.stages.data",
        "xferlib.stages.training",
        "xferlib.stages.retrain",
        "xferlib.stages.monitor",
        "xferlib.stages.trigger",
        "xferlib.stages.serving",
    } <= set(stages)
    crossing = [
        f"{m} -> {t}"
        for m in stages
        for t in graph[m]
        if t.startswith("xferlib.stages.") and t not in STAGE_SHARED
    ]
    assert crossing == [], f"stages importing other stages (share through the library): {crossing}"


def test_shared_stage_modules_import_no_stage() -> None:
    graph = _graph()
    up = [f"{m} -> {t}" for m in STAGE_SHARED for t in graph[m] if t.startswith("xferlib.stages.")]
    assert up == [], up
