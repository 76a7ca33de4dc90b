"""params.yaml is checked on load: types, ranges and allowed values, with errors naming key, value and what fits."""

from __future__ import annotations

import ast
import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import ParamsError
from pipeline.core.params import SECTIONS, TrainParams, load_section, read_params, with_overrides

ROOT = Path(__file__).resolve().parents[1]
RAW = read_params(ROOT / "params.yaml")


def _load(section: str, **changes):
    raw = copy.deepcopy(RAW)
    raw[section].update(changes)
    return load_section(section, raw=raw)


def test_params_yaml_loads_every_section():
    assert set(RAW) == set(SECTIONS)
    for name in SECTIONS:
        assert dataclasses.is_dataclass(load_section(name, raw=RAW))


@pytest.mark.parametrize("name", [n for n in SECTIONS if n not in ("base", "labelstudio")])
def test_dataclass_defaults_are_the_values_of_params_yaml(name):
    assert SECTIONS[name]() == load_section(name, raw=RAW)


def test_labelstudio_defaults_are_the_values_of_params_yaml():
    loaded = load_section("labelstudio", raw=RAW)
    assert SECTIONS["labelstudio"](project=loaded.project) == loaded


def test_sections_are_frozen():
    params = load_section("train", raw=RAW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.epochs = 1


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "hflip", "no", 'train.hflip = "no": expected true or false'),
        ("train", "epochs", "six", 'train.epochs = "six": expected an integer >= 1'),
        ("train", "epochs", 0, "train.epochs = 0: expected an integer >= 1"),
        ("train", "epochs", 6.5, "train.epochs = 6.5: expected an integer"),
        ("train", "lr", True, "train.lr = true: expected a number > 0"),
        ("train", "lr", 0, "train.lr = 0: expected a number > 0"),
        ("train", "schedule", "step", 'train.schedule = "step": expected one of "cosine", "onecycle"'),
        ("train", "device", "gpu", "expected a string (auto, cpu, cuda or cuda:N)"),
        ("train", "class_weights", "median", 'expected a list of (a number >= 0) or "median_frequency" or null'),
        ("train", "scale_range", [1.0], "train.scale_range[1]: field required"),
        ("train", "scale_range", [2.0, 1.0], "must be [low, high] with low <= high"),
        (
            "merge",
            "method",
            "best",
            'merge.method = "best": expected one of "dawid_skene", "vote", "staple", "majority"',
        ),
        ("merge", "min_agreement", 1.5, "merge.min_agreement = 1.5: expected a number >= 0 and <= 1"),
        ("preannotate", "tasks", "some", 'expected one of "unlabeled", "all", "low_agreement"'),
        ("preannotate", "push_batch", 50, "preannotate.push_batch = 50: expected an integer >= 100"),
        ("evaluate", "threads", -1, "evaluate.threads = -1: expected an integer >= 0"),
        ("split", "fractions", {"train": 0.5}, "must name at least one split and sum to 1"),
        ("split", "fractions", {"train": "all"}, "split.fractions.train: input should be a valid number"),
        ("labelstudio", "project", 1.5, "labelstudio.project = 1.5: expected an integer or a string"),
        ("base", "ignore_index", 0, "base.ignore_index = 0: expected 255"),
        ("base", "seed", None, "base.seed = null: expected an integer"),
        (
            "base",
            "classes",
            [{"name": "a", "color": [1, 2, 300]}],
            "base.classes[0].color[2]: input should be less than",
        ),
        ("base", "classes", [{"name": "a"}, {"name": "a"}], "base.classes has duplicate names"),
        ("base", "classes", [], "base.classes is empty"),
    ],
)
def test_wrong_values_are_refused_naming_key_value_and_what_fits(section, key, value, message):
    with pytest.raises(ParamsError) as caught:
        _load(section, **{key: value})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_wrong_key_of_a_section_is_named_at_once():
    with pytest.raises(ParamsError, match=r"train.epochs = .*; train.hflip = "):
        _load("train", hflip="no", epochs="six")


def test_unknown_and_missing_keys():
    with pytest.raises(ParamsError, match=r"unknown key\(s\) \['epoch'\] in params section 'train'; valid: \["):
        _load("train", epoch=3)
    raw = copy.deepcopy(RAW)
    del raw["base"]["seed"]
    with pytest.raises(ParamsError, match="base.seed is missing: expected an integer"):
        load_section("base", raw=raw)
    with pytest.raises(ParamsError, match="params section 'merge' missing"):
        load_section("merge", raw={})


def test_absent_optional_keys_take_the_defaults():
    raw = copy.deepcopy(RAW)
    del raw["train"]["val_split"]
    assert load_section("train", raw=raw).val_split == TrainParams().val_split


def test_good_values_arrive_with_their_types():
    params = _load("train", scale_range=[1, 2], class_weights=[1, 2.5, 1, 1, 1], base_size=None)
    assert params.scale_range == (1, 2) and isinstance(params.scale_range, tuple)
    assert params.class_weights == (1.0, 2.5, 1.0, 1.0, 1.0) and params.base_size is None
    classes = [{"name": "background", "color": [0, 0, 0]}, {"name": "road", "color": [128, 64, 128]}]
    assert load_section("base", raw={**RAW, "base": {**RAW["base"], "classes": classes}}).classes[1].color == (
        128,
        64,
        128,
    )
    assert load_section("base", raw=RAW).classes == ()  # null: from the label config


def test_overrides_are_checked_like_the_file():
    params = with_overrides("train", TrainParams(), ["epochs=2", "hflip=false"])
    assert (params.epochs, params.hflip) == (2, False)
    with pytest.raises(ParamsError, match='train.hflip = "no": expected true or false'):
        with_overrides("train", TrainParams(), ["hflip='no'"])  # unquoted, YAML reads no as false


def test_broken_yaml_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError) as caught:
        read_params(path)
    assert "is not valid YAML" in str(caught.value) and "\n" not in str(caught.value)


def test_cli_turns_a_wrong_value_into_one_line_and_exit_code_1(tmp_path):
    raw = copy.deepcopy(RAW)
    raw["train"]["epochs"] = "six"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "train",
        "--images",
        "i",
        "--annotations",
        "a",
        "--labels",
        "l",
        "--splits",
        "s",
        "--models",
        "m",
        "--live",
        "v",
        "--params",
        str(params),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.strip() == 'error: train.epochs = "six": expected an integer >= 1'


def test_ignore_value_is_defined_once():
    assert load_section("base", raw=RAW).ignore_index == IGNORE_INDEX == 255
    defined = []
    for path in (ROOT / "pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value == 255:
                defined += [f"{path.relative_to(ROOT)}:{node.lineno}"]
    assert defined == ["pipeline/core/constants.py:6"]
