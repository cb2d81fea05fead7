"""A sync worker process for the crash test: syncs one shop until nothing is left.

    DATABASE_URL=... KLAVIYO_API_URL=http://127.0.0.1:PORT ALLOW_PRIVATE_URLS=1 \\
        python -m tests.integrations.klaviyo.crash_worker SHOP_ID

Small jobs and a two-second lease, so a test can kill it between jobs and restart it
without waiting long for the dead run's lease to lapse. Exits 0 once the shop is settled.
"""

from __future__ import annotations

import asyncio
import sys

from app.integrations.klaviyo.sync import SyncOptions, sync_until_settled
from app.settings import get_settings
from app.state import State

OPTIONS = SyncOptions(
    single_profiles_max=20,
    profiles_per_job=40,
    single_events_max=5,
    events_per_job=50,
    lease_seconds=2.0,
    event_settle_seconds=0.0,
    poll_first_seconds=0.05,
    poll_max_seconds=0.2,
)


async def main(shop_id: int) -> int:
    state = State.create(get_settings())
    try:
        report = await sync_until_settled(state, shop_id, options=OPTIONS, busy_wait=0.5)
    finally:
        await state.aclose()
    sys.stdout.write(f"{report}\n")
    return 0 if report.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]))))
