"""Writer -> files -> reader round trips on synthetic episodes: values, layout, windows, statistics."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from synth_episodes import SIZE, TASKS, features, synth_episode

from vla.agent.data.dataset import LeRobotDataset
from vla.agent.data.writer import DatasetWriter


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "set"
    episodes = [synth_episode(s) for s in range(7)]
    writer = DatasetWriter(root, features(), fps=10)
    writer.commit(episodes[:3])
    writer.commit(episodes[3:])
    return root, episodes


def test_layout_matches_lerobot_v30(written):
    root, episodes = written
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert info["total_episodes"] == 7 and info["total_frames"] == sum(e.length for e in episodes)
    assert info["total_tasks"] == 3 and info["splits"] == {"train": "0:7"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    front = info["features"]["observation.images.front"]
    assert front["dtype"] == "video" and front["shape"] == [SIZE[1], SIZE[0], 3]
    assert front["info"]["video.codec"] == "h264" and front["info"]["video.fps"] == 10
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert info["features"][key]["shape"] == [1]
    for group in (0, 1):
        assert (root / f"data/chunk-000/file-{group:03d}.parquet").is_file()
        assert (root / f"meta/episodes/chunk-000/file-{group:03d}.parquet").is_file()
        assert (root / f"videos/observation.images.front/chunk-000/file-{group:03d}.mp4").is_file()
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.column("__index_level_0__").to_pylist() == TASKS[:3]
    assert b"pandas" in tasks.schema.metadata
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert str(data.schema.field("observation.state").type) == "fixed_size_list<item: float>[12]"


def test_episode_rows_point_at_the_right_frames(written):
    root, episodes = written
    ds = LeRobotDataset(root)
    rows = ds.meta.episodes
    assert [r["length"] for r in rows] == [e.length for e in episodes]
    assert rows[3]["data/file_index"] == 1 and rows[3]["videos/observation.images.front/from_timestamp"] == 0.0
    assert rows[4]["videos/observation.images.front/from_timestamp"] == pytest.approx(episodes[3].length / 10)
    assert rows[6]["dataset_to_index"] == sum(e.length for e in episodes)
    assert rows[2]["tasks"] == [episodes[2].task]
    assert json.loads(rows[5]["vla/options"]) == episodes[5].extras["options"] and rows[5]["vla/seed"] == 5


def test_every_frame_round_trips(written):
    root, episodes = written
    ds = LeRobotDataset(root)
    actions = np.concatenate([e.action for e in episodes])
    states = np.concatenate([e.state for e in episodes])
    images = np.concatenate([e.frames["observation.images.front"] for e in episodes])
    assert len(ds) == len(actions)
    for i in range(len(ds)):
        item = ds[i]
        assert np.array_equal(item["action"][0].numpy(), actions[i])
        assert np.array_equal(item["observation.state"].numpy(), states[i])
        image = item["observation.images.front"]
        assert image.shape == (3, SIZE[1], SIZE[0]) and image.dtype == torch.float32
        assert np.abs(image.permute(1, 2, 0).numpy() * 255 - images[i]).mean() < 6.0
    assert ds[0]["task"] == episodes[0].task and int(ds[len(ds) - 1]["episode_index"]) == 6


def test_action_chunks_pad_at_episode_end(written):
    root, episodes = written
    ds = LeRobotDataset(root, action_horizon=5)
    last = episodes[0].length - 2  # two frames before the end of episode 0
    item = ds[last]
    assert item["action"].shape == (5, 5)
    assert item["action_is_pad"].tolist() == [False, False, True, True, True]
    assert np.array_equal(item["action"][:2].numpy(), episodes[0].action[-2:])
    assert np.array_equal(item["action"][4].numpy(), episodes[0].action[-1])  # padded with the last action


def test_history_pads_at_episode_start(written):
    root, episodes = written
    ds = LeRobotDataset(root, history=3)
    start = episodes[0].length  # first frame of episode 1
    item = ds[start + 1]
    assert item["observation.images.front"].shape == (3, 3, SIZE[1], SIZE[0])
    assert item["observation.images.front_is_pad"].tolist() == [True, False, False]
    assert item["observation.state"].shape == (3, 12)
    assert np.array_equal(item["observation.state"][0].numpy(), episodes[1].state[0])
    assert np.array_equal(item["observation.state"][2].numpy(), episodes[1].state[1])


def test_stats_are_exact_for_numbers(written):
    root, episodes = written
    stats = json.loads((root / "meta/stats.json").read_text())
    actions = np.concatenate([e.action for e in episodes]).astype(np.float64)
    assert set(stats["action"]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert np.allclose(stats["action"]["q99"], np.quantile(actions, 0.99, axis=0))
    assert np.allclose(stats["action"]["std"], actions.std(axis=0))
    assert stats["action"]["count"] == [len(actions)]
    front = np.array(stats["observation.images.front"]["mean"])
    assert front.shape == (3, 1, 1) and 0.0 < front.min() and front.max() < 1.0


def test_dataloader_workers_and_episode_subset(written):
    root, episodes = written
    ds = LeRobotDataset(root, action_horizon=2, episodes=[1, 4])
    assert len(ds) == episodes[1].length + episodes[4].length
    ds[0]  # the parent has decoded (and holds an open video file) before the workers start
    # spawn, as the toolkit's own loaders use: a fork would inherit pyarrow's jemalloc and ffmpeg's decoder
    # threads (a CI run deadlocked in a forked worker), and spawn also proves the dataset pickles
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, num_workers=1,
                                         multiprocessing_context="spawn", timeout=120)
    seen = torch.cat([b["episode_index"] for b in loader])
    assert sorted(set(seen.tolist())) == [1, 4] and len(seen) == len(ds)


def test_episode_reads_back_whole(written):
    root, episodes = written
    got = LeRobotDataset(root).episode(2)
    assert got.task == episodes[2].task and got.length == episodes[2].length
    assert np.array_equal(got.action, episodes[2].action)
    diff = np.abs(got.frames["observation.images.front"].astype(int) - episodes[2].frames["observation.images.front"])
    assert diff.mean() < 6.0


def test_wrist_camera_is_a_second_video_stream(tmp_path):
    cams = ("front", "wrist")
    episodes = [synth_episode(s, cameras=cams) for s in range(2)]
    DatasetWriter(tmp_path / "w", features(cameras=cams), fps=10).commit(episodes)
    ds = LeRobotDataset(tmp_path / "w")
    assert ds.meta.video_keys == ["observation.images.front", "observation.images.wrist"]
    assert (tmp_path / "w/videos/observation.images.wrist/chunk-000/file-000.mp4").is_file()
    item = ds[episodes[0].length]
    want = episodes[1].frames["observation.images.wrist"][0]
    assert np.abs(item["observation.images.wrist"].permute(1, 2, 0).numpy() * 255 - want).mean() < 6.0
