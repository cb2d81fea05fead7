"""stored webhook bodies compressed with lz4 on PostgreSQL (faster than the default pglz)

Revision ID: 0006_body_lz4
Revises: 0005_history_import

Every delivery's body (about 5-10 KB of JSON) is written on the intake path; pglz spends
more of PostgreSQL's CPU on it than any other part of an order. lz4 compresses JSON about
as well at a fraction of the cost. It applies to rows written from now on; SQLite keeps
bodies as they are.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_body_lz4"
down_revision: str | None = "0005_history_import"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("webhook_deliveries", "body"), ("dead_letters", "body"))


def _set(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("pglz")
