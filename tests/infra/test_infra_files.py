"""Static checks of infra/: no container engine, cluster or cloud is reachable from these machines.

What this proves and what it cannot is written down in infra/README.md.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SERVICES = {
    "postgres",
    "minio",
    "minio-init",
    "mlflow",
    "prefect-server",
    "prefect-worker-cpu",
    "prefect-worker-gpu",
}
_VAR = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR:?error} (a missing required var fails)."""

    def sub(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return _VAR.sub(sub, text.replace("$$", "\0")).replace("\0", "$")


def _compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    env = {"POSTGRES_PASSWORD": "pw-test", "MINIO_ROOT_PASSWORD": "minio-test"} | (env or {})
    return yaml.safe_load(_interpolate((INFRA / "compose.yaml").read_text(), env))


def _files(*suffixes: str) -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.suffix in suffixes)


@pytest.mark.parametrize("path", _files(".yaml", ".yml"), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


@pytest.mark.parametrize("path", _files(".json"), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_json_file_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


def test_compose_has_the_stack_with_healthchecks() -> None:
    services = _compose()["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        if name != "minio-init":  # a one-shot job: its exit code is its health
            assert "healthcheck" in svc, f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES and cond["condition"].startswith("service_")


def test_compose_ports_bind_localhost_by_default_and_xfer_bind_overrides() -> None:
    published = [p for s in _compose()["services"].values() for p in s.get("ports", [])]
    assert len(published) == 5
    assert all(p.startswith("127.0.0.1:") for p in published), published
    opened = [
        p
        for s in _compose({"XFER_BIND": "0.0.0.0"})["services"].values()
        for p in s.get("ports", [])
    ]
    assert all(p.startswith("0.0.0.0:") for p in opened)


def test_compose_refuses_to_start_without_passwords() -> None:
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        yaml.safe_load(
            _interpolate((INFRA / "compose.yaml").read_text(), {"MINIO_ROOT_PASSWORD": "x"})
        )


def test_mlflow_and_prefect_servers_use_postgres_and_s3() -> None:
    services = _compose()["services"]
    mlflow = services["mlflow"]
    command = " ".join(mlflow["command"])
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith(
        "postgresql://xfer:pw-test@postgres:5432/mlflow"
    )
    assert '--artifacts-destination "s3://xfer/mlflow"' in command
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    prefect_db = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert prefect_db.startswith("postgresql+asyncpg://") and prefect_db.endswith("/prefect")
    assert "mc version enable" in " ".join(services["minio-init"]["command"])
    init_sql = (INFRA / "postgres" / "init.sql").read_text()
    assert "CREATE DATABASE mlflow" in init_sql and "CREATE DATABASE prefect" in init_sql


def test_compose_workers_poll_cpu_and_gpu_pools_and_gpu_gets_nvidia_devices() -> None:
    services = _compose()["services"]
    assert services["prefect-worker-cpu"]["command"][3:5] == ["--pool", "cpu"]
    gpu = services["prefect-worker-gpu"]
    assert "--pool gpu --type process --limit 1" in " ".join(gpu["command"])
    assert "gpu-job-template.json" in " ".join(gpu["command"])
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["profiles"] == ["gpu"] and gpu["shm_size"]
    for worker in ("prefect-worker-cpu", "prefect-worker-gpu"):
        env = services[worker]["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_env_example_sets_every_required_variable() -> None:
    required = {m[0] for m in _VAR.findall((INFRA / "compose.yaml").read_text()) if m[1] == "?"}
    example = (INFRA / ".env.example").read_text()
    assert required == {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"}
    assert all(re.search(rf"^{v}=", example, re.M) for v in required)


def _render(template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Fill a work-pool base job template the way Prefect's workers do."""
    from prefect.utilities.templating import apply_values

    props = template["variables"]["properties"]
    defaults = {k: v["default"] for k, v in props.items() if "default" in v}
    return apply_values(template["job_configuration"], defaults | values)


def test_k8s_gpu_template_asks_for_gpus_shm_and_gpu_nodes() -> None:
    template = json.loads((INFRA / "k8s" / "gpu-job-template.json").read_text())
    placeholders = set(
        re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(template["job_configuration"]))
    )
    assert placeholders <= set(template["variables"]["properties"]), "undeclared template variables"

    job = _render(template, {"gpus": "2"})["job_manifest"]
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert {"name": "XFER_TRAIN_NPROC", "value": "2"} in container["env"]
    assert all(isinstance(e["value"], str) for e in container["env"])  # k8s rejects numbers
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert "torchrun --standalone --nproc_per_node" in template["variables"]["description"]


def test_k8s_worker_and_manual_train_job() -> None:
    kustomization = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())
    for res in kustomization["resources"]:
        assert (INFRA / "k8s" / res).exists()
    docs = list(yaml.safe_load_all((INFRA / "k8s" / "prefect-worker.yaml").read_text()))
    [deploy] = [d for d in docs if d["kind"] == "Deployment"]
    spec = deploy["spec"]["template"]["spec"]
    assert "--type kubernetes" in " ".join(spec["containers"][0]["command"])
    assert "gpu-job-template.json" in " ".join(spec["initContainers"][0]["command"])
    assert spec["volumes"][0]["configMap"]["name"] == kustomization["configMapGenerator"][0]["name"]

    job = yaml.safe_load((INFRA / "k8s" / "train-job.yaml").read_text())
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert re.search(r'xfer train .*--nproc "\$XFER_TRAIN_NPROC"', " ".join(container["args"]))
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["XFER_TRAIN_NPROC"]) == container["resources"]["limits"]["nvidia.com/gpu"]
    assert job["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["medium"] == "Memory"


def test_prefect_gpu_process_template_makes_a_process_job_configuration() -> None:
    # Prefect's own from_template_and_values would start a temporary API (~30 s) only to resolve
    # block references; the template has none, so render + validate is the same check.
    from prefect.workers.process import ProcessJobConfiguration

    template = json.loads((INFRA / "prefect" / "gpu-job-template.json").read_text())
    values = {"env": {"CUDA_VISIBLE_DEVICES": "0,1", "XFER_TRAIN_NPROC": "2"}}
    config = ProcessJobConfiguration.model_validate(_render(template, values))
    assert config.env["CUDA_VISIBLE_DEVICES"] == "0,1" and config.env["XFER_TRAIN_NPROC"] == "2"
    defaults = ProcessJobConfiguration.model_validate(_render(template, {}))
    assert defaults.env["CUDA_VISIBLE_DEVICES"] == "0" and str(defaults.working_dir) == "/work"


def _pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(d.split("==") for d in deps if d.startswith(("torch==", "torchvision==")))


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfiles_pin_the_projects_torch_and_run_unprivileged(name: str) -> None:
    text = (INFRA / "docker" / name).read_text()
    pins = _pins()
    assert set(pins) == {"torch", "torchvision"}
    for package, version in pins.items():
        assert f"{package}=={version}" in text, f"{name} does not pin {package}=={version}"
    assert re.search(r'pip install -c constraints.txt "\.\[', text)
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert ("download.pytorch.org/whl/cpu" in text) == (name == "Dockerfile.cpu")


def _strip_hcl(text: str) -> str:
    """Remove comments and string contents (keeping interpolations' brackets out of the count)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    return re.sub(r"(#|//)[^\n]*", "", text)


@pytest.mark.parametrize("path", _files(".tf"), ids=lambda p: p.name)
def test_terraform_files_are_balanced(path: Path) -> None:
    raw = path.read_text()
    assert raw.count('"') % 2 == 0, "unbalanced quotes"
    depth = {"{": 0, "[": 0, "(": 0}
    closing = {"}": "{", "]": "[", ")": "("}
    for ch in _strip_hcl(raw):
        if ch in depth:
            depth[ch] += 1
        elif ch in closing:
            depth[closing[ch]] -= 1
            assert depth[closing[ch]] >= 0, f"{path.name}: unexpected {ch}"
    assert depth == {"{": 0, "[": 0, "(": 0}


def test_terraform_bucket_is_versioned_private_encrypted_and_policy_is_scoped() -> None:
    tf = "\n".join(p.read_text() for p in _files(".tf"))
    assert re.search(r'versioning_configuration\s*{\s*status\s*=\s*"Enabled"', tf)
    for flag in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert re.search(rf"{flag}\s*=\s*true", tf), flag
    assert "apply_server_side_encryption_by_default" in tf
    assert 'resource "aws_iam_policy" "pipeline"' in tf
    pipeline = tf[tf.index('data "aws_iam_policy_document" "pipeline"') :]
    pipeline = pipeline[: pipeline.index('resource "aws_iam_policy"')]
    assert '"*"' not in pipeline and "aws_s3_bucket.xfer.arn" in pipeline
    assert "aws:SecureTransport" in tf


def test_readme_documents_every_compose_variable() -> None:
    names = {m[0] for m in _VAR.findall((INFRA / "compose.yaml").read_text())}
    readme = (INFRA / "README.md").read_text()
    missing = sorted(n for n in names if n not in readme)
    assert not missing, f"infra/README.md does not mention {missing}"
