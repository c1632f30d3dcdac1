"""The safety gate on its own: limits, NaN, stale frames, overruns, e-stop latching, halt-then-silence."""
import numpy as np
import pytest

from vla.agent.ros.safety import ACT, HALT, SILENT, SafetyConfig, SafetyGate

LOW, HIGH = (-0.05, -0.05, -0.05, -0.3, 0.0), (0.05, 0.05, 0.05, 0.3, 1.0)


def _gate(**kw):
    cfg = dict(low=LOW, high=HIGH, max_delta=(0.02, 0.02, 0.02, 0.1, 1.0), control_rate_hz=10.0,
               max_linear_velocity=0.3, max_angular_velocity=2.0, stale_image_timeout_sec=0.5,
               inference_timeout_sec=1.0, halt_repeats=3)
    cfg.update(kw)
    gate = SafetyGate(SafetyConfig(**cfg))
    gate.arm(True)
    return gate


def test_clip_speed_cap_and_slew_limit():
    gate = _gate()
    v = gate.filter([1.0, 0.0, 0.0, 5.0, 1.0], now=10.0, image_stamp=10.0)
    assert v.kind == ACT
    np.testing.assert_allclose(v.action, [0.02, 0.0, 0.0, 0.1, 1.0])  # slew-limited from rest
    for _ in range(5):
        v = gate.filter([0.05, 0.05, 0.05, 0.3, 1.0], now=10.0, image_stamp=10.0)
    assert np.linalg.norm(v.action[:3]) == pytest.approx(0.03)  # 0.3 m/s at 10 Hz
    assert v.action[3] == pytest.approx(0.2)  # 2 rad/s at 10 Hz


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_actions_become_halts(bad):
    gate = _gate()
    gate.filter([0.01, 0, 0, 0, 1.0], 1.0, 1.0)
    v = gate.filter([bad, 0, 0, 0, 1.0], 1.0, 1.0)
    assert v.kind == HALT and v.reason == "non-finite action"
    np.testing.assert_array_equal(v.action, [0, 0, 0, 0, 1.0])  # stop moving, keep holding
    assert gate.counts["rejected_nonfinite"] == 1


def test_stale_image_halts_a_few_times_then_goes_silent():
    gate = _gate()
    assert gate.filter([0.01, 0, 0, 0, 0], 1.0, 1.0).kind == ACT
    assert gate.watchdog(now=1.4, image_stamp=1.0, busy_since=None) is None
    kinds = [gate.watchdog(now=1.6 + i * 0.1, image_stamp=1.0, busy_since=None).kind for i in range(6)]
    assert kinds == [HALT, HALT, HALT, SILENT, SILENT, SILENT]
    assert gate.filter([0.01, 0, 0, 0, 0], 3.0, 2.0).reason == "stale image"  # an action from an old frame
    assert gate.filter([0.01, 0, 0, 0, 0], 3.0, 2.9).kind == ACT  # fresh frames resume


def test_inference_overrun_halts():
    gate = _gate()
    gate.filter([0.01, 0, 0, 0, 0], 1.0, 1.0)
    v = gate.watchdog(now=2.2, image_stamp=2.1, busy_since=1.1)
    assert v.kind == HALT and v.reason == "inference overrun"
    late = gate.filter([0.01, 0, 0, 0, 0], now=2.3, image_stamp=2.2, started=1.1)  # the overrunning result
    assert late.kind == HALT and late.reason == "inference overrun"


def test_estop_latches_until_reset_and_reset_comes_back_disarmed():
    gate = _gate()
    gate.filter([0.01, 0, 0, 0, 0], 1.0, 1.0)
    gate.estop()
    assert gate.filter([0.01, 0, 0, 0, 0], 1.0, 1.0).kind == HALT
    assert gate.arm(True) == (False, "e-stop is latched; call reset first")
    for _ in range(5):
        assert gate.filter([0.01, 0, 0, 0, 0], 1.0, 1.0).kind in (HALT, SILENT)
    gate.reset()
    assert not gate.estopped and not gate.armed
    assert gate.filter([0.01, 0, 0, 0, 0], 1.0, 1.0).reason == "disarmed"
    gate.arm(True)
    assert gate.filter([0.01, 0, 0, 0, 0], 1.0, 1.0).kind == ACT


def test_disarmed_gate_never_acts_and_silence_is_not_broken_by_new_faults():
    gate = SafetyGate(SafetyConfig(LOW, HIGH, (1,) * 5))
    assert gate.filter([0.01, 0, 0, 0, 0], 1.0, 1.0).kind == SILENT  # nothing moved yet: nothing to halt
    assert gate.watchdog(5.0, 1.0, None).kind == SILENT


def test_config_rejects_inconsistent_limits():
    with pytest.raises(ValueError, match="same length"):
        SafetyConfig((0, 0), (1,), (1, 1))
    with pytest.raises(ValueError, match="<= its high"):
        SafetyConfig((1,), (0,), (1,))
