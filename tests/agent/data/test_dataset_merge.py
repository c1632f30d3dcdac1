"""`vla dataset merge`: episodes, tasks and extras of both sources, renumbered, in one new dataset."""
from __future__ import annotations

import json

import numpy as np
from synth_episodes import features, synth_episode

from vla.agent.cli import main
from vla.agent.data.dataset import LeRobotDataset
from vla.agent.data.writer import DatasetWriter


def test_merge_concatenates_and_renumbers(tmp_path, capsys):
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "merged"
    DatasetWriter(a, features(), fps=10).commit([synth_episode(s) for s in range(2)])
    DatasetWriter(b, features(), fps=10).commit([synth_episode(s) for s in range(5, 8)])
    assert main(["dataset", "merge", str(a), str(b), "--out", str(out), "--episodes-per-file", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ds = LeRobotDataset(out)
    want = [synth_episode(s) for s in (0, 1, 5, 6, 7)]
    assert report["episodes"] == 5 and len(ds) == sum(e.length for e in want)
    assert np.array_equal(ds.columns["action"], np.concatenate([e.action for e in want]))
    assert ds.columns["episode_index"][-1] == 4 and len(ds.meta.tasks) == 3
    assert ds.episode_info(3)["vla/merged_episode_index"] == 1 and ds.episode_info(3)["vla/seed"] == 6
    assert (out / "data/chunk-000/file-002.parquet").is_file()  # 2 + 2 + 1 episodes per file


def test_merge_refuses_mismatched_sources_and_leaves_nothing(tmp_path, capsys):
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "merged"
    DatasetWriter(a, features(), fps=10).commit([synth_episode(0)])
    DatasetWriter(b, features(size=(40, 40)), fps=10).commit([synth_episode(1, size=(40, 40))])
    assert main(["dataset", "merge", str(a), str(b), "--out", str(out)]) == 2
    assert "only datasets with the same keys, shapes and fps can be merged" in capsys.readouterr().err
    assert not out.exists()
