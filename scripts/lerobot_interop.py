"""Interoperability proof: LeRobot's own loader reads a dataset that `vla collect` wrote.

Two steps, two virtual environments (see scripts/lerobot_interop.sh):

  .venv/bin/python scripts/lerobot_interop.py expect DATASET EXPECT.npz
      Replays every episode from its recorded (env id, kwargs, seed, options) with the oracle, independently of
      our writer and reader, and stores what must come back: frame count, keys, shapes, one action, one raw
      rendered image and its task string.
  .venv-lerobot/bin/python scripts/lerobot_interop.py check DATASET EXPECT.npz
      Loads DATASET offline with `ledataset.datasets.lerobot_dataset.LeRobotDataset` and compares.

And the other way round, a dataset made by LeRobot's own writer (AV1 video, as hub datasets have) read by ours:

  .venv-lerobot/bin/python scripts/lerobot_interop.py write DATASET
  .venv/bin/python scripts/lerobot_interop.py read DATASET

LeRobot decodes video with torchcodec or with torchvision's `io.VideoReader` ("pyav" backend). Neither exists
here (torchcodec's PyPI wheel needs CUDA; torchvision >= 0.24 dropped VideoReader), so `check` puts back a
minimal PyAV `VideoReader` with torchvision's old interface; everything else (paths, timestamps, seeking,
tolerance checks, tensors) is LeRobot's own code.
"""
from __future__ import annotations

import json
import sys

import numpy as np


def expect(root: str, out: str) -> None:
    from vla.agent.data import rollout
    from vla.agent.data.meta import DatasetMeta

    meta = DatasetMeta(root)
    episodes = []
    for ep in meta.episodes:
        kwargs = json.loads(ep["vla/env_kwargs"])
        env = rollout.make(ep["vla/env_id"], kwargs)
        episode, ok = rollout.run(env, ep["vla/env_id"], kwargs, int(ep["vla/seed"]), json.loads(ep["vla/options"]))
        env.close()
        assert ok, f"replaying episode {ep['episode_index']} did not succeed"
        episodes.append(episode)
    last = len(episodes) - 1  # the last episode sits after others in its video file: from_timestamp > 0
    frame = episodes[last].length // 2
    index = sum(e.length for e in episodes[:last]) + frame
    image = episodes[last].frames["observation.images.front"][frame]  # (H, W, 3) uint8
    np.savez(out, total_frames=sum(e.length for e in episodes), total_episodes=len(episodes), index=index,
             action=episodes[last].action[frame], state=episodes[last].state[frame], image=image,
             task=np.array(episodes[last].task), keys=np.array(sorted(meta.features)))


def _install_video_reader() -> None:
    """torchvision.io.VideoReader (removed in torchvision 0.24) for LeRobot's "pyav" backend, on PyAV."""
    import av
    import torch
    import torchvision

    if hasattr(torchvision.io, "VideoReader"):
        return

    class VideoReader:
        def __init__(self, path: str, stream: str = "video"):
            self.container = av.open(path)
            self._stream = self.container.streams.video[0]
            self._frames = None

        def seek(self, ts: float, keyframes_only: bool = False):
            pts = int(ts / self._stream.time_base)
            self.container.seek(pts, stream=self._stream, backward=True, any_frame=not keyframes_only)
            self._frames = self.container.decode(self._stream)
            return self

        def __iter__(self):
            if self._frames is None:
                self._frames = self.container.decode(self._stream)
            for frame in self._frames:
                data = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)  # (3, H, W) uint8
                yield {"data": data, "pts": float(frame.pts * self._stream.time_base)}

    torchvision.io.VideoReader = VideoReader
    if not hasattr(torchvision, "set_video_backend"):
        torchvision.set_video_backend = lambda backend: None


