"""The perception-tool registry and schemas: every entry resolves, specs are JSON, bad inputs are refused."""
import json

import numpy as np
import pytest

from vla import VLAError
from vla.models.tools import TOOLS, get_tool, list_tools, tool_class, validate


def test_every_registered_tool_has_a_complete_spec():
    assert set(TOOLS) == {"classify", "locate", "caption", "vqa", "generate"}
    for name in TOOLS:
        cls = tool_class(name)
        spec = cls.spec()
        assert spec["name"] == name
        assert spec["description"] and "\n" not in spec["description"]
        for key in ("input_schema", "output_schema"):
            assert spec[key]["type"] == "object"
            assert set(spec[key]["required"]) <= set(spec[key]["properties"])
        json.dumps(spec)
    assert [s["name"] for s in list_tools()] == sorted(TOOLS)


def test_unknown_tool_suggests_the_closest():
    with pytest.raises(VLAError, match="Did you mean 'caption'"):
        tool_class("captoin")


@pytest.mark.parametrize("inputs, message", [
    ({"image": "x.png", "labels": ["a"]}, "numpy array"),
    ({"image": np.zeros((16, 16), np.uint8), "labels": ["a"]}, "shape"),
    ({"image": np.zeros((16, 16, 3), np.float32), "labels": ["a"]}, "uint8"),
    ({"image": np.zeros((16, 16, 3), np.uint8), "labels": []}, "at least 1"),
    ({"image": np.zeros((16, 16, 3), np.uint8), "labels": ["  "]}, "empty"),
    ({"image": np.zeros((16, 16, 3), np.uint8)}, "missing required"),
    ({"image": np.zeros((16, 16, 3), np.uint8), "labels": ["a"], "extra": 1}, "unknown input"),
])
def test_classify_inputs_are_validated_before_any_model_loads(inputs, message):
    tool = get_tool("classify", weights="/nonexistent")
    with pytest.raises(VLAError, match=message):
        tool(**inputs)
    assert tool._model is None


def test_defaults_are_filled_and_empty_question_refused():
    schema = tool_class("generate").input_schema
    assert validate({"prompt": "a red block"}, schema, "generate") == {"prompt": "a red block", "seed": 0,
                                                                        "steps": 25}
    with pytest.raises(VLAError, match="empty"):
        get_tool("vqa", weights="/nonexistent")(image=np.zeros((16, 16, 3), np.uint8), question="")
