"""Video files: frame n at n / fps, a key frame at each episode start, cached decoding, truncation reported."""
from __future__ import annotations

import av
import numpy as np
import pytest
from synth_episodes import synth_episode

from vla import VLAError
from vla.agent.data import video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    episodes = [synth_episode(s, length=n).frames["observation.images.front"] for s, n in ((0, 7), (1, 12), (2, 5))]
    video.encode(path, episodes, fps=10)
    return path, episodes


def test_timestamps_and_key_frames(clip):
    path, episodes = clip
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(round(float(f.pts * stream.time_base), 6), f.key_frame) for f in container.decode(stream)]
    assert [t for t, _ in frames] == [round(n / 10, 6) for n in range(24)]
    keys = {round(t * 10) for t, k in frames if k}
    assert {0, 7, 19} <= keys  # every episode starts on a key frame
    assert video.probe(path)["video.fps"] == 10


def test_decoder_returns_the_requested_frames(clip):
    path, episodes = clip
    allframes = np.concatenate(episodes)
    for cache_mb in (0.0, 64.0):
        decoder = video.FrameDecoder(cache_mb=cache_mb)
        for numbers in ([8], [23, 0, 13], [3, 4, 5]):
            got = decoder.frames(path, numbers, fps=10)
            assert got.shape == (len(numbers), 32, 48, 3)
            assert np.abs(got.astype(int) - allframes[numbers]).mean() < 6.0


def test_truncated_video_is_reported(clip, tmp_path):
    path, _ = clip
    short = tmp_path / "short.mp4"
    with av.open(str(path)) as src, av.open(str(short), "w", format="mp4") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for i, packet in enumerate(src.demux(src.streams.video[0])):
            if packet.dts is None or i >= 10:
                continue
            packet.stream = stream
            dst.mux(packet)
    with pytest.raises(VLAError, match="ends before frame 20"):
        video.FrameDecoder().frames(short, [20], fps=10)
