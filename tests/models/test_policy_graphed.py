"""The static-shape chunk runner that CUDA graphs replay: on a CPU it runs eagerly and must decode exactly what
the policy's own parallel decoding does (dense causal mask, sync-free colour slots, the goal pointer's goal)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vla import VLAError
from vla.models.policy.graphed import GraphedChunk
from vla.models.policy.policy import load_policy

TEXTS = ["put the red block in the green bowl", "pick up the small blue cylinder left of the yellow bowl"]


def _inputs(seed: int = 0):
    g = np.random.default_rng(seed)
    images = torch.as_tensor(g.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8))
    state = torch.as_tensor(g.normal(0, 0.1, (2, 12)).astype(np.float32))
    return images, state


def test_static_runner_decodes_what_the_policy_decodes(one_thread):
    policy = load_policy("default")
    net = policy.net
    assert net.goal_pointer is not None and net.cfg.ground_color_maps > 0     # both paths are exercised
    longest = int(net.encode_text(TEXTS, "cpu")[0].shape[1])
    runner = GraphedChunk(net, batch=2, text_tokens=longest)
    assert runner.graph is None                                                 # no CUDA here: eager
    for seed in range(2):
        images, state = _inputs(seed)
        want = net.predict_chunk(images, state, TEXTS)
        got = runner(images, state, TEXTS)
        assert got.shape == want.shape == (2, net.cfg.action.horizon, net.cfg.action.dim)
        assert torch.equal(got, want)
    # a given goal reaches the grounding token as predict_chunk's does
    goal = torch.tensor([[0.55, 0.1], [0.45, -0.1]])
    assert torch.equal(runner(images, state, TEXTS, goal=goal), net.predict_chunk(images, state, TEXTS, goal=goal))


def test_static_runner_checks_its_shapes_and_decoding(one_thread):
    policy = load_policy("default")
    runner = GraphedChunk(policy.net, batch=1)
    images, state = _inputs()
    assert runner.text_tokens == policy.cfg.model.max_text_tokens
    assert runner(images[:1], state[:1], TEXTS[:1]).shape[0] == 1            # padded to max_text_tokens
    with pytest.raises(VLAError, match="captured for batch 1"):
        runner(images, state, TEXTS)
    with pytest.raises(VLAError, match="images of shape"):
        runner(images[:1, :64], state[:1], TEXTS[:1])
    policy.configure(decoding="autoregressive")
    with pytest.raises(VLAError, match="parallel decoding only"):
        GraphedChunk(policy.net)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_replays_the_eager_decoding():
    net = load_policy("default", device="cuda").net
    longest = int(net.encode_text(TEXTS, "cpu")[0].shape[1])
    runner = GraphedChunk(net, batch=2, text_tokens=longest, bf16=False)
    assert runner.graph is not None
    same = []
    for seed in range(4):
        images, state = _inputs(seed)
        want = net.predict_chunk(images.cuda(), state.cuda(), TEXTS)
        got = runner(images, state, TEXTS)                      # inputs copied into the graph's buffers
        assert got.device.type == "cuda" and got.shape == want.shape
        same.append((got == want).float().mean().item())
    # the same fp32 arithmetic up to attention-kernel choice: a rare argmax tie may flip, nothing more
    assert min(same) >= 0.9, same
    first = runner(*_inputs(0), TEXTS)
    assert torch.equal(runner(*_inputs(0), TEXTS), first)      # replays are deterministic
