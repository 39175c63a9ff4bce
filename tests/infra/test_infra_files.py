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
    "evidently-ui",
    "postgres",
    "pg-backup",
    "s3",
    "s3-init",
    "mlflow",
    "prefect-server",
    "prefect-init",
    "prefect-worker-cpu",
    "prefect-worker-gpu",
}
ONE_SHOTS = {"s3-init", "prefect-init"}  # their exit code is their health
WORKERS = ("prefect-worker-cpu", "prefect-worker-gpu")
# Every secret, with a value found nowhere else, so a leak into another service shows.
SECRETS = {
    "POSTGRES_PASSWORD": "pg-superuser-pw",
    "MLFLOW_DB_PASSWORD": "mlflow-db-pw",
    "PREFECT_DB_PASSWORD": "prefect-db-pw",
    "S3_ADMIN_ACCESS_KEY": "s3-admin-id",
    "S3_ADMIN_SECRET_KEY": "s3-admin-secret",
    "S3_WORKER_ACCESS_KEY": "s3-worker-id",
    "S3_WORKER_SECRET_KEY": "s3-worker-secret",
    "S3_MLFLOW_ACCESS_KEY": "s3-mlflow-id",
    "S3_MLFLOW_SECRET_KEY": "s3-mlflow-secret",
}
REQUIRED = {**SECRETS, "XFER_REPO_URL": "https://git.example/xfer.git"}
# Secrets that may be empty: a public code repository needs no token; alerts are optional.
OPTIONAL_SECRETS = {"XFER_REPO_TOKEN", "XFER_ALERT_WEBHOOK"}
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
    env = REQUIRED | (env or {})
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
        if name not in ONE_SHOTS:
            assert "healthcheck" in svc, f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES and cond["condition"].startswith("service_")


def test_compose_ports_bind_localhost_by_default_and_xfer_bind_overrides() -> None:
    published = [p for s in _compose()["services"].values() for p in s.get("ports", [])]
    assert len(published) == 5  # postgres, s3, mlflow, prefect, evidently
    assert all(p.startswith("127.0.0.1:") for p in published), published
    opened = [
        p
        for s in _compose({"XFER_BIND": "0.0.0.0"})["services"].values()
        for p in s.get("ports", [])
    ]
    assert all(p.startswith("0.0.0.0:") for p in opened)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_compose_refuses_to_start_without_each_required_secret(name: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != name}
    with pytest.raises(KeyError, match=name):
        yaml.safe_load(_interpolate((INFRA / "compose.yaml").read_text(), env))


def test_every_secret_in_compose_is_required_never_defaulted() -> None:
    secretish = re.compile(r"PASSWORD|SECRET|_KEY|TOKEN|WEBHOOK")
    uses = _VAR.findall((INFRA / "compose.yaml").read_text())
    for name, op, _ in uses:
        if secretish.search(name) and name not in OPTIONAL_SECRETS:
            assert op == "?", f"${{{name}}} in compose.yaml must be ${{{name}:?message}}"
    assert {n for n, _, _ in uses if secretish.search(n)} - OPTIONAL_SECRETS == set(SECRETS)


def _who_sees(value: str) -> set[str]:
    services = _compose()["services"]
    return {n for n, svc in services.items() if value in json.dumps(svc)}


def test_no_root_or_superuser_credential_reaches_workers_or_apps() -> None:
    assert _who_sees(SECRETS["POSTGRES_PASSWORD"]) == {"postgres"}
    for key in ("S3_ADMIN_ACCESS_KEY", "S3_ADMIN_SECRET_KEY"):
        assert _who_sees(SECRETS[key]) == {"s3", "s3-init"}, key
    for key in ("S3_WORKER_ACCESS_KEY", "S3_WORKER_SECRET_KEY"):
        assert _who_sees(SECRETS[key]) == {"s3", *WORKERS}, key
    for key in ("S3_MLFLOW_ACCESS_KEY", "S3_MLFLOW_SECRET_KEY"):
        assert _who_sees(SECRETS[key]) == {"s3", "mlflow"}, key
    assert _who_sees(SECRETS["MLFLOW_DB_PASSWORD"]) == {"postgres", "pg-backup", "mlflow"}
    assert _who_sees(SECRETS["PREFECT_DB_PASSWORD"]) == {"postgres", "pg-backup", "prefect-server"}
    services = _compose()["services"]
    for worker in WORKERS:
        env = services[worker]["environment"]
        assert env["AWS_ACCESS_KEY_ID"] == SECRETS["S3_WORKER_ACCESS_KEY"]
        assert "MINIO_ROOT_USER" not in json.dumps(env)


