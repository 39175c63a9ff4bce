"""The import rules of docs/architecture.md: xferlib never imports prefect, and each outside SDK is
imported by its one adapter module only. Walks the AST, so it also catches lazy imports."""

import ast
import functools
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "xferlib"

# SDK -> modules (relative to xferlib/, prefix match) allowed to import it
ADAPTERS = {
    "prefect": (),
    "mlflow": ("tracking", "registry"),
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
