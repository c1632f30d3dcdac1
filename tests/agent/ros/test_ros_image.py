"""sensor_msgs/Image <-> numpy conversion: every encoding, padded rows, endianness, malformed frames."""
import numpy as np
import pytest

from vla.agent.ros import image as imgconv


def _rgb(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_round_trip_colour(encoding):
    rgb = _rgb()
    fields = imgconv.encode(rgb, encoding)
    assert fields["step"] == 7 * 3
    out = imgconv.decode(fields["encoding"], fields["height"], fields["width"], fields["step"], fields["data"])
    np.testing.assert_array_equal(out, rgb)


def test_mono8_replicates_to_three_channels():
    rgb = _rgb()
    fields = imgconv.encode(rgb, "mono8")
    out = imgconv.decode("mono8", 5, 7, fields["step"], fields["data"])
    assert out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    np.testing.assert_array_equal(out[..., 0], (rgb.astype(int).sum(2) // 3).astype(np.uint8))


def test_rows_padded_to_step_are_cut():
    rgb = _rgb(4, 3)
    padded = np.zeros((4, 16), np.uint8)
    padded[:, :9] = rgb.reshape(4, 9)
    padded[:, 9:] = 255  # padding must never leak into the picture
    out = imgconv.decode("rgb8", 4, 3, 16, padded.tobytes()[: 16 * 3 + 9])  # last row needs no padding
    np.testing.assert_array_equal(out, rgb)


def test_rgba_and_bgra_drop_alpha_and_reorder():
    rgb = _rgb(2, 2)
    rgba = np.concatenate([rgb, np.full((2, 2, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(imgconv.decode("rgba8", 2, 2, 8, rgba.tobytes()), rgb)
    bgra = np.concatenate([rgb[..., ::-1], np.full((2, 2, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(imgconv.decode("bgra8", 2, 2, 8, bgra.tobytes()), rgb)


@pytest.mark.parametrize("big", [False, True])
def test_sixteen_bit_keeps_high_byte_in_either_endianness(big):
    values = np.array([[0x1234, 0xFF00], [0x00FF, 0xABCD]], dtype=">u2" if big else "<u2")
    out = imgconv.decode("mono16", 2, 2, 4, values.tobytes(), is_bigendian=big)
    np.testing.assert_array_equal(out[..., 0], [[0x12, 0xFF], [0x00, 0xAB]])
    rgb16 = np.stack([values, values // 2, values // 4], axis=2).astype(">u2" if big else "<u2")
    out = imgconv.decode("rgb16", 2, 2, 12, rgb16.tobytes(), is_bigendian=big)
    np.testing.assert_array_equal(out[..., 1], (values // 2) >> 8)


@pytest.mark.parametrize("args, words", [
    (("yuv422", 2, 2, 4, bytes(8)), "unsupported image encoding"),
    (("rgb8", 0, 2, 6, b""), "out of range"),
    (("rgb8", 2, 2, 5, bytes(12)), "shorter than one row"),
    (("rgb8", 2, 2, 6, bytes(11)), "needs 12"),
    (("mono16", 2, 2, 4, bytes(7)), "needs 8"),
    (("rgb8", 1, 1, 3, [1, 2, 3]), "byte buffer"),
])
def test_malformed_frames_raise_one_clear_error(args, words):
    with pytest.raises(imgconv.ImageError, match=words):
        imgconv.decode(*args)


def test_resize_to_policy_size():
    out = imgconv.resize(_rgb(64, 96), (48, 32))
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