def test_postgres_has_one_unprivileged_role_per_service_owning_its_database() -> None:
    services = _compose()["services"]
    mlflow_db = services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    prefect_db = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert mlflow_db == "postgresql://mlflow:mlflow-db-pw@postgres:5432/mlflow"
    assert prefect_db == "postgresql+asyncpg://prefect:prefect-db-pw@postgres:5432/prefect"
    init = (INFRA / "postgres" / "init-roles.sh").read_text()
    for role in ("mlflow", "prefect"):
        assert re.search(rf"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE", init)
        assert f"CREATE DATABASE {role} OWNER {role};" in init
        assert f"REVOKE ALL ON DATABASE {role} FROM PUBLIC;" in init
    mounts = services["postgres"]["volumes"]
    assert "./postgres/init-roles.sh:/docker-entrypoint-initdb.d/10-roles.sh:ro" in mounts
    assert services["postgres"]["environment"]["POSTGRES_USER"] not in ("mlflow", "prefect")


def test_postgres_databases_are_backed_up_by_their_own_roles_and_checked() -> None:
    backup = (INFRA / "postgres" / "backup.sh").read_text()
    for role in ("mlflow", "prefect"):
        assert re.search(rf"pg_dump -h postgres -U {role} -d {role} -Fc", backup)
    assert "pg_restore --list" in backup and "-mtime +" in backup
    svc = _compose()["services"]["pg-backup"]
    assert "xfer-backup" in " ".join(svc["command"]) and "pgbackups:/backups" in svc["volumes"]
    assert ".last-success" in " ".join(svc["healthcheck"]["test"])


def _seaweed_identities() -> dict[str, list[str]]:
    """The S3 identities seaweedfs-start.sh writes, rendered with the test secrets."""
    script = (INFRA / "s3" / "seaweedfs-start.sh").read_text()
    body = script[script.index("<<JSON\n") + 7 : script.index("\nJSON\n")]
    env = SECRETS | {"b": "xfer"}
    rendered = re.sub(r"\$(\w+)", lambda m: env[m.group(1)], body)
    return {i["name"]: i["actions"] for i in json.loads(rendered)["identities"]}


def test_s3_server_is_a_maintained_seaweedfs_with_bucket_scoped_app_identities() -> None:
    s3 = _compose()["services"]["s3"]
    image, tag = s3["image"].rsplit(":", 1)
    assert image == "chrislusf/seaweedfs" and re.fullmatch(r"\d+\.\d+", tag), s3["image"]
    assert not any("minio" in json.dumps(svc) for svc in _compose()["services"].values())
    identities = _seaweed_identities()
    assert set(identities) == {"admin", "workers", "mlflow"}
    for app in ("workers", "mlflow"):
        assert identities[app] and all(a.endswith(":xfer") for a in identities[app]), app
        assert not any(a.startswith("Admin") for a in identities[app]), app
    assert "-s3.config=/tmp/s3.json" in (INFRA / "s3" / "seaweedfs-start.sh").read_text()


def test_init_step_creates_bucket_pools_and_deployments_before_anything_uses_them() -> None:
    services = _compose()["services"]
    assert services["s3-init"]["command"][-1].endswith("infra/s3/init_bucket.py")
    assert services["s3-init"]["environment"]["AWS_ACCESS_KEY_ID"] == SECRETS["S3_ADMIN_ACCESS_KEY"]
    assert services["prefect-init"]["command"] == ["sh", "infra/prefect/init.sh"]
    assert services["mlflow"]["depends_on"]["s3-init"]["condition"] == (
        "service_completed_successfully"
    )
    for worker in WORKERS:
        assert services[worker]["depends_on"]["prefect-init"]["condition"] == (
            "service_completed_successfully"
        )
        assert "work-pool create" not in " ".join(services[worker]["command"])
    init = (INFRA / "prefect" / "init.sh").read_text()
    assert re.search(r"work-pool create cpu --type process", init)
    assert re.search(r"work-pool create gpu --type \"\$gpu_type\"", init)
    assert init.index("work-pool create gpu") < init.index(
        "deploy --all --prefect-file prefect.yaml"
    )
    dockerfile = (INFRA / "docker" / "Dockerfile.cpu").read_text()
    ignore = (INFRA / "docker" / "Dockerfile.cpu.dockerignore").read_text()
    for path in ("prefect.yaml", "infra/prefect", "infra/s3/init_bucket.py"):
        assert f"COPY {path}" in dockerfile and f"!{path}" in ignore, path


def test_worker_healthchecks_probe_the_worker_not_the_server() -> None:
    services = _compose()["services"]
    for worker in WORKERS:
        svc = services[worker]
        assert "--with-healthcheck" in svc["command"]
        probe = " ".join(svc["healthcheck"]["test"])
        assert "127.0.0.1:8080/health" in probe and "prefect-server" not in probe
        assert svc["environment"]["PREFECT_WORKER_WEBSERVER_PORT"] == "8080"


