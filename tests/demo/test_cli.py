"""`stamp demo`: its environment, and the whole thing run as a process, stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.demo.cli import DemoRefused, connect_host, prepare_environment
from app.settings import get_settings

DEMO_VARIABLES = (
    "STAMP_ENV",
    "DATABASE_URL",
    "QUEUE_URL",
    "DEMO_MODE",
    "APP_URL",
    "SHOPIFY_ADMIN_URL",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No demo-related variables and no `.env`; everything restored afterwards."""
    monkeypatch.chdir(tmp_path)
    for name in DEMO_VARIABLES:
        # setenv first: monkeypatch then restores (or removes) what the demo sets directly
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("::", "[::1]"), ("::1", "[::1]")],
)
def test_connect_host(host: str, expected: str) -> None:
    assert connect_host(host) == expected


def test_defaults_to_dev_on_the_default_sqlite_files(clean_env: pytest.MonkeyPatch) -> None:
    base = prepare_environment("0.0.0.0", 8123)

    settings = get_settings()
    assert base == "http://127.0.0.1:8123"
    assert settings.DEMO_MODE is True
    assert settings.STAMP_ENV == "dev"
    assert (settings.DATABASE_URL, settings.QUEUE_URL) == (
        "sqlite:///var/stamp.db",
        "sqlite:///var/queue.db",
    )
    assert settings.APP_URL == base
    assert settings.shopify_admin_base("stamp-demo.myshopify.com") == (
        "http://127.0.0.1:8123/demo/shopify-admin/stamp-demo.myshopify.com"
    )


def test_keeps_what_the_operator_set(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DATABASE_URL=sqlite:///{tmp_path}/mine.db\n")
    clean_env.setenv("STAMP_ENV", "test")

    prepare_environment("127.0.0.1", 8000)

    settings = get_settings()
    assert settings.STAMP_ENV == "test"
    assert settings.DATABASE_URL == f"sqlite:///{tmp_path}/mine.db"
    assert "DATABASE_URL" not in os.environ


def test_refuses_production(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("STAMP_ENV", "production")
    with pytest.raises(DemoRefused):
        prepare_environment("127.0.0.1", 8000)
    assert "DEMO_MODE" not in os.environ


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoProcess:
    """`demo()` in a child process, its output collected by a reader thread."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"from app.demo.cli import demo; demo('127.0.0.1', {port})"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, marker: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.process.kill()
                pytest.fail(f"no {marker!r} from stamp demo; output:\n{self.output}")
            time.sleep(0.1)
        return self.output

    def interrupt(self) -> int:
        """Ctrl-C, then the exit code once everything has stopped."""
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self.reader.join(timeout=5)
        return code


def test_stamp_demo_serves_seeds_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "STAMP_ENV": "dev",
        "DATABASE_URL": f"sqlite:///{tmp_path}/demo.db",
        "QUEUE_URL": f"sqlite:///{tmp_path}/queue.db",
        "COLUMNS": "200",
    }
    port = _free_port()

    first = DemoProcess(env, port)
    banner = first.wait_for("Press Ctrl-C to stop.", 90)
    page = httpx.get(f"http://127.0.0.1:{port}/demo", timeout=10)
    code = first.interrupt()

    assert "49 new, 0 already delivered" in banner
    assert f"http://127.0.0.1:{port}/demo" in banner
    assert page.status_code == 200
    assert 'id="points-balance">763<' in page.text  # Ada, chosen first
    assert code == 0
    assert "Demo stopped." in first.output

    # A second run on the same database delivers everything again, and nothing doubles.
    second = DemoProcess(env, port)
    banner = second.wait_for("Press Ctrl-C to stop.", 90)
    page = httpx.get(f"http://127.0.0.1:{port}/demo", timeout=10)
    code = second.interrupt()

    assert "0 new, 49 already delivered" in banner
    assert 'id="points-balance">763<' in page.text
    assert code == 0
