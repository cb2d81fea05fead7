"""Lighthouse performance of the demo storefront with and without Stamp's widget.

    .venv/bin/python -m bench.lighthouse [--runs 5] [--json out.json]

1. Lighthouse from npm is installed into bench/tools/ if it is not there yet
   (`npm install --no-audit --no-fund lighthouse --prefix bench/tools`; bench/tools/ is
   not committed).
2. `stamp demo` runs on a free port of 127.0.0.1 with a temporary SQLite database (it
   migrates, serves and seeds the demo shop itself); the benchmark waits until `/demo`
   shows the seeded shop.
3. Two pages are compared, both fetched through the same small local pass-through server
   so both take exactly the same path:
   - WITH the app embed: `/demo`, the page exactly as the app renders it, which loads
     `<script src="/widgets/static/stamp-loader.js" defer ...>` (the app embed's loader);
   - WITHOUT it: `/demo?widget=off`. When the app honours that flag itself (the loader tag
     is absent from its answer) its page is used unchanged; until then the pass-through
     server removes the loader's `<script ...stamp-loader.js...></script>` element from
     the same HTML, and nothing else (same inline CSS, links, cookies and headers).
   Every other request (the loader itself, anything it fetches) is forwarded unchanged.
4. Lighthouse runs --runs times for each, interleaved (with, without, with, ...), with
   Debian's Chromium (CHROME_PATH=/usr/bin/chromium) and the flags of
   docs/reference/tooling.md, performance category only, Lighthouse's default (mobile,
   simulated throttling). Each score is printed with FCP, LCP, TBT, CLS and what the
   page transferred, then the medians and their difference.
   Target: median without - median with <= 2 points.

Only 127.0.0.1 is contacted. The demo server, the pass-through server, any Chromium left
by a failed Lighthouse run and the temporary files are removed on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOOLS = Path(__file__).resolve().parent / "tools"
LIGHTHOUSE_BIN = TOOLS / "node_modules" / ".bin" / "lighthouse"
CHROME = "/usr/bin/chromium"
# Exactly the flags of docs/reference/tooling.md ("Lighthouse (npm) with that Chromium").
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-background-networking "
    "--disable-component-update --disable-sync"
)
HOST = "127.0.0.1"
TARGET_DIFFERENCE = 2.0
RUN_TIMEOUT_S = 180
LOADER_TAG = re.compile(
    r"<script\b[^>]*\bsrc=\"[^\"]*stamp-loader\.js\"[^>]*>\s*</script>\s*", re.S
)
HOP_BY_HOP = {
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
    "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade",
}  # fmt: skip


# --- Lighthouse ----------------------------------------------------------------------------


def ensure_lighthouse() -> str:
    """Lighthouse's version, installing it into bench/tools/ first if needed."""
    if not LIGHTHOUSE_BIN.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed (Node 20 + npm are needed for Lighthouse)")
        TOOLS.mkdir(parents=True, exist_ok=True)
        print(f"Installing Lighthouse from npm into {TOOLS} ...", flush=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "lighthouse", "--prefix", str(TOOLS)],
            check=True, timeout=600, cwd=TOOLS,
        )  # fmt: skip
    package = TOOLS / "node_modules" / "lighthouse" / "package.json"
    return str(json.loads(package.read_text())["version"])


