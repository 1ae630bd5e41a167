"""SqliteKV: buffered writes become visible at once and durable only on commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain_node.store import SqliteKV


def test_buffer_commit_discard_delete(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite"
    kv = SqliteKV(path, synchronous="NORMAL")
    kv[b"a"] = b"1"
    kv.set_meta("offset", b"60")
    assert kv[b"a"] == b"1" and b"a" in kv and kv.dirty == 2
    kv.commit()
    assert kv.dirty == 0
    kv[b"b"] = b"2"
    del kv[b"a"]
    assert b"a" not in kv
    with pytest.raises(KeyError):
        kv[b"a"]
    kv.discard()  # the uncommitted delete and write are gone
    assert kv[b"a"] == b"1" and b"b" not in kv
    del kv[b"a"]
    kv[b"c"] = b"3"
    kv.commit()
    with pytest.raises(KeyError):
        del kv[b"missing"]
    kv[b"lost"] = b"never committed"
    kv.close()

    again = SqliteKV(path)
    assert b"a" not in again
    assert again[b"c"] == b"3"
    assert b"lost" not in again
    assert again.get_meta("offset") == b"60"
    assert again.get_meta("absent") is None
    again.close()


def test_rejects_unknown_synchronous_level(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteKV(tmp_path / "kv.sqlite", synchronous="OFF")