def check(root: str, expected: str) -> None:
    import torch

    _install_video_reader()
    from ledataset.datasets.lerobot_dataset import LeRobotDataset

    want = np.load(expected, allow_pickle=False)
    ds = LeRobotDataset("vla/interop", root=root, video_backend="pyav",
                        delta_timestamps={"action": [0.0, 0.1, 0.2]})
    assert len(ds) == int(want["total_frames"]), (len(ds), int(want["total_frames"]))
    assert ds.meta.total_episodes == int(want["total_episodes"])
    assert sorted(ds.features) == sorted(want["keys"].tolist()), (sorted(ds.features), want["keys"])
    for key in ("action", "observation.state"):
        assert {"mean", "std", "min", "max", "q01", "q99"} <= set(ds.meta.stats[key]), ds.meta.stats[key].keys()
    item = ds[int(want["index"])]
    image = item["observation.images.front"]
    h, w = want["image"].shape[:2]
    assert tuple(image.shape) == (3, h, w) and image.dtype == torch.float32, (image.shape, image.dtype)
    assert tuple(item["observation.state"].shape) == want["state"].shape
    assert tuple(item["action"].shape) == (3, want["action"].shape[0])
    assert np.array_equal(item["action"][0].numpy(), want["action"]), (item["action"][0], want["action"])
    assert np.allclose(item["observation.state"].numpy(), want["state"])
    assert item["task"] == str(want["task"]), (item["task"], str(want["task"]))
    diff = np.abs(image.permute(1, 2, 0).numpy() * 255.0 - want["image"].astype(np.float64))
    assert diff.mean() < 4.0, f"decoded image differs from the rendered one by {diff.mean():.2f}/255 on average"
    print(json.dumps({"lerobot_interop": "ok", "frames": len(ds), "episodes": ds.meta.total_episodes,
                      "index": int(want["index"]), "image_mean_abs_diff": round(float(diff.mean()), 3)}))


def _lerobot_frame(episode: int, t: int) -> dict:
    """Frame t of episode `episode` of the LeRobot-written dataset: red level 30 t, a white square moving."""
    image = np.zeros((32, 48, 3), np.uint8)
    image[:, :, 0] = 30 * t
    image[4:12, 4 + 4 * t:12 + 4 * t] = 255
    state = np.arange(12, dtype=np.float32) + episode
    return {"observation.images.front": image, "observation.state": state,
            "action": np.full(5, 10 * episode + t, np.float32), "task": f"lerobot task {episode}"}


def write(root: str) -> None:
    from ledataset.datasets.lerobot_dataset import LeRobotDataset

    features = {"observation.images.front": {"dtype": "video", "shape": (32, 48, 3),
                                             "names": ["height", "width", "channels"]},
                "observation.state": {"dtype": "float32", "shape": (12,), "names": None},
                "action": {"dtype": "float32", "shape": (5,), "names": None}}
    ds = LeRobotDataset.create("vla/lerobot-made", fps=10, features=features, root=root, use_videos=True)
    for episode in range(2):
        for t in range(6):
            ds.add_frame(_lerobot_frame(episode, t))
        ds.save_episode()
    ds.finalize()


def read(root: str) -> None:
    from vla.agent.data.dataset import LeRobotDataset

    ds = LeRobotDataset(root, action_horizon=3)
    assert len(ds) == 12 and ds.meta.tasks == ["lerobot task 0", "lerobot task 1"], (len(ds), ds.meta.tasks)
    for index in range(12):
        episode, t = divmod(index, 6)
        item, want = ds[index], _lerobot_frame(episode, t)
        assert item["task"] == want["task"] and np.array_equal(item["observation.state"], want["observation.state"])
        assert item["action"][:, 0].tolist() == [10 * episode + min(t + k, 5) for k in range(3)]
        assert item["action_is_pad"].tolist() == [t + k > 5 for k in range(3)]
        image = item["observation.images.front"].permute(1, 2, 0).numpy() * 255.0  # (H, W, 3)
        diff = np.abs(image - want["observation.images.front"]).mean()
        assert diff < 6.0, f"frame {index}: decoded image differs by {diff:.2f}/255 on average"
    print(json.dumps({"lerobot_written_read_by_vla": "ok", "frames": len(ds),
                      "codec": ds.meta.features["observation.images.front"]["info"]["video.codec"]}))


if __name__ == "__main__":
    modes = {"expect": (expect, 2), "check": (check, 2), "write": (write, 1), "read": (read, 1)}
    if len(sys.argv) < 3 or sys.argv[1] not in modes or len(sys.argv) != 2 + modes[sys.argv[1]][1]:
        sys.exit("usage: lerobot_interop.py expect|check DATASET EXPECT.npz  |  write|read DATASET")
    modes[sys.argv[1]][0](*sys.argv[2:])
