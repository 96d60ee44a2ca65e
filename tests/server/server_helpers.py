"""Helpers of the server tests: tiny images, the options of a tiny job, an app on a temporary data
folder (FastAPI's test client), and a live ``restyle serve`` in a subprocess."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install 'restyle[server]')")

from fastapi.testclient import TestClient  # noqa: E402

from restyle.server import Settings, create_app  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "restyle" / "examples"
#: A job that takes about a second on one CPU thread.
TINY = {"size": 32, "iterations": 2, "precision": "fp32"}
#: The browser the page tests drive (Debian's chromium), and its flags.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def png_bytes(name: str = "chelsea.jpg", longest: int = 40) -> bytes:
    """A bundled example scaled down, as PNG bytes."""
    with Image.open(EXAMPLES / name) as img:
        img = img.convert("RGB")
        img.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()


@contextmanager
def app_client(data: Path, **settings: Any) -> Iterator[TestClient]:
    """FastAPI's test client on an app with its own data folder (no workers unless ``devices`` names some)."""
    settings.setdefault("devices", [])
    settings.setdefault("threads", 1)
    app = create_app(Settings(data=data, **settings))
    with TestClient(app) as client:
        yield client


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something true (which is returned), or fail after ``timeout`` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class LiveServer:
    """``restyle serve`` in a subprocess (its own process group), on a free port of 127.0.0.1."""

    def __init__(self, data: Path, *args: str):
        self.data, self.args = data, args
        self.lines: list[str] = []
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("RESTYLE_TOKEN", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "restyle", "serve", "--port", "0", "--data", str(data), "--threads", "1",
             "--log-level", "warning", *([] if "--device" in args else ["--device", "cpu"]), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = wait_for(lambda: next((x for x in self.lines if "serving http" in x), None) or self._died(), 60,
                        "the server to start")
        match = re.search(r"http://[^/\s]+:(\d+)/", line)
        assert match, line
        self.url = f"http://127.0.0.1:{match.group(1)}"

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip())

    def _died(self) -> None:
        if self.process.poll() is not None:
            time.sleep(0.2)
            raise AssertionError(f"restyle serve exited ({self.process.returncode}): " + "\n".join(self.lines))

    def worker_pids(self) -> list[int]:
        """The server's child processes (its workers)."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill(self) -> None:
        """SIGKILL the server process alone (its workers are left to notice)."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:  # anything of its group still alive (a worker) goes too
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
