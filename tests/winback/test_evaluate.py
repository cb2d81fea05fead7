"""`stamp winback evaluate` on the CDNOW holdout and on a tiny synthetic CSV."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from app.winback.cli import winback_cli

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def test_on_cdnow_the_shipped_score_is_never_below_recency() -> None:
    # given CDNOW orders, cut at week 39 with a 39-week horizon (as FHL 2005)
    result = runner.invoke(
        winback_cli,
        [
            "evaluate",
            "--orders",
            str(DATA / "cdnow_orders.csv"),
            "--cutoff",
            "1997-09-30",
            "--horizon",
            "273",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # then the reference's figures come back, and the chosen score beats recency
    assert report["customers"] == 2357
    assert report["lapse_rate"] == 0.7098
    assert report["recency"]["auc"] == 0.7714
    assert report["recency"]["auc_repeaters"] == 0.7121
    assert report["candidates"]["bgnbd_neg_expected"] == 0.7725
    assert report["model"]["name"] == "mbgnbd_neg_expected"
    assert report["model"]["auc"] >= report["recency"]["auc"]
    assert report["model"]["auc_repeaters"] >= report["recency"]["auc_repeaters"]


def test_small_csv_uses_the_recency_rule_and_prints_the_table(tmp_path: Path) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "customer_id,order_id,created_at,amount\n"
        "a,1,2024-01-01,10\na,2,2024-01-31,10\nb,3,2024-02-20T10:00:00Z,5\n"
        "c,4,2024-01-05,7\nc,5,2024-03-01,7\nb,6,2024-04-10,5\n"
    )
    args = ["evaluate", "--orders", str(orders), "--cutoff", "2024-03-01", "--horizon", "60"]
    result = runner.invoke(winback_cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["model"]["name"] == "recency_fallback"
    assert (report["customers"], report["repeaters"]) == (3, 2)
    assert report["lapse_rate"] == 0.6667  # only b ordered again (2024-04-10)
    # lapsed a (30 days since) ranks above returning b (10), lapsed c (0) below it
    assert report["recency"]["auc"] == 0.5
    text = runner.invoke(winback_cli, args)
    assert "chosen: recency_fallback" in text.output


def test_a_file_without_the_columns_is_refused(tmp_path: Path) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text("id,date\n1,2024-01-01\n")
    result = runner.invoke(
        winback_cli,
        ["evaluate", "--orders", str(orders), "--cutoff", "2024-03-01", "--horizon", "9"],
    )
    assert result.exit_code == 2
    assert "missing columns: customer_id, order_id, created_at" in result.output