def test_flow_run_retention_uses_prefects_own_setting_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import timedelta

    from prefect.settings import Settings

    env = _compose()["services"]["prefect-server"]["environment"]
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("PREFECT_API_DATABASE_CONNECTION_URL")  # not needed to read settings
    settings = Settings().server
    assert "flow_runs" in settings.services.db_vacuum.enabled_vacuum_types
    assert settings.services.db_vacuum.retention_period == timedelta(days=30)
    assert settings.events.retention_period == timedelta(days=7)


def test_mlflow_stores_artifacts_on_s3_with_its_own_key() -> None:
    mlflow = _compose()["services"]["mlflow"]
    assert '--artifacts-destination "s3://xfer/mlflow"' in " ".join(mlflow["command"])
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:8333"
    assert mlflow["environment"]["AWS_ACCESS_KEY_ID"] == SECRETS["S3_MLFLOW_ACCESS_KEY"]
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_infra_env_is_git_ignored() -> None:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    assert "infra/.env" in lines or "/infra/.env" in lines


def test_compose_workers_poll_cpu_and_gpu_pools_and_gpu_gets_nvidia_devices() -> None:
    services = _compose()["services"]
    assert services["prefect-worker-cpu"]["command"][3:5] == ["--pool", "cpu"]
    gpu = services["prefect-worker-gpu"]
    assert "--pool gpu --type process --limit 1" in " ".join(gpu["command"])
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["profiles"] == ["gpu"] and gpu["shm_size"]
    for worker in WORKERS:
        env = services[worker]["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["XFER_REPO_URL"] == REQUIRED["XFER_REPO_URL"]


def test_env_example_sets_every_required_variable() -> None:
    required = {m[0] for m in _VAR.findall((INFRA / "compose.yaml").read_text()) if m[1] == "?"}
    example = (INFRA / ".env.example").read_text()
    assert required == set(REQUIRED)
    assert all(re.search(rf"^{v}=", example, re.M) for v in required)
    assert not re.search(r"^(\w*(PASSWORD|SECRET_KEY))=\S", example, re.M), "no real secrets"


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


def test_k8s_gpu_job_trains_from_the_stores_with_a_required_secret_and_no_shared_volume() -> None:
    template = json.loads((INFRA / "k8s" / "gpu-job-template.json").read_text())
    pod = _render(template, {})["job_manifest"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert all(set(v) == {"name", "emptyDir"} for v in pod["volumes"]), "only pod-local volumes"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/work" not in mounts
    env = {e["name"]: e["value"] for e in container["env"]}
    scratch = next(m for m in mounts if env["XFER_HOME"].startswith(m + "/"))
    assert container["workingDir"] == scratch  # the pull step clones the code into scratch
    [source] = container["envFrom"]
    assert source == {"secretRef": {"name": "xfer-env"}}  # no `optional`: a missing Secret fails
    for key in ("MLFLOW_TRACKING_URI", "AWS_", "XFER_DVC_REMOTE", "XFER_REPO_URL"):
        assert key in template["variables"]["properties"]["env_secret"]["title"], key


def test_no_kubernetes_secret_is_optional() -> None:
    for path in (INFRA / "k8s").iterdir():
        assert '"optional": true' not in path.read_text(), path.name
        assert "optional: true" not in path.read_text(), path.name


def test_k8s_worker_and_manual_train_job() -> None:
    kustomization = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())
    for res in kustomization["resources"]:
        assert (INFRA / "k8s" / res).exists()
    docs = list(yaml.safe_load_all((INFRA / "k8s" / "prefect-worker.yaml").read_text()))
    [deploy] = [d for d in docs if d["kind"] == "Deployment"]
    spec = deploy["spec"]["template"]["spec"]
    [worker] = spec["containers"]
    assert " --pool gpu --type kubernetes --with-healthcheck" in " ".join(worker["command"])
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
    assert worker["envFrom"] == [{"secretRef": {"name": "xfer-prefect-api"}}]  # no store keys
    assert "initContainers" not in spec  # the init step makes the pool (infra/prefect/init.sh)

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
    assert defaults.env["CUDA_VISIBLE_DEVICES"] == "0"
    assert defaults.working_dir is None  # a temporary dir per flow run: the code is cloned there


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


def test_compose_serves_the_evidently_workspace_read_only_without_credentials() -> None:
    services = _compose()["services"]
    ui = services["evidently-ui"]
    cmd = ui["command"]
    assert cmd[:2] == ["evidently", "ui"]
    assert cmd[cmd.index("--workspace") + 1] == "/work/evidently"  # Workdir.evidently_workspace
    assert ui["volumes"] == ["xferwork:/work:ro"]
    assert "environment" not in ui  # it reads the volume, nothing else
    assert "/api/projects" in " ".join(ui["healthcheck"]["test"])
