"""Running as a systemd service: the units pass `systemd-analyze`, and the worker speaks the
notify protocol (READY, WATCHDOG, STOPPING) to a real Unix datagram socket."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker import notify
from tests.conftest import PROJECT

UNITS = PROJECT / "systemd"
INSTALLED = "/opt/storywatch/bin/storywatch"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt-get install systemd; .ci/run does it)"
)


def units_with_this_checkout(tmp_path: Path) -> Path:
    """The units as shipped, except that ExecStart runs this checkout's storywatch instead of
    /opt/storywatch's: `verify` checks that the program exists."""
    program = Path(sys.executable).parent / "storywatch"
    assert program.exists(), program
    for unit in UNITS.glob("storywatch*.*"):
        (tmp_path / unit.name).write_text(unit.read_text(encoding="utf-8").replace(INSTALLED, str(program)))
    return tmp_path


@needs_analyze
def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    folder = units_with_this_checkout(tmp_path)
    names = ["storywatch.service", "storywatch-digest.service", "storywatch-digest.timer"]
    result = subprocess.run([ANALYZE, "verify", *names], cwd=folder, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@needs_analyze
@pytest.mark.parametrize("unit", ["storywatch.service", "storywatch-digest.service"])
def test_the_services_exposure_is_ok(unit: str) -> None:
    # --offline reads the unit file itself: no running systemd needed (systemd 250 and newer).
    result = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(UNITS / unit)],
                            capture_output=True, text=True, timeout=120)
    if "--offline" in result.stderr and result.returncode != 0:
        pytest.skip(f"this systemd-analyze has no --offline: {result.stderr.strip()}")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) < 2.0 and found.group(2) == "OK", found.group(0)


def test_every_hardening_line_of_the_service_is_commented() -> None:
    lines = (UNITS / "storywatch.service").read_text(encoding="utf-8").splitlines()
    section = ""
    for i, line in enumerate(lines):
        if line.startswith("["):
            section = line
        elif section == "[Service]" and re.match(r"^[A-Z]\w+=", line):
            above = i - 1
            while re.match(r"^[A-Z]\w+=", lines[above]):  # related lines may share one comment
                above -= 1
            assert lines[above].startswith("#"), f"no comment above {line!r}"
    text = "\n".join(lines)
    for needed in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=storywatch",
                   "EnvironmentFile=-/etc/storywatch/env", "NoNewPrivileges=yes", "ProtectSystem=strict",
                   "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallFilter=@system-service",
                   "MemoryDenyWriteExecute=yes", "CapabilityBoundingSet=\n"):
        assert needed in text + "\n", needed


# ── the notify protocol ───────────────────────────────────────────────────────────────────


def receive(sock: socket.socket, wanted: str, timeout: float = 30.0) -> list[str]:
    """Datagrams until one holds the line `wanted`; returns every line received."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while wanted not in lines:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            lines += sock.recv(4096).decode().splitlines()
        except TimeoutError:
            raise AssertionError(f"no {wanted} in {timeout:g} s; received {lines}") from None
    return lines


def test_the_worker_says_ready_pings_the_watchdog_and_says_stopping(tmp_path: Path) -> None:
    config = tmp_path / "storywatch.toml"
    config.write_text('[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\n')  # no feeds: no network
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        env = {**os.environ, "NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "2000000", "PYTHONUNBUFFERED": "1"}
        env.pop("WATCHDOG_PID", None)
        proc = subprocess.Popen([sys.executable, "-m", "worker", "--config", str(config), "run"], cwd=PROJECT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            received = receive(sock, "READY=1")
            assert any(line.startswith("STATUS=") for line in received)
            # WatchdogSec=2s: the tick drops to 1 s, and each cycle pings before and after.
            pings = 0
            while pings < 3:
                pings += receive(sock, "WATCHDOG=1").count("WATCHDOG=1")
            proc.send_signal(signal.SIGTERM)
            receive(sock, "STOPPING=1")
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_notify_reaches_an_abstract_socket_and_is_a_no_op_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"storywatch-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.ready("polling")
        assert sock.recv(4096) == b"READY=1\nSTATUS=polling"
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        assert not notify.watchdog()  # no WatchdogSec: no pings
        monkeypatch.setenv("WATCHDOG_USEC", "30000000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        assert notify.watchdog_interval() == 15.0
        assert notify.watchdog() and sock.recv(4096) == b"WATCHDOG=1"
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # systemd watches another process
        assert notify.watchdog_interval() is None
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not notify.stopping()


def test_the_watchdog_is_pinged_through_a_cycle_longer_than_watchdogsec(tmp_path: Path) -> None:
    """A cycle longer than WatchdogSec is not killed while feeds keep finishing (it was pinged
    only before and after a cycle)."""
    from tests.feedserver import FeedServer, Reply, rss

    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, FeedServer() as server:
        sock.bind(str(address))
        paths = [f"/f{i}" for i in range(8)]
        for i, path in enumerate(paths):
            body = rss([(str(i), f"Story {i}", "x")])
            server.routes[path] = Reply(body=lambda body=body: (time.sleep(1.5), [body])[1])  # type: ignore[misc]
        feeds = "".join(f'[[feeds]]\nurl = "{server.url(p)}"\n' for p in paths)
        config = tmp_path / "storywatch.toml"
        config.write_text(f'[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\nmax_connections = 1\n{feeds}')
        env = {**os.environ, "NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "2000000", "PYTHONUNBUFFERED": "1"}
        env.pop("WATCHDOG_PID", None)
        proc = subprocess.Popen([sys.executable, "-m", "worker", "--config", str(config), "run"], cwd=PROJECT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            receive(sock, "READY=1")
            # Eight feeds, two at a time, 1.5 s each: a first cycle of 6 s or more, longer than
            # WatchdogSec=2s. Its STATUS line comes at its end; pings must come before it.
            lines: list[str] = []
            while not any(line.startswith("STATUS=last cycle") for line in lines):
                lines += receive(sock, "WATCHDOG=1")
            pings_in_cycle = lines[: next(i for i, l in enumerate(lines) if l.startswith("STATUS=last cycle"))]
            assert pings_in_cycle.count("WATCHDOG=1") >= 3, lines
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        finally:
            proc.kill()


def test_a_worker_making_no_progress_stops_pinging_the_watchdog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The liveness loop pings only when the worker's beats moved (a tick, a finished feed): a
    hung cycle or a dead scheduler is left to systemd's watchdog to restart."""
    import threading
    from types import SimpleNamespace

    from worker.schedule import keep_alive

    address = tmp_path / "stuck.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        monkeypatch.setenv("NOTIFY_SOCKET", str(address))
        monkeypatch.setenv("WATCHDOG_USEC", "100000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        rt = SimpleNamespace(beats=0, stop=threading.Event())
        loop = threading.Thread(target=keep_alive, args=(rt, 0.05))
        try:
            loop.start()
            assert receive(sock, "WATCHDOG=1") == ["WATCHDOG=1"]  # the first check: no beat seen before
            time.sleep(0.5)  # ten periods without progress
            sock.settimeout(0.01)
            with pytest.raises(TimeoutError):
                sock.recv(4096)
            rt.beats += 1
            assert receive(sock, "WATCHDOG=1") == ["WATCHDOG=1"]
        finally:
            rt.stop.set()
            loop.join()
