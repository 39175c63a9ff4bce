"""`xfer labels import`: every bad labels file and row ends quarantined with a reason (nothing
lost), counts are printed, and the accepted labels become a DVC-versioned ImageFolder of a real
git + DVC work directory, the incident moving to labels_arriving with per-class counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xferlib.cli import main
from xferlib.labels.importer import check_rows, read_labels
from xferlib.labels.incidents import IncidentStore
from xferlib.stages import labels
from xferlib.workdir import Workdir

IDS = [f"img{i}" for i in range(6)]


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _quarantined(wd: Path) -> list[dict]:
    log = wd / "quarantine" / "labels.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_csv_with_every_kind_of_bad_row_quarantines_each_with_its_reason(
    waiting: tuple[Path, str], tmp_path: Path
) -> None:
    wd, inc_id = waiting
    rows = [
        "image_id,label",
        "img0,Coat",  # accepted
        "img1,Bag",  # accepted
        "img2,Sneaker",  # accepted, and its repeat below is a duplicate
        "img2,Sneaker",
        "img3,Coat",  # img3 labelled twice, differently: both held back
        "img3,Shirt",
        "nope,Coat",  # unknown image
        "img4,Spaceship",  # unknown class
        "img5",  # malformed: one field
        ",Coat",  # malformed: blank id
    ]
    result = labels.import_labels(wd, _write(tmp_path, "l.csv", "\n".join(rows) + "\n"), inc_id)
    assert result.accepted == 3 and result.rows == 10  # every row counted: nothing lost
    assert result.quarantined == {
        "conflicting_labels": 2, "duplicate": 1, "malformed_row": 2, "unknown_class": 1,
        "unknown_image": 1,
    }  # fmt: skip
    assert (
        result.labels == {"Bag": 1, "Coat": 1, "Sneaker": 1} and result.state == "labels_arriving"
    )
    dataset = Workdir(wd).labels(inc_id) / "dataset"
    assert sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*.png")) == [
        "Bag/img1.png", "Coat/img0.png", "Sneaker/img2.png",
    ]  # fmt: skip
    assert (dataset.parent / "dataset.dvc").exists() and result.data_version.startswith("md5:")
    bad = _quarantined(wd)
    assert len(bad) == 7 and {b["data_version"] for b in bad} == {result.data_version}
    assert {b["raw"] for b in bad} >= {"img3,Shirt", "nope,Coat", "img5"}  # the row as given
    inc = IncidentStore(Workdir(wd).incidents).get(inc_id)
    assert inc.label_data_version == result.data_version and inc.labels == result.labels
    assert [t["state"] for t in inc.timeline][-1] == "labels_arriving"


def test_a_later_file_that_contradicts_or_repeats_earlier_labels_is_held_back(
    waiting: tuple[Path, str], tmp_path: Path
) -> None:
    wd, inc_id = waiting
    first = labels.import_labels(
        wd, _write(tmp_path, "a.csv", "image_id,label\nimg0,Coat\n"), inc_id
    )
    later = "image_id,label\nimg0,Shirt\nimg1,Bag\n"
    second = labels.import_labels(wd, _write(tmp_path, "b.csv", later), inc_id)
    assert second.accepted == 1 and second.quarantined == {"conflicting_labels": 1}
    assert second.labels == {"Bag": 1, "Coat": 1} and second.data_version != first.data_version
    (why,) = [b["detail"] for b in _quarantined(wd)]
    assert "earlier import accepted 'Coat'" in why
    third = labels.import_labels(
        wd, _write(tmp_path, "c.csv", "image_id,label\nimg1,Bag\n"), inc_id
    )
    assert third.quarantined == {"duplicate": 1} and third.data_version == second.data_version
    imports = sorted(p.name for p in (Workdir(wd).labels(inc_id) / "imports").iterdir())
    assert len(imports) == 3  # each file as given is kept


def test_a_label_studio_export_is_read_task_by_task(
    waiting: tuple[Path, str], tmp_path: Path
) -> None:
    wd, inc_id = waiting

    def task(image_id: str, *choices: str, cancelled: bool = False) -> dict:
        anns = [
            {"was_cancelled": cancelled, "result": [{"type": "choices", "value": {"choices": [c]}}]}
            for c in choices
        ]
        return {"id": 1, "data": {"image": f"/data/local-files/?d=images/{image_id}.png",
                                  "image_id": image_id}, "annotations": anns}  # fmt: skip

    export = [
        task("img0", "Coat"),
        task("img1", "Bag", "Bag"),  # two annotators agree
        task("img2", "Coat", "Shirt"),  # two annotators disagree
        task("img3"),  # nobody labelled it
        task("img4", "Coat", cancelled=True),
        {
            "data": {"image": "/data/local-files/?d=images/img5.png"},  # id from the image name
            "annotations": [{"result": [{"value": {"choices": ["Sandal"]}}]}],
        },  # fmt: skip
        "not a task",
    ]
    result = labels.import_labels(wd, _write(tmp_path, "export.json", json.dumps(export)), inc_id)
    assert result.accepted == 3 and result.labels == {"Bag": 1, "Coat": 1, "Sandal": 1}
    assert result.quarantined == {"conflicting_labels": 1, "malformed_row": 1, "no_annotation": 2}
    assert result.rows == len(export)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "is empty"),
        ("   \n", "is empty"),
        ("image_id,label\n", "holds no rows"),
        ("[]", "holds no rows"),
        ('[{"data": ', "not valid JSON (line 1"),
        ('{"data": {}}', "not a list of Label Studio tasks"),
        ("id;class\na;b\n", "not image_id and label"),
        ("image_id,path\nimg0,/x.png\n", "not image_id and label"),  # the request CSV itself
        (b"\x89PNG\r\n\x1a\n\xff\xfe\x00", "not UTF-8 text"),
    ],
)
def test_a_file_that_cannot_be_read_is_a_one_line_error_and_is_kept(
    waiting: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | bytes,
    words: str,
) -> None:
    wd, inc_id = waiting
    bad = _write(tmp_path, "labels.txt", content)
    rc = main(["labels", "import", str(bad), "--workdir", str(wd), "--incident", inc_id])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and words in err, err
    assert "Label Studio" in err and "image_id,label" in err  # the fix
    (record,) = _quarantined(wd)
    assert (
        record["reason"] == "unreadable_file"
        and Path(record["copy"]).read_bytes() == bad.read_bytes()
    )
    assert IncidentStore(Workdir(wd).incidents).get(inc_id).state == "labels_requested"


def test_a_missing_file_or_no_waiting_incident_is_a_one_line_error(
    waiting: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wd, inc_id = waiting
    assert main(["labels", "import", str(tmp_path / "gone.csv"), "--workdir", str(wd)]) == 2
    assert "does not exist" in capsys.readouterr().err
    IncidentStore(Workdir(wd).incidents).transition(inc_id, "closed")
    ok = _write(tmp_path, "ok.csv", "image_id,label\nimg0,Coat\n")
    assert main(["labels", "import", str(ok), "--workdir", str(wd)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no incident" in err and "--incident" in err
    assert main(["labels", "import", str(ok), "--workdir", str(wd), "--incident", inc_id]) == 2
    assert "is closed, not waiting for labels" in capsys.readouterr().err


def test_counts_are_printed_and_json_is_one_object(
    waiting: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wd, _ = waiting  # the only active incident: no --incident needed
    f = _write(tmp_path, "l.csv", "image_id,label\nimg0,Coat\nnope,Coat\n")
    assert main(["labels", "import", str(f), "--workdir", str(wd), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accepted"] == 1 and out["quarantined"] == {"unknown_image": 1}
    assert main(["incidents", "--workdir", str(wd), "--json"]) == 0
    (inc,) = json.loads(capsys.readouterr().out)["incidents"]
    assert inc["state"] == "labels_arriving" and inc["labels"] == {"Coat": 1}


def test_rows_are_checked_against_request_classes_and_earlier_labels() -> None:
    """The pure check, without files: what each reason means."""
    from xferlib.labels.importer import LabelRow

    rows = [(LabelRow(i, iid, lab), f"{iid},{lab}") for i, (iid, lab) in enumerate(
        [("a", "x"), ("b", "y"), ("b", "y"), ("c", "z"), ("d", "x"), ("e", "x"), ("e", "y")], 1
    )]  # fmt: skip
    accepted, bad = check_rows(rows, {"a", "b", "d", "e"}, {"x", "y"}, {"d": "y"})
    assert [(r.image_id, r.label) for r in accepted] == [("a", "x"), ("b", "y")]
    assert [(r.image_id, r.reason) for r in bad] == [
        ("b", "duplicate"), ("c", "unknown_image"), ("d", "conflicting_labels"),
        ("e", "conflicting_labels"), ("e", "conflicting_labels"),
    ]  # fmt: skip
    assert read_labels  # the reader is tested through files above
