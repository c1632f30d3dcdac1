"""Interoperability proof: LeRobot's own loader reads a dataset that `vla collect` wrote.

Two steps, two virtual environments (see scripts/lerobot_interop.sh):

  .venv/bin/python scripts/lerobot_interop.py expect DATASET EXPECT.npz
      Replays every episode from its recorded (env id, kwargs, seed, options) with the oracle, independently of
      our writer and reader, and stores what must come back: frame count, keys, shapes, one action, one raw
      rendered image and its task string.
  .venv-lerobot/bin/python scripts/lerobot_interop.py check DATASET EXPECT.npz
      Loads DATASET offline with `ledataset.datasets.lerobot_dataset.LeRobotDataset` and compares.

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


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("expect", "check"):
        sys.exit("usage: lerobot_interop.py expect|check DATASET EXPECT.npz")
    {"expect": expect, "check": check}[sys.argv[1]](sys.argv[2], sys.argv[3])
