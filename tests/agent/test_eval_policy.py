"""Policy evaluation end to end on the real env: a tiny policy trained on a tiny collected dataset is rolled
out for 2 episodes; eval_info.json follows LeRobot's schema, videos exist, and `vla eval --json` reports it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vla import VLAError
from vla.agent.cli import main
from vla.agent.data.collect import CollectConfig, collect_episodes
from vla.agent.eval.evaluate import evaluate, resolve_tasks
from vla.agent.train.data import load_training_data
from vla.agent.train.loop import train_policy
from vla.models.policy.config import load_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A debug policy trained 2 steps on 2 collected `reach` episodes, through the real loaders."""
    root = tmp_path_factory.mktemp("eval")
    collect_episodes(root / "data", CollectConfig(tasks=("reach",), split="seen", episodes=2, image_size=(64, 64)))
    cfg = load_config("debug", ["train.steps=2", "train.batch_size=4"])
    data = load_training_data(root / "data", cfg.model.action.horizon, progress=False)
    assert data.images.shape[1:] == (64, 64, 3) and data.action.shape[1:] == (2, 5)
    assert data.stats["action_space"]["high"][3] == pytest.approx(0.3)
    ckpt = train_policy(cfg, data, root / "run", progress=False)
    return root, ckpt


def test_eval_two_episodes_writes_valid_eval_info(trained):
    root, ckpt = trained
    out = root / "out"
    summary = evaluate(str(ckpt), ["reach"], "seen", episodes=2, out=out, videos=1, progress=False)
    info = json.loads((out / "seen" / "reach" / "eval_info.json").read_text())
    assert [e["episode_ix"] for e in info["per_episode"]] == [0, 1]
    assert all(isinstance(e["success"], bool) and isinstance(e["seed"], int) for e in info["per_episode"])
    assert info["per_episode"][0]["seed"] != info["per_episode"][1]["seed"]
    pc = 100.0 * sum(e["success"] for e in info["per_episode"]) / 2
    assert info["aggregated"]["pc_success"] == pc == summary["per_task"]["reach"]
    kinds = {e["reference"] for e in info["per_episode"]}
    assert kinds <= {"plain", "size", "relation"} and set(summary["per_reference"]) == kinds
    assert sum(summary["per_reference"].values()) >= pc            # each kind's rate is of its own episodes
    video = out / "seen" / "reach" / "videos" / "eval_episode_0.mp4"
    assert len(info["video_paths"]) == 1 and video.stat().st_size > 0


def test_vla_eval_json_last_line(trained, capsys):
    root, ckpt = trained
    code = main(["eval", "--policy", str(ckpt), "--task", "reach", "--split", "unseen_phrasings",
                 "--episodes", "1", "--videos", "0", "--out", str(root / "cli"), "--json"])
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last) == {"policy", "split", "episodes", "pc_success", "per_task", "per_reference",
                         "actions_per_prediction"}
    assert 1.0 < last["actions_per_prediction"] <= 2.0        # debug: chunks of 2, an episode may end mid-chunk
    assert last["split"] == "unseen_phrasings" and list(last["per_task"]) == ["reach"]


