"""The VLA policy network: every preset (shrunk) runs forward, backward, save and load; decoding emits only
action tokens; the KV-cache decoder agrees with the teacher-forced training path; bad inputs are clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vla import VLAError
from vla.models import load_policy
from vla.models.policy.config import load_config, presets
from vla.models.policy.policy import VLAPolicy

from policy_testing import SENTENCES, STATS, TINY, batch, obs, tiny_policy

@pytest.mark.parametrize("preset", presets())
@pytest.mark.parametrize("decoding", ["parallel", "autoregressive"])
def test_preset_forward_backward_save_load(preset, decoding, tmp_path):
    policy = tiny_policy(preset, (f"model.action.decoding={decoding}",))
    policy.net.train()
    loss, metrics = policy.forward(batch(policy))
    assert torch.isfinite(loss) and set(metrics) >= {"loss", "token_acc", "action_l1"}
    loss.backward()
    grads = [p.grad for p in policy.net.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    policy.save(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {"config.json", "model.safetensors", "stats.json",
                                                                 "tokenizer"}
    loaded = load_policy(tmp_path / "ckpt")
    assert np.array_equal(policy.predict_chunk(obs()), loaded.predict_chunk(obs()))
    before = {k: v for k, v in policy.net.state_dict().items()}
    assert all(torch.equal(before[k], v) for k, v in loaded.net.state_dict().items())


@pytest.mark.parametrize("mix", ["false", "true"])
def test_mlp_bridge_ablation_feeds_every_patch_and_round_trips(tmp_path, mix):
    policy = tiny_policy(extra=("model.bridge.kind=mlp", f"model.bridge.position_mix={mix}"))
    b = batch(policy)
    ids, mask = policy.net.encode_text(b["task"], "cpu")
    embeds, _ = policy.net.prefix(b["observation.images.front"], b["observation.state"], ids, mask)
    assert embeds.shape[1] == policy.net.vision.num_tokens + 1 + ids.shape[1]          # 4 patches, not queries
    loss, _ = policy.forward(b)
    loss.backward()
    policy.save(tmp_path / "mlp")
    assert np.array_equal(load_policy(tmp_path / "mlp").predict_chunk(obs()), policy.predict_chunk(obs()))


def test_fp16_export_is_smaller_and_predicts_alike(tmp_path):
    policy = tiny_policy()
    policy.save(tmp_path / "fp32")
    policy.save(tmp_path / "fp16", dtype=torch.float16)
    size = lambda p: (p / "model.safetensors").stat().st_size  # noqa: E731
    assert size(tmp_path / "fp16") < 0.6 * size(tmp_path / "fp32")
    half = load_policy(tmp_path / "fp16")
    assert np.abs(half.predict_chunk(obs()) - policy.predict_chunk(obs())).max() <= 0.0125  # within 2 bins


@pytest.mark.parametrize("decoding", ["parallel", "autoregressive"])
def test_decoding_emits_only_allowed_action_tokens(decoding):
    policy = tiny_policy(extra=(f"model.action.decoding={decoding}", "model.action.n_bins=8"))
    net = policy.net.eval()
    with torch.no_grad():
        # large random weights in the LM head make disallowed tokens the raw argmax often
        net.llm.get_output_embeddings().weight.normal_(0, 5)
        b = batch(policy, 4)
        ids, mask = net.encode_text(b["task"], "cpu")
        embeds, pmask = net.prefix(b["observation.images.front"], b["observation.state"], ids, mask)
        local = net._decode_parallel(embeds, pmask) if decoding == "parallel" else net._decode_ar(embeds, pmask)
    allowed = net.actions.allowed_mask().repeat(policy.cfg.model.action.horizon, 1)        # (K*D, A)
    assert all(allowed[j, local[i, j]] for i in range(local.shape[0]) for j in range(local.shape[1]))
    chunk = policy.predict_chunk(obs(), decoding)
    assert set(np.unique(chunk[:, 4])) <= {0.0, 1.0}
    centres = net.actions.decode_local(torch.arange(8)[:, None].expand(8, 5)).numpy()
    for d in range(4):
        assert np.isin(chunk[:, d], centres[:, d]).all()


@pytest.mark.parametrize("trained", ["parallel", "autoregressive"])
def test_either_decoding_runs_on_a_checkpoint_of_the_other(trained):
    """`vla bench policy` times both decodings on any checkpoint; the config's own mode stays as it was."""
    policy = tiny_policy(extra=(f"model.action.decoding={trained}", "model.action.n_bins=8"))
    with torch.no_grad():
        for decoding in ("parallel", "autoregressive"):
            chunk = policy.predict_chunk(obs(), decoding)
            assert chunk.shape == (policy.cfg.model.action.horizon, 5) and np.isfinite(chunk).all()
    assert policy.cfg.model.action.decoding == trained


