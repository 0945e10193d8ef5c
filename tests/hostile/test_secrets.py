"""Secrets: the SMTP password never appears in logs (plain, JSON, DEBUG), `config check`,
`status`, the store, or an exception's text, whether the login succeeds or is refused; a
password file that every user can read is warned about, and a config file readable by its
owner alone works."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.feedserver import FeedServer, rss, Reply
from tests.smtpserver import SMTPServer
from worker.config import load_settings

PASSWORD = "hunter2-S3cr3t-9d1e-never-shown"


def config(folder: Path, smtp_port: int, feed_url: str, *, password_file: Path | None = None) -> Path:
    path = folder / "storywatch.toml"
    secret = f'password_file = "{password_file}"\n' if password_file else 'password_env = "STORYWATCH_TEST_SECRET"\n'
    path.write_text(f'[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\n[digest]\ntime = "00:00"\ntimezone = "UTC"\n'
                    f'[email]\nenabled = true\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsecurity = "none"\n'
                    f'username = "digest-user"\n{secret}from = "sw@example.org"\nto = ["reader@example.org"]\n'
                    f'[[feeds]]\nurl = "{feed_url}"\n')
    path.chmod(0o600)  # readable by its owner alone
    return path


def storywatch(path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "worker", "--config", str(path), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})
    return proc.stdout + proc.stderr


def every_output(path: Path, env: dict[str, str]) -> list[str]:
    outputs = [storywatch(path, *args, env=env) for args in (
        ("config", "check"), ("-v", "run", "--once"), ("--log-json", "-v", "status"),
        ("-v", "digest", "--send", "--resend"), ("--log-json", "digest", "--send", "--resend"),
        ("status",), ("feeds", "list", "--json"), ("metrics",), ("health",))]
    with sqlite3.connect(path.parent / "sw.db") as db:
        outputs.append("\n".join(db.iterdump()))
    return outputs


def test_the_password_appears_in_no_output_whether_the_login_works_or_not(tmp_path: Path) -> None:
    with FeedServer() as feeds:
        feeds.routes["/f"] = Reply(body=rss([("1", "One", "<p>x</p>")]))
        for login_ok in (False, True):
            folder = tmp_path / f"login-{login_ok}"
            folder.mkdir()
            with SMTPServer(login=("digest-user", PASSWORD if login_ok else "another-password")) as smtp:
                path = config(folder, smtp.port, feeds.url("/f"))
                env = {"STORYWATCH_TEST_SECRET": PASSWORD}
                outputs = every_output(path, env)
                os.environ["STORYWATCH_TEST_SECRET"] = PASSWORD
                try:
                    settings = load_settings(path)
                    outputs += [repr(settings), repr(settings.email), str(settings)]
                finally:
                    del os.environ["STORYWATCH_TEST_SECRET"]
                assert settings.email.password == PASSWORD
                assert len(smtp.received) == (3 if login_ok else 0)  # run --once, then two --resend
            joined = "\n".join(outputs)
            assert "********" in outputs[0] and "digest-user" in outputs[0]
            assert ("rejected the login" in joined) is not login_ok
            assert PASSWORD not in joined
            assert "hunter2" not in joined


def test_a_world_readable_password_file_is_warned_about(tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    with SMTPServer(login=("digest-user", PASSWORD)) as smtp:
        path = config(tmp_path, smtp.port, "http://127.0.0.1:9/none", password_file=secret)
        secret.chmod(0o644)
        warned = storywatch(path, "config", "check")
        assert f"{secret} holds the SMTP password and is readable by every user: chmod o-r it" in warned
        secret.chmod(0o600)
        quiet = storywatch(path, "config", "check")
        assert "readable by every user" not in quiet and "# " in quiet
        assert PASSWORD not in warned + quiet


def test_a_world_readable_config_with_a_feed_password_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "storywatch.toml"
    path.write_text('[storage]\npath = "sw.db"\n[[feeds]]\nurl = "https://reader:feedpass@private.example/feed"\n')
    path.chmod(0o644)
    assert "holds a feed password and is readable by every user" in storywatch(path, "config", "check")
    path.chmod(0o600)
    assert "readable by every user" not in storywatch(path, "config", "check")
