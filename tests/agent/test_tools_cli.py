"""`vla tools ...` end to end on a rendered scene, with tiny checkpoints of every tool saved in a fixture;
bad input exits 2 with one `error:` line."""
import json

import numpy as np
import pytest
import torch

from vla.agent.cli import main
from vla.agent.perception.runs import load_run
from vla.models.clip import ClipConfig, new_clip
from vla.models.diffusion import new_diffusion
from vla.models.vlm import new_vlm

WORDS = ["a small red block in a green bowl", "what colour is the bowl? green", "describe the scene ."]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tools")
    clip = new_clip(ClipConfig(embed_dim=16, image_size=32, patch_size=8, vision_width=32, vision_layers=1,
                               head_width=16, text_width=16, text_layers=1, text_heads=2, context_length=12), WORDS)
    clip.save(root / "clip")
    new_vlm(load_run("vlm", "debug").model, WORDS).save(root / "vlm")
    new_diffusion(load_run("diffusion", "debug").model, clip).save(root / "diffusion")
    return {name: str(root / name) for name in ("clip", "vlm", "diffusion")}


def _json(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_every_action_on_a_rendered_scene(weights, capsys, tmp_path):
    out = _json(capsys, ["tools", "classify", "--scene", "place:3", "--labels", "red block,blue bowl",
                         "--weights", weights["clip"], "--json"])
    assert set(out["probs"]) == {"red block", "blue bowl"} and abs(sum(out["probs"].values()) - 1) < 1e-4
    out = _json(capsys, ["tools", "locate", "--scene", "place:3", "the red block", "--weights", weights["clip"],
                         "--json"])
    assert len(out["box"]) == 4 and np.array(out["heatmap"]).shape == (4, 4)
    out = _json(capsys, ["tools", "caption", "--scene", "place:3", "--weights", weights["vlm"], "--json"])
    assert isinstance(out["caption"], str)
    out = _json(capsys, ["tools", "vqa", "--scene", "place:3", "what colour is the bowl?", "--weights",
                         weights["vlm"], "--json"])
    assert isinstance(out["answer"], str)
    png = tmp_path / "g.png"
    out = _json(capsys, ["tools", "generate", "a red block", "--weights", weights["diffusion"], "--steps", "2",
                         "--out", str(png), "--json"])
    assert png.is_file() and out["height"] == 16
    out = _json(capsys, ["tools", "list", "--json"])
    assert [t["name"] for t in out["tools"]] == ["caption", "classify", "generate", "locate", "vqa"]


def test_image_files_are_read(weights, capsys, tmp_path):
    import cv2

    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), np.full((40, 40, 3), 128, np.uint8))
    out = _json(capsys, ["tools", "classify", str(path), "--labels", "a,b", "--weights", weights["clip"], "--json"])
    assert set(out["probs"]) == {"a", "b"}
    out = _json(capsys, ["tools", "locate", str(path), "the red block", "--weights", weights["clip"], "--json"])
    assert 0 <= out["center"][0] < 40
    out = _json(capsys, ["tools", "vqa", str(path), "what colour is the bowl?", "--weights", weights["vlm"], "--json"])
    assert isinstance(out["answer"], str)


@pytest.mark.parametrize("argv, message", [
    (["tools", "classify", "{notimage}", "--labels", "a"], "not a readable image"),
    (["tools", "classify", "--scene", "place:3", "--labels", " , "], "--labels is empty"),
    (["tools", "vqa", "--scene", "place:3", "  "], "non-empty question"),
    (["tools", "generate", "red " * 40, "--steps", "1"], "at most 11"),
    (["tools", "caption", "--scene", "place:3", "--weights", "{clip}"], "for the 'clip' tool, not for 'vlm'"),
    (["tools", "caption", "--scene", "place"], "TASK:SEED"),
    (["tools", "caption", "missing.png"], "does not exist"),
])
def test_bad_input_is_one_clear_error(weights, capsys, tmp_path, argv, message):
    bad = tmp_path / "notimage.png"
    bad.write_text("hello")
    argv = [a.format(notimage=bad, clip=weights["clip"]) for a in argv]
    if "--weights" not in argv:
        tool = {"classify": "clip", "vqa": "vlm", "caption": "vlm", "generate": "diffusion"}[argv[1]]
        argv += ["--weights", weights[tool]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1] and "Traceback" not in "".join(err)


def test_eval_tools_refuses_a_negative_image_count(capsys):
    assert main(["eval", "tools", "--diffusion-images", "-1"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: --diffusion-images must be 0 or more, got -1."
