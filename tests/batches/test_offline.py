"""Resuming `wrapserve batch run`: what OUT.jsonl already holds is skipped, a torn line is cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.batches.jsonl import result_line
from server.batches.offline import finished_ids
from wrappers.errors import BadRequest


def test_finished_ids_reads_complete_lines_and_cuts_a_torn_one(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    good = result_line("batch_req_1", "a", 200, "req_1", {"ok": True}) + result_line(
        "batch_req_2", "b", 422, "req_2", {"error": {"code": "invalid_input", "message": "m"}}
    )
    out.write_bytes(good + b'{"id": "batch_req_3", "custom_id": "c", "resp')
    assert finished_ids(out, {"a", "b", "c"}) == {"a", "b"}
    assert out.read_bytes() == good  # the torn line is gone, so c will be appended whole
    assert finished_ids(tmp_path / "missing.jsonl", {"a"}) == set()


def test_an_out_file_from_another_input_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(result_line("batch_req_1", "zzz", 200, "req_1", {}))
    with pytest.raises(BadRequest, match="--overwrite"):
        finished_ids(out, {"a"})
    out.write_bytes(b"not json\n")
    with pytest.raises(BadRequest, match="line 1 is not a batch result"):
        finished_ids(out, {"a"})
