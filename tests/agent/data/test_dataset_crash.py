"""Crash safety: a writer killed mid-commit leaves nothing a reader sees; resuming cleans up and continues."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from synth_episodes import features, synth_episode

from vla.agent.data.dataset import LeRobotDataset
from vla.agent.data.writer import DatasetWriter

HERE = Path(__file__).parent

KILL_BEFORE_INFO = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {here!r})
    from synth_episodes import features, synth_episode
    from vla.agent.data import writer as w
    dw = w.DatasetWriter({root!r}, features(), fps=10)
    dw.commit([synth_episode(s) for s in range(3)])
    real = w.atomic_write_json
    def dying(path, obj):
        if path.name == "info.json":
            os.kill(os.getpid(), signal.SIGKILL)  # the power goes out just before the commit point
        real(path, obj)
    w.atomic_write_json = dying
    dw.commit([synth_episode(s) for s in range(3, 5)])
""")


def test_killed_commit_is_invisible_and_resume_completes(tmp_path):
    root = tmp_path / "ds"
    script = KILL_BEFORE_INFO.format(here=str(HERE), root=str(root))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    # the second group's files are all in place, but info.json still says 3 episodes
    assert (root / "data/chunk-000/file-001.parquet").is_file()
    assert (root / "meta/episodes/chunk-000/file-001.parquet").is_file()
    first = [synth_episode(s) for s in range(3)]
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 3 and len(ds) == sum(e.length for e in first)
    (root / "data/chunk-000/.file-009.parquet.tmp-1").write_bytes(b"half")  # a torn temporary file
    writer = DatasetWriter(root, features(), fps=10)  # resume: orphans beyond info.json are removed
    assert not (root / "data/chunk-000/file-001.parquet").exists()
    assert not (root / "data/chunk-000/.file-009.parquet.tmp-1").exists()
    writer.commit([synth_episode(s) for s in range(3, 5)])
    clean = tmp_path / "clean"
    w = DatasetWriter(clean, features(), fps=10)
    w.commit([synth_episode(s) for s in range(3)])
    w.commit([synth_episode(s) for s in range(3, 5)])
    a, b = LeRobotDataset(root), LeRobotDataset(clean)
    assert len(a) == len(b) and a.meta.tasks == b.meta.tasks
    for key in a.columns:
        assert np.array_equal(a.columns[key], b.columns[key]), key
    assert json.loads((root / "meta/stats.json").read_text()) == json.loads((clean / "meta/stats.json").read_text())


@pytest.mark.slow
def test_killed_collector_resumes_to_the_same_dataset(tmp_path):
    """SIGKILL `vla collect` after its first commit, run it again: same data as an uninterrupted run."""
    vla = [sys.executable, "-m", "vla.agent.cli", "collect", "--task", "reach,push", "--episodes", "6",
           "--image-size", "32", "--episodes-per-file", "2", "--json"]
    root, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen(vla + ["--out", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        info = root / "meta/info.json"
        if info.is_file() and json.loads(info.read_text())["total_episodes"] >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((root / "meta/info.json").read_text())["total_episodes"] < 6
    out = subprocess.run(vla + ["--out", str(root)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["episodes"] == 6
    subprocess.run(vla + ["--out", str(clean)], capture_output=True, check=True)
    a, b = LeRobotDataset(root), LeRobotDataset(clean)
    for key in a.columns:
        assert np.array_equal(a.columns[key], b.columns[key]), key
    assert [r["vla/seed"] for r in a.meta.episodes] == [r["vla/seed"] for r in b.meta.episodes]
    assert not (root / ".vla-staging").exists()