def test_kv_cache_decoding_matches_teacher_forced_path():
    policy = tiny_policy(extra=("model.action.decoding=autoregressive",))
    net = policy.net.eval()
    with torch.no_grad():
        b = batch(policy, 2)
        ids, mask = net.encode_text(b["task"], "cpu")
        embeds, pmask = net.prefix(b["observation.images.front"], b["observation.state"], ids, mask)
        tokens = net._decode_ar(embeds, pmask)                                            # (B, K*D) local
        hidden = net._slots_hidden(embeds, pmask, tokens + net.actions.offset)
        assert torch.equal(net.action_logits(hidden).argmax(-1), tokens)


def test_select_action_uses_chunk_queue_and_reset():
    policy = tiny_policy(extra=("model.action.horizon=4", "model.action.execute=3"))
    chunk = policy.predict_chunk(obs())
    got = [policy.select_action(obs()) for _ in range(3)]
    assert np.array_equal(np.stack(got), chunk[:3])
    assert len(policy._queue) == 0
    policy.select_action(obs())
    policy.reset()
    assert len(policy._queue) == 0
    assert got[0].shape == (5,) and got[0].dtype == np.float32


def test_action_tokens_are_appended_after_the_text_vocabulary():
    policy = tiny_policy()
    tok, acts = policy.net.tokenizer, policy.net.actions
    text_ids = tok("pick up the red block")["input_ids"]
    assert max(text_ids) < acts.offset
    assert tok.convert_ids_to_tokens(acts.offset) == "<act_0>"
    assert len(tok) == acts.offset + acts.vocab_size
    assert policy.net.llm.get_input_embeddings().num_embeddings == len(tok)
    assert tok.convert_tokens_to_ids("[UNK]") in tok("pick up the zebra")["input_ids"]


def test_action_space_mismatch_and_bad_observation_are_clear_errors():
    import gymnasium

    policy = tiny_policy()
    policy.check_action_space(gymnasium.spaces.Box(np.array(STATS["action_space"]["low"], np.float32),
                                                   np.array(STATS["action_space"]["high"], np.float32)))
    with pytest.raises(VLAError, match="7-d|shape"):
        policy.check_action_space(gymnasium.spaces.Box(-1, 1, (7,)))
    with pytest.raises(VLAError, match="bounds"):
        policy.check_action_space(gymnasium.spaces.Box(-1, 1, (5,)))
    with pytest.raises(VLAError, match="state"):
        policy.predict_chunk({**obs(), "state": np.zeros(9, np.float32)})
    with pytest.raises(VLAError, match="does not exist"):
        load_policy("/nonexistent/policy")


def test_config_errors_name_the_key():
    with pytest.raises(VLAError, match="Did you mean 'hidden_size'"):
        load_config("debug", ["model.llm.hiden_size=3"])
    with pytest.raises(VLAError, match="unknown policy preset"):
        load_config("debugg")
    with pytest.raises(VLAError, match="decoding"):
        load_config("debug", ["model.action.decoding=beam"])
    # YAML reads 2e-4 as text: numbers are converted by the field's type, anything else is named
    cfg = load_config("debug", ["train.lr=2e-4", "train.steps=1e3", "model.word_dropout=0"])
    assert (cfg.train.lr, cfg.train.steps, cfg.model.word_dropout) == (2e-4, 1000, 0.0)
    assert type(cfg.train.steps) is int and type(cfg.model.word_dropout) is float
    for item, words in (("train.lr=fast", "'train.lr' must be a number"),
                        ("train.steps=2.5", "'train.steps' must be a whole number"),
                        ("train.bf16=maybe", "'train.bf16' must be true or false"),
                        ("train.lr=nan", "'train.lr' must be a number")):
        with pytest.raises(VLAError, match=words):
            load_config("debug", [item])


def test_grounded_colour_words_embed_from_rgb_and_survive_save_load(tmp_path):
    rgb = {"red": [0.85, 0.12, 0.1], "gray": [0.5, 0.5, 0.5]}
    cfg = load_config("debug", TINY + ["model.ground_colors=true"])
    cfg.model.word_rgb = rgb
    torch.manual_seed(0)
    policy = VLAPolicy.create(cfg, STATS, SENTENCES)                 # "gray" is in no training sentence
    net = policy.net
    ids = net.tokenizer("the gray block", add_special_tokens=False)["input_ids"]
    assert net.tokenizer.unk_token_id not in ids
    with torch.no_grad():
        emb = net.embed_text(torch.tensor([ids]))[0]
        want = net.color_mlp(torch.tensor(rgb["gray"]))
        assert torch.allclose(emb[1], want) and not torch.allclose(emb[0], net.color_mlp(torch.zeros(3)))
    policy.save(tmp_path / "g")
    loaded = load_policy(tmp_path / "g")
    assert loaded.cfg.model.word_rgb == rgb
    assert np.array_equal(loaded.predict_chunk({**obs(), "instruction": "pick up the gray block"}),
                          policy.predict_chunk({**obs(), "instruction": "pick up the gray block"}))


