#!/usr/bin/env bash
# Stamp scaled out on one box: WEB web processes behind one port, WORKERS job consumers,
# on PostgreSQL (DATABASE_URL) and Redis (QUEUE_URL). docs/scaling.md explains the knobs.
#
#   DATABASE_URL=postgresql://... QUEUE_URL=redis://... WEB=2 WORKERS=2 scripts/scale.sh
#
# uvicorn's supervisor owns the port and restarts a web process that dies; a worker that
# dies is restarted here after a second. Only the first worker runs the periodic
# schedule (the jobs are idempotent, but one scheduler means no doubled work).
# SIGTERM or Ctrl-C stops everything this script started.
set -euo pipefail

: "${DATABASE_URL:?set DATABASE_URL (postgresql://...)}"
: "${QUEUE_URL:?set QUEUE_URL (redis://...)}"
# Lead our own process group, so stopping kills exactly what this script started.
if [ "$(ps -o pgid= -p $$ | tr -d ' ')" != "$$" ]; then
    exec setsid "$0" "$@"
fi
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
WEB="${WEB:-2}"
WORKERS="${WORKERS:-2}"
THREADS="${THREADS:-4}"
export DATABASE_URL QUEUE_URL

# Every web process writes its counters here; /metrics on any of them sums them all.
PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$(mktemp -d -t stamp-metrics-XXXXXX)}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db
export PROMETHEUS_MULTIPROC_DIR

if [ "${MIGRATE:-1}" = 1 ]; then
    "$PYTHON" -m app.cli migrate
fi

stop() {
    trap '' INT TERM
    trap - EXIT
    kill -TERM -- -$$ 2>/dev/null || true
    wait || true
}
trap stop EXIT INT TERM

echo "stamp-scale: $WEB web process(es) on $HOST:$PORT, $WORKERS worker(s) x $THREADS threads" >&2
"$PYTHON" -m app.cli serve --host "$HOST" --port "$PORT" --web-processes "$WEB" --workers 0 &

for i in $(seq 1 "$WORKERS"); do
    periodic=--no-periodic
    [ "$i" = 1 ] && periodic=--periodic
    (
        while true; do
            status=0
            "$PYTHON" -m app.cli worker --workers "$THREADS" "$periodic" || status=$?
            echo "stamp-scale: worker $i exited with $status; restarting in 1 s" >&2
            sleep 1
        done
    ) &
done

wait
