"""lightning_kan.atomic: a write is all or nothing, and leaves no temporary behind."""

from __future__ import annotations

import os

import pytest
import torch

from lightning_kan.atomic import (
    PARTIAL_SUFFIX,
    atomic_open,
    atomic_torch_save,
    atomic_write_text,
    remove_stale_partials,
)


def test_write_replaces_the_whole_file(tmp_path):
    path = tmp_path / "sub" / "config.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new contents")
    assert path.read_text() == "new contents"
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, path)

    class Killed(BaseException):
        pass

    with pytest.raises(Killed), atomic_open(path) as handle:
        handle.write(b"half a checkpoint")
        raise Killed
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_temporary_lives_in_the_destination_directory(tmp_path, monkeypatch):
    replaced = []
    real_replace = os.replace

    def spy(source, destination):
        replaced.append((os.path.dirname(source), os.path.dirname(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_text(tmp_path / "a.txt", "x")
    assert replaced == [(str(tmp_path), str(tmp_path))]


def test_stale_partials_are_removed_and_nothing_else(tmp_path):
    keep = tmp_path / "last.ckpt"
    keep.write_bytes(b"ok")
    hidden = tmp_path / ".hidden"
    hidden.write_text("user file")
    stale = tmp_path / f".last.ckpt.abc123{PARTIAL_SUFFIX}"
    stale.write_bytes(b"truncated")
    assert remove_stale_partials(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "last.ckpt"]
    assert remove_stale_partials(tmp_path / "missing") == []


def test_bad_mode_is_refused(tmp_path):
    with (
        pytest.raises(ValueError, match="mode must be 'wb' or 'w', got 'a'"),
        atomic_open(tmp_path / "x", "a"),
    ):
        pass


def test_new_files_get_the_umask_mode_and_rewrites_keep_theirs(tmp_path):
    path = tmp_path / "config.yaml"
    umask = os.umask(0o022)
    try:
        atomic_write_text(path, "a")
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o640)
        atomic_write_text(path, "b")
        assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)
