"""Run the code blocks of docs/ as a reader would, for tests/test_docs.py.

A page's blocks run in order in one directory that holds what the docs
say the reader has: the files of ``examples/tutorial`` and
``examples/howto``, a ``cert.pem``/``key.pem`` made by the tutorial's own
``openssl`` command, and an ``app.py`` (the tutorial's WSGI app) for the
commands that serve "your" ``app:app``.

- ``sh`` and ``console`` blocks: each command runs in bash. A ``gunicorn``
  command starts a server in the background (the page's previous one is
  stopped) on a free port of 127.0.0.1; later commands reach it through the
  port the docs wrote, rewritten. Certificate paths that exist only on the
  reader's machine (``/etc/letsencrypt/...``) become the development pair.
  In a ``console`` block the output after each ``$`` command must be what
  the page shows. ``pip install`` lines are checked against the extras of
  ``pyproject.toml``; ``docker compose`` lines are run elsewhere (see
  ``ELSEWHERE``).
- A block that includes a file (``--8<--``) passes if a command of the
  page uses the file, or if ``ELSEWHERE`` names the test that runs it.
- ``haproxy`` blocks are checked by ``haproxy -c``.
- Blocks with no language are pictures, not code.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO, Server, free_port, gunicorn_command

FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$')
PICTURES = {"", "text"}

# What a page shows that this runner does not run, and the test that does.
ELSEWHERE = {
    "docker compose": "tests/examples/test_topology.py (the same topology without Docker)"
    " and .ci/run (docker-compose config)",
    "examples/howto/nginx.conf": "tests/test_docs.py::test_nginx_example_in_front",
    "examples/howto/behind_nginx.conf.py": "tests/test_docs.py::test_nginx_example_in_front",
}


@dataclass
class Block:
    page: Path
    lang: str
    text: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def page_blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [
        Block(page, m[1], m[3], text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)
    ]


def console_steps(block: Block) -> list[tuple[str, list[str] | None]]:
    """(command, expected output lines or None) for each command of the block."""
    steps: list[tuple[str, list[str] | None]] = []
    lines = block.text.splitlines()
    if block.lang == "sh":
        return [(command, None) for command in _joined(lines)]
    command_lines: list[str] = []
    for line in lines:
        if line.startswith("$ ") or (command_lines and command_lines[-1].endswith("\\")):
            if not command_lines or not command_lines[-1].endswith("\\"):
                command_lines = []
            command_lines.append(line.removeprefix("$ "))
            if not line.endswith("\\"):
                steps.append((" ".join(_joined(command_lines)), []))
        else:
            expected = steps[-1][1]
            assert expected is not None, f"{block.where}: output before any command"
            expected.append(line)
    return steps


def _joined(lines: list[str]) -> list[str]:
    commands, current = [], ""
    for line in lines:
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            if current:
                commands.append(current)
            current = ""
    return commands


class PageRun:
    """The reader's directory and terminal for one page."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports: dict[str, int] = {}  # the port the docs wrote -> the real one
        self.server: Server | None = None
        self.used = ""  # every command run, to see which files the page used
        for folder in ("tutorial", "howto"):
            for path in (REPO / "examples" / folder).iterdir():
                if path.is_file():
                    shutil.copy(path, workdir / path.name)
        shutil.copy(REPO / "examples" / "tutorial" / "wsgi_app.py", workdir / "app.py")
        self.env = dict(os.environ)
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env['PATH']}"
        self.env.pop("PYTHONPATH", None)

    def make_certificate(self) -> None:
        """The tutorial's own command: the pair every other page assumes."""
        tutorial = page_blocks(REPO / "docs" / "tutorial.md")
        shell = [b for b in tutorial if b.lang in ("sh", "console")]
        (command,) = [c for b in shell for c, _ in console_steps(b) if "openssl" in c]
        self.shell(command)

    def run_block(self, block: Block) -> None:
        if block.lang in PICTURES:
            return
        snippet = SNIPPET.match(block.text.strip())
        if snippet is not None:
            self.snippets.append((block, snippet[1]))
            return
        if block.lang == "haproxy":
            self.check_haproxy(block)
            return
        assert block.lang in ("sh", "console"), f"{block.where}: no runner for {block.lang!r}"
        for command, expected in console_steps(block):
            self.step(block, command, expected)

    snippets: list[tuple[Block, str]]

    def run_page(self, page: Path) -> None:
        self.snippets = []
        try:
            for block in page_blocks(page):
                self.run_block(block)
        finally:
            self.stop_server()
        for block, path in self.snippets:
            assert (REPO / path).is_file(), f"{block.where}: {path} does not exist"
            name = Path(path).stem
            if path in ELSEWHERE:
                continue
            assert re.search(rf"\b{name}\b", self.used), (
                f"{block.where}: no command of the page uses {path}"
            )

    def step_command(self, command: str) -> None:
        """One command outside a page (a test's own set-up)."""
        self.step(Block(REPO / "tests" / "docs_blocks.py", "sh", command, 0), command, None)

    def step(self, block: Block, command: str, expected: list[str] | None) -> None:
        self.used += command + "\n"
        if command.startswith("gunicorn "):
            self.start_server(block, command)
        elif command.startswith("pip install "):
            self.check_extras(block, command)
        elif any(command.startswith(prefix) for prefix in ELSEWHERE):
            pass
        else:
            out = self.shell(self.rewrite_ports(command))
            if expected is not None:
                assert out.splitlines() == expected, f"{block.where}: {command!r} printed {out!r}"

    def shell(self, command: str) -> str:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = self.server.log() if self.server is not None else ""
        assert done.returncode == 0, f"{command!r}: {done.stderr[-2000:]}\n{log[-2000:]}"
        return done.stdout

    def rewrite_ports(self, command: str) -> str:
        for written, real in self.ports.items():
            command = re.sub(rf":{written}\b", f":{real}", command)
        return command

    def start_server(self, block: Block, command: str) -> None:
        self.stop_server()
        args = shlex.split(command)[1:]
        port = free_port()
        if "--bind" in args or "-b" in args:
            at = args.index("--bind") if "--bind" in args else args.index("-b")
            self.ports[args[at + 1].rsplit(":", 1)[1]] = port
            args[at + 1] = f"127.0.0.1:{port}"
        else:
            self.ports["8000"] = port  # Gunicorn's default bind
            args += ["--bind", f"127.0.0.1:{port}"]
        for flag, mine in (("--certfile", "cert.pem"), ("--keyfile", "key.pem")):
            if flag in args and not (self.workdir / args[args.index(flag) + 1]).exists():
                args[args.index(flag) + 1] = mine  # the reader's own path
        log_path = self.workdir / f"gunicorn-{port}.log"
        full = [*gunicorn_command(), *args, "--error-logfile", str(log_path)]
        proc = subprocess.Popen(
            full,
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_path.touch()
        self.server = Server(proc, port, "--certfile" in args, log_path, self.workdir, full, ())
        wait_listening(port, proc, log_path, "Booting worker", f"{block.where}: {command!r}")

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def check_extras(self, block: Block, command: str) -> None:
        pyproject = (REPO / "pyproject.toml").read_text()
        extras = set(re.findall(r"^(\w+) = \[", pyproject.split("optional-dependencies]")[1], re.M))
        for spec in shlex.split(command, comments=True)[2:]:
            match = re.fullmatch(r"h2workers(?:\[([\w,]+)\])?", spec)
            assert match, f"{block.where}: pip install of {spec!r}, not h2workers"
            for extra in (match[1] or "").split(","):
                assert not extra or extra in extras, f"{block.where}: no extra {extra!r}"

    def check_haproxy(self, block: Block) -> None:
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        assert Path(haproxy).exists(), "haproxy is not installed (.ci/run installs it)"
        pem = self.workdir / "site.pem"
        pem.write_text(
            (self.workdir / "cert.pem").read_text() + (self.workdir / "key.pem").read_text()
        )
        config = self.workdir / "haproxy.cfg"
        config.write_text(re.sub(r"\bcrt \S+", f"crt {pem}", block.text))
        done = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
        assert done.returncode == 0, f"{block.where}: {done.stdout}{done.stderr}"


def wait_listening(
    port: int, proc: subprocess.Popen[bytes], log: Path, ready: str = "", what: str = ""
) -> None:
    """Until ``port`` accepts and ``log`` holds ``ready``; fail if ``proc`` exits."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what or proc.args} exited:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
            continue
        if ready in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"{what or proc.args} did not start:\n{log.read_text()[-3000:]}")
