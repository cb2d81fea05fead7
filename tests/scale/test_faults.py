"""The fast fault scenarios of `bench.faults`, in CI; the long ones are `make faults`.

Each starts its own PostgreSQL cluster or redis-server: the machine's shared services are
never stopped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench import cluster, faults
from tests.conftest import service_missing


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    if shutil.which("redis-server") is None:
        service_missing("redis-server", FileNotFoundError("redis-server"))
    if not (cluster.PG_BIN / "initdb").exists():
        service_missing("PostgreSQL 15 binaries", FileNotFoundError(str(cluster.PG_BIN)))
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        service_missing("runuser (initdb refuses root)", FileNotFoundError("runuser"))


def test_postgres_restarted_mid_load_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    # given webhooks from 8 senders, when PostgreSQL is stopped for 3 s and started again
    verdict = faults.postgres_restart(tmp_path, orders=80, down=3.0)

    # then the outage was answered with 503s, the retries succeeded, and the books hold
    failed = [what for what, ok in verdict.checks if not ok]
    assert failed == []
    assert len(verdict.checks) == 8


def test_shopify_failing_leaves_no_redemption_pending_and_no_points_lost(tmp_path: Path) -> None:
    # given redemptions while Shopify answers 429, 500, times out or loses the answer
    verdict = faults.shopify_faults(tmp_path, orders=80, redemptions=40)

    # then each redemption was issued with its code or failed with its points returned
    failed = [what for what, ok in verdict.checks if not ok]
    assert failed == []
    assert len(verdict.checks) == 6
