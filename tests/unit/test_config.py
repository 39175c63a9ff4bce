"""params.yaml strictness: unknown keys, wrong types and bad ranges fail at load, clearly."""

from pathlib import Path

import pytest
import yaml

from xferlib.config import ConfigError, Params, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[2]


def test_repo_params_yaml_loads_and_matches_the_template() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.model.backbone == "efficientnet_lite0"
    assert (ROOT / "params.yaml").read_text() == (
        ROOT / "xferlib/templates/params.yaml"
    ).read_text()
    assert (ROOT / "dvc.yaml").read_text() == (ROOT / "xferlib/templates/dvc.yaml").read_text()


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_params(tmp_path / "nope.yaml") == Params()


def test_unknown_key_is_rejected_with_the_valid_keys_listed() -> None:
    with pytest.raises(ConfigError, match=r"unknown key finetune\.lr_hed.*lr_head"):
        params_from_dict({"finetune": {"lr_hed": 0.1}})


def test_unknown_section_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown params section 'finetuning'.*finetune"):
        params_from_dict({"finetuning": {}})


def test_string_where_a_number_belongs_names_the_yaml_pitfall(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("finetune:\n  lr_head: 1e-3\n")  # PyYAML reads this as a string
    with pytest.raises(ConfigError, match=r"finetune\.lr_head='1e-3'.*1\.0e-3"):
        load_params(f)


def test_bool_is_not_an_int() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        params_from_dict({"finetune": {"epochs": True}})


def test_out_of_range_names_the_valid_range() -> None:
    with pytest.raises(
        ConfigError, match=r"drift\.alpha=0\.9 is out of range; valid: \(0\.0, 0\.5\]"
    ):
        params_from_dict({"drift": {"alpha": 0.9}})


def test_literal_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="'linear_probe'"):
        params_from_dict({"finetune": {"strategy": "fine"}})


def test_int_is_accepted_for_a_float_and_stored_as_float() -> None:
    p = params_from_dict({"finetune": {"lr_head": 1}})
    assert isinstance(p.finetune.lr_head, float)


def test_params_are_frozen_and_replace_is_checked() -> None:
    p = Params()
    with pytest.raises(AttributeError):
        p.finetune.epochs = 3  # type: ignore[misc]
    q = p.replace(finetune={"epochs": 3})
    assert q.finetune.epochs == 3 and p.finetune.epochs != 3
    with pytest.raises(ConfigError):
        p.replace(finetune={"epochs": 0})


def test_flat_has_dotted_keys_for_every_field() -> None:
    flat = Params().flat()
    assert flat["finetune.lr_head"] == Params().finetune.lr_head
    assert len(flat) == sum(len(v) for v in Params().to_dict().values())


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("finetune: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load_params(f)
    assert "\n" not in str(exc.value)


def test_yaml_round_trip_of_defaults() -> None:
    assert params_from_dict(yaml.safe_load(yaml.safe_dump(Params().to_dict()))) == Params()


def test_permutations_too_few_for_alpha_over_the_test_families_names_the_minimum() -> None:
    with pytest.raises(ConfigError) as err:
        params_from_dict({"drift": {"alpha": 0.01, "permutations": 200}})
    assert str(err.value) == (
        "drift.permutations=200 cannot reach alpha/F=0.0025 (alpha 0.01 over 4 test families): "
        "use at least 399"
    )
    assert (
        params_from_dict({"drift": {"alpha": 0.01, "permutations": 399}}).drift.permutations == 399
    )


def test_gate_defaults_reject_ties_and_floor_a_first_version() -> None:
    reg = Params().registry
    assert reg.min_improvement == 0.01 and reg.min_accuracy == 0.5
    assert load_params(ROOT / "params.yaml").registry == reg


@pytest.mark.parametrize(
    ("key", "bad"), [("min_accuracy", 1.5), ("min_accuracy", -0.1), ("min_improvement", -0.01)]
)
def test_gate_thresholds_are_validated(key: str, bad: float) -> None:
    with pytest.raises(ConfigError, match=rf"registry\.{key}={bad!r} is out of range"):
        params_from_dict({"registry": {key: bad}})


def test_a_removed_key_says_what_replaced_it(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("registry:\n  pytorch_flavor: true\n")
    with pytest.raises(ConfigError, match=r"registry\.pytorch_flavor was removed: .*pyfunc"):
        load_params(path)