def test_temporal_ensembling_averages_live_chunks_with_exponential_weights():
    policy = tiny_policy().configure(ensemble=0.5)
    o0, o1, o2 = obs(0), obs(1), obs(2)
    c0, c1, c2 = (policy.predict_chunk(o) for o in (o0, o1, o2))
    a0, a1, a2 = (policy.select_action(o) for o in (o0, o1, o2))
    assert np.allclose(a0, c0[0])
    w = np.exp(-0.5)
    assert np.allclose(a1[:4], (c1[0][:4] + w * c0[1][:4]) / (1 + w), atol=1e-6) and a1[4] == c1[0][4]
    assert np.allclose(a2[:4], (c2[0][:4] + w * c1[1][:4]) / (1 + w), atol=1e-6)   # c0 (horizon 2) has expired
    policy.reset()
    assert np.allclose(policy.select_action(o1), c1[0])
    for bad in (-1.0, float("nan")):
        with pytest.raises(VLAError, match="ensemble must be a finite number"):
            policy.configure(ensemble=bad)


def test_adaptive_replanning_predicts_after_each_move_and_runs_through_pauses_and_gripper_switches():
    policy = tiny_policy(extra=("model.action.horizon=4", "model.action.execute=3"))
    move = np.array([[0.02, 0.0, -0.03, 0.0, 0.0]] * 4, np.float32)
    pause = move.copy()
    pause[0, :3] = [0.004, -0.001, 0.0]                    # within pause_tol on x, y, z
    switch = move.copy()
    switch[2:, 4] = 1.0                                   # the gripper closes two steps ahead
    yaw_only = move.copy()
    yaw_only[0] = [0.0, 0.0, 0.0, 0.2, 0.0]               # turning in place is a pause of the translation
    assert [policy.actions_to_take(c) for c in (move, pause, switch, yaw_only)] == [3, 3, 3, 3]
    policy.configure(replan="adaptive")
    assert [policy.actions_to_take(c) for c in (move, pause, switch, yaw_only)] == [1, 3, 3, 3]
    calls = []
    predict = policy.predict_chunk
    policy.predict_chunk = lambda o, goal=None: calls.append(1) or predict(o, goal=goal)
    chunk = predict(obs(0))
    want = policy.actions_to_take(chunk)
    for _ in range(want):
        policy.select_action(obs(0))
    assert len(calls) == 1
    policy.select_action(obs(0))
    assert len(calls) == 2
    with pytest.raises(VLAError, match="unknown replan 'sometimes'; choose chunk or adaptive"):
        policy.configure(replan="sometimes")
    with pytest.raises(VLAError, match="unknown model.action.replan"):
        load_config("debug", ["model.action.replan=always"])
    with pytest.raises(VLAError, match="pause_dims must name action dimensions below 5"):
        load_config("debug", ["model.action.pause_dims=[0,7]"])


def test_soft_bin_targets_match_one_hot_when_narrow_and_spread_when_wide():
    hard = tiny_policy()
    b = batch(hard)
    hard.net.eval()
    ref, _ = hard.forward(b)
    narrow = tiny_policy(extra=("model.action.label_sigma=0.05",))
    narrow.net.load_state_dict(hard.net.state_dict())
    narrow.net.eval()
    assert torch.allclose(narrow.forward(b)[0], ref, atol=1e-4)
    # ordinal: predicting a neighbouring bin costs less than a far one (one-hot CE cannot tell them apart)
    wide = tiny_policy(extra=("model.action.label_sigma=2.0",)).net
    a = wide.actions
    value = a.low[0] + a.bin_width[0] * 5.5                      # the centre of bin 5 of dimension 0
    costs = []
    for predicted in (6, 12):
        logits = torch.full((1, a.vocab_size), -20.0)
        logits[0, predicted] = 0.0
        costs.append(float(wide._soft_ce(logits, value.view(1), torch.tensor([0]))))
    assert costs[0] < costs[1] - 1.0
    with pytest.raises(VLAError, match="label_sigma must be >= 0"):
        tiny_policy(extra=("model.action.label_sigma=-1",))


def test_state_dims_limit_what_the_state_token_sees():
    policy = tiny_policy(extra=("model.state_dims=[2,3,4]",))
    o = obs()
    base = policy.predict_chunk(o)
    moved_xy = dict(o, state=o["state"] + np.r_[0.3, -0.3, np.zeros(10)].astype(np.float32))
    moved_z = dict(o, state=o["state"] + np.r_[0, 0, 0.5, np.zeros(9)].astype(np.float32))
    with torch.no_grad():
        ids, mask = policy.net.encode_text([o["instruction"]], "cpu")
        img = torch.as_tensor(o["front"])[None]
        e = [policy.net.prefix(img, torch.as_tensor(x["state"])[None], ids, mask)[0] for x in (o, moved_xy, moved_z)]
    assert torch.equal(e[0], e[1]) and not torch.equal(e[0], e[2])
    assert np.array_equal(base, policy.predict_chunk(moved_xy))
    with pytest.raises(VLAError, match="state_dims must be indices"):
        tiny_policy(extra=("model.state_dims=[2,12]",))
