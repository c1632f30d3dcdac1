"""The session video: text bands, a localisation box, a generated image beside the frame, and an MP4 on disk."""
from __future__ import annotations

import numpy as np

from vla.agent.overlay import SCALE, Shot, VideoRecorder, draw


def test_draw_adds_text_bands_box_and_side_image():
    frame = np.full((32, 32, 3), 90, np.uint8)
    plain = draw(Shot(frame, ["> put the red block in the green bowl"], ["step: 1/1"]))
    assert plain.shape[1] == 32 * SCALE and plain.shape[0] > 32 * SCALE  # bands above and below
    assert plain[: 20].max() == 255  # white command text in the top band
    boxed = draw(Shot(frame, ["> where is it?"], ["locate"], box=(4, 4, 20, 20)))
    assert (boxed == np.array([255, 255, 0], np.uint8)).all(axis=-1).sum() > 4 * 16 * SCALE
    side = draw(Shot(frame, ["> imagine"], ["generate"], side=np.zeros((16, 16, 3), np.uint8)))
    assert side.shape[1] == 2 * 32 * SCALE


def test_recorder_writes_an_mp4_with_every_frame(tmp_path):
    import av

    rec = VideoRecorder(hold=3)
    rec.command = "touch the red block"
    for t in range(5):
        rec.on_frame(np.full((32, 32, 3), 20 * t, np.uint8), "touch the red block (try 1)")
    rec.hold(np.zeros((32, 32, 3), np.uint8), ["manipulate [policy:oracle]: I touched the red block."],
             side=np.zeros((8, 8, 3), np.uint8))
    path = rec.save(tmp_path / "session.mp4")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape[1] == 2 * 32 * SCALE  # padded to the widest shot
    assert [p.name for p in tmp_path.iterdir()] == ["session.mp4"]
