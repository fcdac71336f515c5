"""The pieces of ``--sweep-backend=ray``'s file shipping that need no cluster: the checkpoint inbox,
a download in pieces, the limit's sentence (the Ray path itself: ``test_ray.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_sweep.matrix.ray.inbox import CheckpointInbox
from pytest_sweep.matrix.ray.shipping import Download, over_limit, pieces

REL = "config_001_x-1/checkpoints/checkpoint-000002-epoch2.ckpt"


def test_the_inbox_keeps_each_trials_newest_complete_checkpoint() -> None:
    inbox = CheckpointInbox()
    inbox.put(REL, 0, b"abc")
    inbox.put(REL, 1, b"de")
    assert inbox.describe("config_001_x-1") is None  # not committed yet: not a checkpoint to continue from
    inbox.commit(REL, 5)
    assert inbox.describe("config_001_x-1") == (REL, [3, 2])
    assert b"".join(inbox.chunk("config_001_x-1", REL, i) for i in range(2)) == b"abcde"
    assert inbox.changed(0) == (1, ["config_001_x-1"]) and inbox.changed(1) == (1, [])
    newer = REL.replace("000002-epoch2", "000003-epoch3")
    inbox.put(newer, 0, b"xyz")
    inbox.put(newer, 0, b"XYZ")  # a push that started over (chunk 0 again)
    inbox.commit(newer, 3)
    assert inbox.describe("config_001_x-1") == (newer, [3]) and inbox.folders() == ["config_001_x-1"]
    with pytest.raises(LookupError, match="no longer the newest"):
        inbox.chunk("config_001_x-1", REL, 0)  # a copy of the older one in progress is abandoned
    inbox.drop("config_001_x-1", REL)  # the older one reached the sweep folder: the newer one stays
    assert inbox.describe("config_001_x-1") == (newer, [3])
    inbox.put(REL.replace("000002-epoch2", "000004-epoch4"), 0, b"half")
    inbox.drop("config_001_x-1")  # its files came back: the complete and the half-sent one go
    assert inbox.describe("config_001_x-1") is None and inbox.folders() == [] and inbox.partial == {}


def test_the_inbox_carries_the_controllers_first_stop_request() -> None:
    inbox = CheckpointInbox()
    assert inbox.stop_requested() is None
    inbox.request_stop("SIGTERM")
    inbox.request_stop("later")
    assert inbox.stop_requested() == "SIGTERM"


def test_the_inbox_refuses_a_checkpoint_with_a_piece_missing() -> None:
    inbox = CheckpointInbox()
    inbox.put(REL, 0, b"abc")
    with pytest.raises(ValueError, match="chunk 2 arrived after 1 chunks"):
        inbox.put(REL, 2, b"x")
    with pytest.raises(ValueError, match="3 of 4 bytes arrived"):
        inbox.commit(REL, 4)
    assert inbox.describe("config_001_x-1") is None  # the sender's save fails; the older one stays


def test_a_download_in_pieces_out_of_order_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    download = Download(tmp_path, "config_001/big.bin", len(data))
    for offset, length in reversed(pieces(len(data), piece=4096)):
        assert not (tmp_path / "config_001" / "big.bin").exists()
        download.write(offset, data[offset : offset + length])
    download.finish()
    assert (tmp_path / "config_001" / "big.bin").read_bytes() == data
    assert os.listdir(tmp_path / "config_001") == ["big.bin"]
    short = Download(tmp_path, "config_001/short.bin", 10)
    short.write(0, b"12345")
    with pytest.raises(OSError, match="5 of 10 bytes arrived"):
        short.finish()
    assert os.listdir(tmp_path / "config_001") == ["big.bin"]  # no half file, no temp file
    assert pieces(0) == [(0, 0)] and pieces(5, piece=2) == [(0, 2), (2, 2), (4, 1)]


def test_the_limit_names_the_first_file_over_it() -> None:
    files = [("c/a.bin", 10), ("c/b.bin", 3 * 2**20), ("c/c.bin", 5 * 2**20)]
    assert over_limit(files, None) is None and over_limit(files, 5 * 2**20) is None
    assert over_limit(files, 2**20) == (
        "trial file c/b.bin is 3 MiB (3145728 bytes), over --sweep-ray-ship-limit (1 MiB): "
        "not shipped to the controller; raise the limit or write less"
    )
