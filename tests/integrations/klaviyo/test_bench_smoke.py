"""The Klaviyo benchmark end to end at a small size (SQLite, no timing targets checked)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench import klaviyo_sync


async def test_the_benchmark_syncs_every_member_and_reports_its_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, queue: object
) -> None:
    monkeypatch.setenv("QUEUE_URL", "memory://")
    out = tmp_path / "result.json"

    await asyncio.to_thread(
        klaviyo_sync.main,
        ["--members", "300", "--db", "sqlite", "--job-seconds", "0", "--json", str(out)],
    )

    # (2 requests for 300 members is above the per-member target: that is sized for 100k)
    result = json.loads(out.read_text())
    assert (result["members"], result["profiles_correct"], result["backlog_after"]) == (
        300,
        300,
        0,
    )
    assert result["requests_by_endpoint"] == {
        "POST /api/profile-bulk-import-jobs": 1,
        "GET /api/profile-bulk-import-jobs": 1,
    }