def test_eval_bad_input_is_one_clear_error(trained, capsys):
    _, ckpt = trained
    with pytest.raises(VLAError, match="Did you mean 'pick'"):
        resolve_tasks("pickk")
    assert main(["eval", "--policy", "/no/such/policy", "--task", "reach", "--episodes", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", "--policy", str(ckpt), "--split", "unseen", "--episodes", "1"]) == 2
    assert main(["eval", "--policy", str(ckpt), "--task", "push", "--episodes", "1", "--push-end", "on"]) == 2
    assert "push_end needs a policy with an attached goal pointer" in capsys.readouterr().err


def test_eval_can_override_decoding_and_execution(trained, capsys):
    root, ckpt = trained
    code = main(["eval", "--policy", str(ckpt), "--task", "reach", "--episodes", "1", "--videos", "0",
                 "--decoding", "autoregressive", "--execute", "1", "--out", str(root / "ar"), "--json"])
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["settings"] == {"decoding": "autoregressive", "execute": 1, "ensemble": None, "goal": None,
                                "replan": None, "commands": None, "hold": None, "push_end": None}
    assert last["actions_per_prediction"] == 1.0
    info = json.loads((root / "ar" / "seen" / "reach" / "eval_info.json").read_text())
    assert len(info["per_episode"]) == 1 and info["per_episode"][0]["predictions"] == info["per_episode"][0]["steps"]
    code = main(["eval", "--policy", str(ckpt), "--task", "reach", "--episodes", "1", "--videos", "0",
                 "--replan", "adaptive", "--out", str(root / "ad"), "--json"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and last["settings"]["replan"] == "adaptive" and 1.0 <= last["actions_per_prediction"] <= 2.0
    assert main(["eval", "--policy", str(ckpt), "--task", "reach", "--episodes", "1", "--execute", "9"]) == 2
    assert "execute must be between 1 and the chunk length 2" in capsys.readouterr().err


def test_eval_of_a_chain_one_command_at_a_time_records_the_commands_and_lifts(trained, capsys):
    root, ckpt = trained
    code = main(["eval", "--policy", str(ckpt), "--task", "chain", "--episodes", "1", "--videos", "0",
                 "--commands", "steps", "--hold", "on", "--out", str(root / "steps"), "--json"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and last["settings"]["commands"] == "steps" and last["settings"]["hold"] is True
    episode = json.loads((root / "steps" / "seen" / "chain" / "eval_info.json").read_text())["per_episode"][0]
    assert len(episode["commands"]) == 2 and " then " not in episode["commands"][0]
    assert len(episode["commands_done"]) <= 1 and episode["home_steps"] >= 0 and episode["lifts"] >= 0
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--policy", str(ckpt), "--task", "chain", "--episodes", "1", "--commands", "all"])
    assert exit_.value.code == 2 and "invalid choice: 'all'" in capsys.readouterr().err


def test_train_cli_stops_early_resumes_and_uses_oracle_labels(trained, capsys):
    root, _ = trained
    args = ["train", "policy", "--config", "debug", f"data.root={root / 'data'}", "train.steps=4",
            "train.save_every=2", "model.aux_waypoint=1.0", "model.grounding=true", "data.label_workers=1",
            "--out", str(root / "cli-run"), "--json"]
    assert main([*args, "--stop-at", "2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 4
    header = (root / "cli-run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"goal_err_cm", "ground_acc"} <= set(header)
    assert (root / "data" / "meta" / "vla_oracle_labels.npz").is_file()
    assert main([*args, "--stop-at", "0"]) == 2
    assert "--stop-at must be a positive step" in capsys.readouterr().err


def test_eval_offline_scores_held_out_frames_and_the_camera_reliance(trained, capsys):
    root, ckpt = trained
    assert main(["eval", "offline", "--policy", str(ckpt), "--data", str(root / "data"), "--frames", "12",
                 "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["frames"] == 12 and set(last) >= {"plain", "images_shuffled", "policy", "data"}
    for part in ("plain", "images_shuffled"):
        assert {"loss", "token_acc", "action_l1"} <= set(last[part]) and 0 <= last[part]["token_acc"] <= 1
    assert main(["eval", "offline", "--policy", str(ckpt), "--data", str(root / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_oracle_goal_diagnostic_needs_a_goal_token_and_feeds_the_experts_goal(trained, capsys):
    from vla.agent.eval.rollout import _oracle_goal
    from vla.envs import make_env
    from vla.models.policy.policy import load_policy

    _, ckpt = trained
    assert main(["eval", "--policy", str(ckpt), "--task", "reach", "--episodes", "1", "--goal", "oracle"]) == 2
    assert "needs a policy whose grounding token carries a goal" in capsys.readouterr().err
    env = make_env("pick", "seen", image_size=64)
    obs, _ = env.reset(seed=5)
    target = env.unwrapped.goal.target.oid
    position = np.array(env.unwrapped.world.position(target)[:2])
    goal = _oracle_goal(env)
    env.close()
    assert np.linalg.norm(goal - position) < 0.01                  # the expert heads for the named object
    policy = load_policy("default").configure(goal="given")
    with pytest.raises(VLAError, match="pass a goal"):
        policy.select_action(obs | {"front": np.zeros((128, 128, 3), np.uint8)})
