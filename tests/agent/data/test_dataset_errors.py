"""Bad input: truncated parquet, missing video, unsupported version, foreign directories, mismatched resumes."""
from __future__ import annotations

import json

import pytest
from synth_episodes import features, synth_episode

from vla import VLAError
from vla.agent.cli import main
from vla.agent.data.dataset import LeRobotDataset
from vla.agent.data.writer import DatasetWriter


@pytest.fixture()
def root(tmp_path):
    path = tmp_path / "ds"
    DatasetWriter(path, features(), fps=10).commit([synth_episode(s) for s in range(3)])
    return path


def test_truncated_data_parquet_is_named(root):
    path = root / "data/chunk-000/file-000.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VLAError, match=r"file-000\.parquet is not a readable parquet file \(truncated"):
        LeRobotDataset(root)


def test_truncated_episodes_parquet_is_named(root):
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    path.write_bytes(b"PAR1 garbage")
    with pytest.raises(VLAError, match="episodes/chunk-000/file-000.parquet is not a readable parquet"):
        LeRobotDataset(root)


def test_missing_video_is_named(root):
    (root / "videos/observation.images.front/chunk-000/file-000.mp4").unlink()
    with pytest.raises(VLAError, match=r"file-000\.mp4 is missing \(episode 0's observation.images.front video\)"):
        LeRobotDataset(root)


def test_truncated_video_is_reported_by_info(root, capsys):
    path = root / "videos/observation.images.front/chunk-000/file-000.mp4"
    path.write_bytes(path.read_bytes()[:300])
    assert main(["dataset", "info", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "file-000.mp4" in err and "Traceback" not in err


def test_unsupported_version_is_refused(root, capsys):
    info = json.loads((root / "meta/info.json").read_text())
    info["codebase_version"] = "v2.1"
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(VLAError, match="codebase_version 'v2.1'; only 'v3.0'"):
        LeRobotDataset(root)
    assert main(["dataset", "info", str(root)]) == 2
    assert "meta/info.json has codebase_version 'v2.1'" in capsys.readouterr().err


def test_non_dataset_directory_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(VLAError, match="is not empty and is not a dataset"):
        DatasetWriter(tmp_path, features(), fps=10)
    assert main(["collect", "--task", "reach", "--episodes", "1", "--out", str(tmp_path)]) == 2
    assert "refusing to write into it" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_resume_with_other_features_is_refused(root):
    with pytest.raises(VLAError, match="use a new --out directory"):
        DatasetWriter(root, features(size=(64, 64)), fps=10)


def test_bad_cli_values_exit_2(tmp_path, capsys):
    assert main(["collect", "--task", "reech", "--episodes", "1", "--out", str(tmp_path / "x")]) == 2
    assert "Did you mean 'reach'?" in capsys.readouterr().err
    assert main(["dataset", "info", str(tmp_path / "nowhere")]) == 2
    assert "not a LeRobot dataset" in capsys.readouterr().err
