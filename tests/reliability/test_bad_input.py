"""Bad input at every entrance (`xfer ingest`, `xfer score`, retrain feedback, params, model URIs):
each bad thing gets a one-line error or a quarantine entry naming it, and good data around it
goes through. Every command runs as a user would run it: `xfer ... --json` in a subprocess."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.reliability.conftest import assert_one_line_error, files_under, xfer
from tests.reliability.images import bad_counts, good_names, write_corpus

pytestmark = pytest.mark.reliability


def _quarantine_rows(wd: Path) -> list[dict]:
    return [
        json.loads(ln) for ln in (wd / "quarantine" / "quarantine.jsonl").read_text().splitlines()
    ]


def test_bad_images_are_quarantined_by_score_and_ingest_and_good_ones_go_through(
    wd: Path, tmp_path: Path
) -> None:
    expected = write_corpus(tmp_path / "prod")
    write_corpus(tmp_path / "src" / "Coat", seed=1)

    scored = xfer("score", str(tmp_path / "prod"), wd=wd)
    assert scored.returncode == 0, scored.stderr
    out = json.loads(scored.stdout)
    assert out["quarantined"] == bad_counts() and out["rows"] == len(good_names())

    ingested = xfer("ingest", str(tmp_path / "src"), "--dataset", "odd", "--no-push", wd=wd)
    assert ingested.returncode == 0, ingested.stderr
    res = json.loads(ingested.stdout)
    assert res["quarantined"] == bad_counts() and res["accepted"] == len(good_names())
    assert res["data_version"]  # the good images were versioned despite the bad ones
    stored = set(pd.read_parquet(wd / "data" / "odd" / "manifest.parquet")["path"])
    assert stored == {f"Coat/{n}" for n in good_names()}  # spaces, unicode, a newline: kept intact

    rows = _quarantine_rows(wd)  # one valid JSON line per bad file per entrance, naming why
    for name, reason in expected.items():
        hits = [r for r in rows if Path(r["path"]).name == name]
        assert [r["reason"] for r in hits] == ([reason, reason] if reason else []), name


def _archive_members(tmp_path: Path) -> tuple[list[tuple[str, bytes]], str]:
    buf = io.BytesIO()
    from PIL import Image

    good = []
    for i, cls in enumerate(("Coat", "Bag")):
        buf = io.BytesIO()
        Image.new("RGB", (28, 28), (40 * i, 90, 200)).save(buf, "PNG")
        good.append((f"{cls}/img {i}.png", buf.getvalue()))
    return good, str(tmp_path / "outside" / "abs-evil.png")


def _make_zip(path: Path, good: list[tuple[str, bytes]], absolute: str) -> int:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in good:
            zf.writestr(name, data)
        zf.writestr("../evil.png", good[0][1])
        zf.writestr("Coat/../../evil2.png", good[0][1])
        zf.writestr(absolute, good[0][1])
        link = zipfile.ZipInfo("Coat/link.png")
        link.external_attr = 0o120777 << 16  # a symlink member
        zf.writestr(link, "/etc/passwd")
    return 4


def _make_tar(path: Path, good: list[tuple[str, bytes]], absolute: str) -> int:
    def add(tf: tarfile.TarFile, name: str, data: bytes = b"", **kw: object) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        for k, v in kw.items():
            setattr(info, k, v)
        tf.addfile(info, io.BytesIO(data) if data else None)

    with tarfile.open(path, "w:gz") as tf:
        for name, data in good:
            add(tf, f"data/{name}", data)
        add(tf, "../evil.png", good[0][1])
        add(tf, absolute, good[0][1])
        add(tf, "data/Coat/link.png", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add(tf, "data/Coat/hard.png", type=tarfile.LNKTYPE, linkname="/etc/passwd")
        add(tf, "data/Coat/dev.png", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
    return 5


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_with_zip_slip_members_ingests_the_good_ones_and_writes_nothing_outside(
    wd: Path, tmp_path: Path, kind: str
) -> None:
    good, absolute = _archive_members(tmp_path)
    archive = tmp_path / f"incoming.{kind}"
    n_bad = (_make_zip if kind == "zip" else _make_tar)(archive, good, absolute)
    before = files_under(tmp_path, exclude=wd)

    proc = xfer("ingest", str(archive), "--dataset", "arch", "--no-push", wd=wd)

    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["accepted"] == 2 and res["quarantined"] == {"unsafe_archive_member": n_bad}
    assert files_under(tmp_path, exclude=wd) == before  # nothing written outside the work dir
    assert not Path(absolute).exists() and not (tmp_path / "evil.png").exists()
    inside = files_under(wd)
    assert not [p for p in inside if "evil" in Path(p).name or ".xfer-extract-" in p]
    assert not [p for p in inside if os.path.islink(p)]  # no link member became a link
    labels = sorted(pd.read_parquet(wd / "data" / "arch" / "manifest.parquet")["label"])
    assert labels == ["Bag", "Coat"]
    rows = [r for r in _quarantine_rows(wd) if r["reason"] == "unsafe_archive_member"]
    assert len(rows) == n_bad and all(r["path"].startswith(f"{archive}!") for r in rows)


def test_empty_class_folder_and_single_image_class_warn_but_do_not_fail(
    wd: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_corpus(src / "Many")
    write_corpus(src / "Solo", seed=2)
    for f in (src / "Solo").iterdir():
        if f.name != "good one.png":
            f.unlink()
    (src / "Empty").mkdir()
    ingested = xfer("ingest", str(src), "--dataset", "odd", "--no-push", wd=wd)
    assert ingested.returncode == 0, ingested.stderr
    assert "class folder 'Empty' is empty" in json.loads(ingested.stdout)["warnings"]

    params = yaml.safe_load((wd / "params.yaml").read_text())
    params["data"]["dataset"] = "odd"
    (tmp_path / "odd.yaml").write_text(yaml.safe_dump(params))
    prepared = xfer("prepare", "--params", str(tmp_path / "odd.yaml"), wd=wd)
    assert prepared.returncode == 0, prepared.stderr
    out = json.loads(prepared.stdout)
    assert out["classes"] == 2 and out["warnings"] == [
        "class 'Solo' has a single image: it is in train only"
    ]


def test_feedback_with_an_unknown_class_is_refused_in_one_line_before_anything_is_versioned(
    wd: Path, tmp_path: Path
) -> None:
    write_corpus(tmp_path / "fb" / "Coat")
    write_corpus(tmp_path / "fb" / "Alien", seed=3)
    proc = xfer("retrain", "--feedback", str(tmp_path / "fb"), wd=wd)
    assert_one_line_error(proc, "Alien", "not classes of the champion")
    assert not list((wd / "data").glob("feedback-*"))


def test_zero_row_windows_get_one_line_errors(wd: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_one_line_error(xfer("drift", wd=wd), "0 rows", "xfer score")
    assert_one_line_error(xfer("score", str(tmp_path / "empty"), wd=wd), "no image files")
    assert not (wd / "monitoring").exists() or not list((wd / "monitoring").rglob("*.parquet"))


def test_params_with_a_typo_or_a_string_for_a_number_get_one_line_errors(
    wd: Path, tmp_path: Path
) -> None:
    raw = yaml.safe_load((wd / "params.yaml").read_text())
    typo = {
        **raw,
        "drift": {**{k: v for k, v in raw["drift"].items() if k != "min_window"}, "min_windw": 60},
    }
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(typo))
    (tmp_path / "str.yaml").write_text(
        yaml.safe_dump({**raw, "finetune": {**raw["finetune"], "epochs": "three"}})
    )
    assert_one_line_error(
        xfer("drift", "--params", str(tmp_path / "typo.yaml"), wd=wd),
        "drift.min_windw",
        "min_window",
    )
    assert_one_line_error(
        xfer("train", "--params", str(tmp_path / "str.yaml"), wd=wd), "finetune.epochs", "int"
    )


def test_model_uris_that_do_not_exist_get_one_line_errors(wd: Path, tmp_path: Path) -> None:
    write_corpus(tmp_path / "imgs")
    img = str(tmp_path / "imgs" / "good one.png")
    assert_one_line_error(xfer("predict", "--model", "models:/nope@champion", img, wd=wd), "nope")
    assert_one_line_error(xfer("lineage", "models:/x/99", wd=wd), "99")
