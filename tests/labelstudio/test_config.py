"""The label config as the source of truth: LS's own templates, overrides, and mismatches named."""

from __future__ import annotations

import pytest

from pipeline.core.errors import ConfigError
from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams
from pipeline.labelstudio.config import brush_target, dataset_spec, read_label_config

# Label Studio's templates, as its "Semantic Segmentation with Masks / with Polygons" ship them.
MASKS_TEMPLATE = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image">
    <Label value="Airplane" background="rgba(255, 0, 0, 0.7)"/>
    <Label value="Car" background="rgba(0, 0, 255, 0.7)"/>
  </BrushLabels>
</View>"""
POLYGONS_TEMPLATE = """<View>
  <Header value="Select label and click the image to start"/>
  <Image name="image" value="$image" zoom="true"/>
  <PolygonLabels name="label" toName="image" strokeWidth="3" pointSize="small" opacity="0.9">
    <Label value="Airplane" background="red"/>
    <Label value="Car" background="blue"/>
  </PolygonLabels>
</View>"""
MULTI_TOOL = """<View>
  <Image name="img" value="$picture"/>
  <Image name="second" value="$other"/>
  <Labels name="labels" toName="img">
    <Label value="Planet" background="#00ff00"/><Label value="Moon" alias="moon"/>
  </Labels>
  <Brush name="brush" toName="img"/><Polygon name="poly" toName="img"/><Rectangle name="rect" toName="img"/>
  <Ellipse name="ell" toName="img"/><MagicWand name="wand" toName="img"/>
  <KeyPointLabels name="kp" toName="img"><Label value="Star"/></KeyPointLabels>
  <Choices name="weather" toName="img"><Choice value="clear"/></Choices>
  <PolygonLabels name="other_poly" toName="second"><Label value="Comet"/></PolygonLabels>
</View>"""
BASE = BaseParams(seed=0, ignore_index=255)
DEFAULT = LabelStudioParams(project=1)


def test_templates_need_no_params_but_the_project():
    for xml, control in ((MASKS_TEMPLATE, "tag"), (POLYGONS_TEMPLATE, "label")):
        spec = dataset_spec(xml, BASE, DEFAULT, unpainted=None)
        assert (spec.image_tag, spec.data_key, spec.control_tags, spec.value_list) == (
            "image",
            "image",
            (control,),
            False,
        )
        assert [(c.name, c.color) for c in spec.classes] == [("Airplane", (255, 0, 0)), ("Car", (0, 0, 255))]


def test_the_unpainted_class_is_added_first_when_the_config_lacks_it():
    spec = dataset_spec(MASKS_TEMPLATE, BASE, DEFAULT, unpainted="background")
    assert spec.names == ["background", "Airplane", "Car"] and spec.classes[0].color == (0, 0, 0)


def test_labels_and_tools_are_read_with_kinds_objects_and_aliases():
    config = read_label_config(MULTI_TOOL)
    assert config.images["img"].data_key == "picture" and config.images["second"].data_key == "other"
    kinds = {name: control.kind for name, control in config.controls.items()}
    assert kinds == {
        "labels": "labels",
        "brush": "tool",
        "poly": "tool",
        "rect": "tool",
        "ell": "tool",
        "wand": "tool",
        "kp": "ignored",
        "weather": "ignored",
        "other_poly": "labelled",
    }
    assert config.controls["labels"].labels == ("Planet", "moon")  # the alias is what results store
    spec = dataset_spec(MULTI_TOOL, BASE, LabelStudioParams(project=1, image_tag="img"), unpainted=None)
    assert spec.control_tags == ("labels", "brush", "poly", "rect", "ell", "wand")
    assert spec.names == ["Planet", "moon"] and spec.classes[0].color == (0, 255, 0)


def test_several_images_need_the_image_tag_and_name_the_candidates():
    with pytest.raises(ConfigError, match=r"several <Image> tags.*'img', 'second'.*labelstudio.image_tag"):
        dataset_spec(MULTI_TOOL, BASE, DEFAULT, unpainted=None)


def test_params_override_and_mismatches_name_both_sides():
    classes = (ClassInfo("Car", (1, 2, 3)), ClassInfo("Airplane", (4, 5, 6)), ClassInfo("sky", (7, 8, 9)))
    spec = dataset_spec(MASKS_TEMPLATE, BaseParams(0, 255, classes), DEFAULT, unpainted=None)
    assert spec.names == ["Car", "Airplane", "sky"]  # params order wins, extra classes allowed
    with pytest.raises(ConfigError, match=r"labels \['Airplane'\] of <BrushLabels name='tag'>.*base.classes \['Car'\]"):
        dataset_spec(MASKS_TEMPLATE, BaseParams(0, 255, classes[:1]), DEFAULT, unpainted=None)
    with pytest.raises(ConfigError, match=r"image_tag is 'picture'.*<Image> tags are \['image'\]"):
        dataset_spec(MASKS_TEMPLATE, BASE, LabelStudioParams(project=1, image_tag="picture"), unpainted=None)
    with pytest.raises(ConfigError, match=r"control_tags names 'brush'.*not in the label config.*\['tag'\]"):
        dataset_spec(MASKS_TEMPLATE, BASE, LabelStudioParams(project=1, control_tags=("brush",)), unpainted=None)
    with pytest.raises(ConfigError, match=r"'kp', which is a <KeyPointLabels>"):
        dataset_spec(
            MULTI_TOOL, BASE, LabelStudioParams(project=1, image_tag="img", control_tags=("kp",)), unpainted=None
        )


def test_no_config_means_params_must_say_it_all():
    with pytest.raises(ConfigError, match="no label config.*base.classes must be set"):
        dataset_spec(None, BASE, DEFAULT, unpainted=None)
    spec = dataset_spec(None, BaseParams(0, 255, (ClassInfo("Car", (1, 2, 3)),)), DEFAULT, unpainted=None)
    assert (spec.names, spec.image_tag, spec.data_key, spec.control_tags) == (["Car"], None, "image", ())
    with pytest.raises(ConfigError, match="cannot be read"):
        dataset_spec("<View><Image", BASE, DEFAULT, unpainted=None)


def test_predictions_go_to_the_configs_brush_tag():
    target = brush_target(MASKS_TEMPLATE, None, None)
    assert (target.from_name, target.to_name, target.labels) == ("tag", "image", ("Airplane", "Car"))
    with pytest.raises(ConfigError, match=r"<BrushLabels> of 'image' are \[\]"):
        brush_target(POLYGONS_TEMPLATE, None, None)