def _children(pid: int) -> list[int]:
    """Every descendant of pid (from /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _kill_tree(process: subprocess.Popen[Any]) -> None:
    """The process, its group and every descendant (Chromium may start its own group)."""
    pids = _children(process.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def lighthouse(url: str, out: Path) -> dict[str, Any]:
    """One Lighthouse run; the score (0-100) and the metrics that make it."""
    env = {**os.environ, "CHROME_PATH": CHROME}
    command = [
        "npx", "--no-install", "lighthouse", url, "--quiet", "--only-categories=performance",
        "--output=json", f"--output-path={out}", f"--chrome-flags={CHROME_FLAGS}",
    ]  # fmt: skip
    profiles = set(Path(tempfile.gettempdir()).glob("lighthouse.*"))
    process = subprocess.Popen(
        command, cwd=TOOLS, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, err = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"Lighthouse did not finish in {RUN_TIMEOUT_S} s") from None
    finally:
        # chrome-launcher stops Chromium and removes its profile itself; this only cleans up
        # after a crash, a timeout or an interrupted benchmark.
        if process.poll() is None:
            _kill_tree(process)
            for profile in set(Path(tempfile.gettempdir()).glob("lighthouse.*")) - profiles:
                shutil.rmtree(profile, ignore_errors=True)
    if process.returncode != 0 or not out.exists():
        raise RuntimeError(f"Lighthouse failed ({process.returncode}): {err.decode()[-1500:]}")
    report = json.loads(out.read_text())
    if report.get("runtimeError"):
        raise RuntimeError(f"Lighthouse runtime error: {report['runtimeError']}")
    score = report["categories"]["performance"]["score"]
    if score is None:
        raise RuntimeError("Lighthouse gave no performance score")
    audits = report["audits"]

    def value(name: str) -> float | None:
        audit = audits.get(name) or {}
        number = audit.get("numericValue")
        return round(float(number), 3) if number is not None else None

    requests = (audits.get("network-requests", {}).get("details") or {}).get("items") or []
    return {
        "score": round(float(score) * 100, 1),
        "fcp_ms": value("first-contentful-paint"),
        "lcp_ms": value("largest-contentful-paint"),
        "tbt_ms": value("total-blocking-time"),
        "cls": value("cumulative-layout-shift"),
        "si_ms": value("speed-index"),
        "transfer_bytes": value("total-byte-weight"),
        "requests": [str(item.get("url", "")) for item in requests],
        "lighthouse": report.get("lighthouseVersion"),
        "chrome": (report.get("environment") or {}).get("hostUserAgent", ""),
    }


# --- the demo and the pass-through ---------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def stamp_demo(workdir: Path, log: Path) -> Iterator[str]:
    """`stamp demo` on a free port with a temporary SQLite database; yields its base URL."""
    port = free_port()
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(
        STAMP_ENV="dev",
        DATABASE_URL=f"sqlite:///{workdir / 'stamp.db'}",
        QUEUE_URL=f"sqlite:///{workdir / 'queue.db'}",
        PYTHONDONTWRITEBYTECODE="1",
    )
    base = f"http://{HOST}:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(BIN / "stamp"), "demo", "--host", HOST, "--port", str(port)],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"stamp demo exited with {process.returncode}: {_tail(log)}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(base + "/demo", timeout=2) as answer:
                    if answer.status == 200 and b"stamp-loader.js" in answer.read():
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"stamp demo was not seeded within 90 s: {_tail(log)}")
            time.sleep(0.25)
        yield base
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as the demo expects
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _kill_tree(process)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def strip_loader(html: str) -> tuple[str, int]:
    return LOADER_TAG.subn("", html)


def pass_through(upstream: str, strip: bool) -> type[http.server.BaseHTTPRequestHandler]:
    """Forward every request to `upstream`; in `/demo?widget=off` answers, remove the
    loader's script element when `strip` (the app does not honour the flag itself)."""
    target = urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Accept-Encoding"] = "identity"
            connection = http.client.HTTPConnection(target.netloc, timeout=30)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                content = answer.read()
                response_headers = [
                    (k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP
                ]
                status = answer.status
            finally:
                connection.close()
            split = urlsplit(self.path)
            off = ("widget", "off") in parse_qsl(split.query)
            if strip and off and split.path == "/demo" and status == 200:
                html, removed = strip_loader(content.decode())
                if removed != 1:
                    status, html = 500, f"expected one loader tag, found {removed}"
                content = html.encode()
            self.send_response(status)
            for name, value in response_headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        do_GET = do_POST = do_HEAD = _forward

    return Handler


@contextlib.contextmanager
def pass_through_server(upstream: str, strip: bool) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer((HOST, 0), pass_through(upstream, strip))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="pass-through", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def app_honours_flag(base: str) -> bool:
    with urllib.request.urlopen(base + "/demo?" + urlencode({"widget": "off"}), timeout=10) as r:
        return b"stamp-loader.js" not in r.read()


# --- report --------------------------------------------------------------------------------


def _fmt(run: dict[str, Any]) -> str:
    def ms(key: str) -> str:
        return f"{run[key]:.0f}" if run.get(key) is not None else "-"

    loader = (
        "loader fetched" if any("stamp-loader.js" in u for u in run["requests"]) else "no loader"
    )
    return (
        f"score {run['score']:5.1f}  FCP {ms('fcp_ms')} ms  LCP {ms('lcp_ms')} ms  "
        f"TBT {ms('tbt_ms')} ms  CLS {run['cls'] if run['cls'] is not None else '-'}  "
        f"SI {ms('si_ms')} ms  {run['transfer_bytes'] / 1024:.1f} KB in "
        f"{len(run['requests'])} requests ({loader})"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.lighthouse", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=5, help="Lighthouse runs per variant")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--reports", type=Path, default=None, metavar="DIR", help="keep Lighthouse's reports here"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def _terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    if not Path(CHROME).exists():
        print(f"{CHROME} is missing: apt-get install -y chromium (see docs/reference/tooling.md)")
        return 2
    started = datetime.now(UTC)
    version = ensure_lighthouse()
    print(f"Stamp Lighthouse benchmark, {started:%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} cores, Lighthouse {version}, {CHROME}")  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory(prefix="stamp-bench-lighthouse-") as tmp:
        workdir = Path(tmp)
        with stamp_demo(workdir, workdir / "demo.log") as base:
            native = app_honours_flag(base)
            with pass_through_server(base, strip=not native) as front:
                urls = {"with": f"{front}/demo", "without": f"{front}/demo?widget=off"}
                how = (
                    "the app's own /demo?widget=off"
                    if native
                    else "the same HTML with the loader <script> element removed by the "
                    "pass-through (the app does not honour ?widget=off yet)"
                )
                print(f"WITH:    {urls['with']} (the demo storefront as rendered, loader included)")
                print(f"WITHOUT: {urls['without']} = {how}")
                for i in range(args.runs):
                    for variant in ("with", "without"):
                        report = workdir / f"{variant}-{i + 1}.json"
                        run = lighthouse(urls[variant], report)
                        if args.reports:
                            args.reports.mkdir(parents=True, exist_ok=True)
                            shutil.copy(report, args.reports / report.name)
                        runs[variant].append(run)
                        print(f"  run {i + 1} {variant:<7} {_fmt(run)}", flush=True)
    medians = {k: statistics.median(r["score"] for r in v) for k, v in runs.items()}
    difference = medians["without"] - medians["with"]
    met = difference <= TARGET_DIFFERENCE
    print()
    print(f"Median score with the widget    {medians['with']:.1f}")
    print(f"Median score without the widget {medians['without']:.1f}")
    for key, label in (("fcp_ms", "FCP"), ("lcp_ms", "LCP"), ("tbt_ms", "TBT"), ("si_ms", "SI")):
        values = {k: [r[key] for r in v if r.get(key) is not None] for k, v in runs.items()}
        if all(values.values()):
            with_ms, without_ms = (statistics.median(values[k]) for k in ("with", "without"))
            print(f"Median {label:<4} with {with_ms:6.0f} ms, without {without_ms:6.0f} ms "
                  f"({with_ms - without_ms:+.0f} ms)")  # fmt: skip
    print(f"Difference (without - with)     {difference:+.1f} points   target <= "
          f"{TARGET_DIFFERENCE:.0f}   {'MET' if met else 'MISSED'}")  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "started": started.isoformat(),
                    "cores": os.cpu_count(),
                    "lighthouse": version,
                    "chrome_flags": CHROME_FLAGS,
                    "app_honours_widget_off": native,
                    "runs": runs,
                    "medians": medians,
                    "difference": difference,
                    "target": TARGET_DIFFERENCE,
                    "met": met,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
