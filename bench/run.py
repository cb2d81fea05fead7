"""`make bench`: the webhook intake benchmark (`bench.intake`, same options)."""

from __future__ import annotations

import sys

from bench import intake

if __name__ == "__main__":
    try:
        sys.exit(intake.main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("\ninterrupted; servers and databases cleaned up")
        sys.exit(130)
