"""Independent HTTP/2 clients behind one interface, for the interop matrix.

Each client runs with its own default settings (windows, frame sizes, header
table) unless a variant says otherwise, so the server meets what users'
clients really send. A client implements the checks it can express; the
matrix in test_clients.py runs each check a client has, nothing else.

Results are plain dicts: ``status``, ``sha256`` and ``bytes`` of a body,
``ok`` for a concurrent batch, ``body`` for an upload's JSON answer,
``trailers`` where the client exposes them, ``connections`` where it counts
the connections it opened.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, TLSFiles
from tests.e2e.util import nghttp_get

HERE = Path(__file__).resolve().parent
Result = dict[str, Any]


def _run(cmd: list[str], timeout: float = 180.0) -> subprocess.CompletedProcess[bytes]:
    if shutil.which(cmd[0]) is None and not Path(cmd[0]).exists():
        raise AssertionError(f"{cmd[0]} is not installed (.ci/run installs it)")
    out = subprocess.run(cmd, capture_output=True, timeout=timeout)
    assert out.returncode == 0, (cmd[:8], out.stderr.decode(errors="replace")[-1500:])
    return out


def _digest(data: bytes) -> Result:
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


class Client:
    name = ""
    checks: frozenset[str] = frozenset()

    def __init__(self, tls: TLSFiles) -> None:
        self.tls = tls

    def __repr__(self) -> str:
        return self.name

    def cannot(self, check: str, srv: Server) -> str | None:
        """Why this client cannot run ``check`` against ``srv``, if it cannot."""
        if check not in self.checks:
            return f"{self.name} cannot express '{check}'"
        return None


class JsonTool(Client):
    """A program of ours on another HTTP/2 stack (Go, Node.js)."""

    checks = frozenset({"get", "concurrent", "download", "upload", "trailers", "cancel"})

    def command(self, srv: Server) -> list[str]:
        raise NotImplementedError

    def call(self, srv: Server, *args: str) -> Result:
        out = _run([*self.command(srv), *args])
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def get(self, srv: Server, url: str) -> Result:
        return self.call(srv, "get", url)

    def download(self, srv: Server, url: str) -> Result:
        return self.call(srv, "download", url)

    def concurrent(self, srv: Server, url: str, n: int) -> Result:
        return self.call(srv, "concurrent", url, str(n))

    def upload(self, srv: Server, url: str, path: Path) -> Result:
        result = self.call(srv, "upload", url, str(path))
        result["json"] = json.loads(result["body"])
        return result

    def trailers(self, srv: Server, url: str, path: Path) -> Result:
        result = self.call(srv, "trailers", url, str(path))
        result["trailers"] = {k.lower(): v for k, v in result["trailers"].items()}
        return result

    def cancel(self, srv: Server, url: str, then: str) -> Result:
        return self.call(srv, "cancel", url, then)


class GoClient(JsonTool):
    """net/http (TLS) and golang.org/x/net/http2 (h2c), built once per run."""

    name = "go"
    binary: Path | None = None

    @classmethod
    def build(cls, into: Path) -> None:
        env = {
            "GO111MODULE": "off",
            "GOPATH": "/usr/share/gocode",  # Debian's golang-golang-x-net-dev
            "GOCACHE": str(into / "cache"),
            "HOME": str(into),
            "PATH": "/usr/bin:/bin:/usr/local/bin",
        }
        target = into / "goclient"
        out = subprocess.run(
            ["go", "build", "-o", str(target), "."],
            cwd=HERE / "goclient", env=env, capture_output=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        cls.binary = target

    def command(self, srv: Server) -> list[str]:
        assert self.binary is not None
        transport = ["-ca", str(self.tls.ca)] if srv.tls else ["-h2c"]
        return [str(self.binary), *transport]


class NodeClient(JsonTool):
    name = "node"

    def command(self, srv: Server) -> list[str]:
        transport = ["--ca", str(self.tls.ca)] if srv.tls else []
        return ["node", str(HERE / "node_client.mjs"), *transport]


class Curl(Client):
    name = "curl"
    checks = frozenset({"get", "concurrent", "download", "upload", "trailers"})

    def cannot(self, check: str, srv: Server) -> str | None:
        if check == "concurrent" and not srv.tls:
            # Seen with Hypercorn and Gunicorn 27's own h2c too: curl 7.88.1
            # completes the first transfer, then fails the rest with "Error
            # in the HTTP2 framing layer" without sending a frame.
            return "curl 7.88 fails parallel transfers over h2c prior knowledge (any server)"
        return super().cannot(check, srv)

    def base(self, srv: Server) -> list[str]:
        version = (
            ["--http2", "--cacert", str(self.tls.ca)] if srv.tls else ["--http2-prior-knowledge"]
        )
        return ["curl", "-sS", "--fail-with-body", "--max-time", "170", *version]

    def get(self, srv: Server, url: str) -> Result:
        out = _run([*self.base(srv), "-w", "%{stderr}%{http_version} %{response_code}", url])
        proto, status = out.stderr.decode().split()
        return {**_digest(out.stdout), "status": int(status), "proto": proto}

    download = get

    def concurrent(self, srv: Server, url: str, n: int) -> Result:
        # Without --parallel-immediate curl waits for the first connection
        # and multiplexes the rest onto it.
        out = _run([
            *self.base(srv), "-Z", "--parallel-max", str(n),
            "-w", "%{response_code} %{http_version} %{num_connects}\n",
            *[arg for _ in range(n) for arg in ("-o", "/dev/null", url)],
        ])  # fmt: skip
        rows = [line.split() for line in out.stdout.decode().splitlines()]
        ok = sum(1 for code, proto, _ in rows if code == "200" and proto == "2")
        return {"ok": ok, "connections": sum(int(c) for _, _, c in rows)}

    def upload(self, srv: Server, url: str, path: Path) -> Result:
        out = _run([*self.base(srv), "--data-binary", f"@{path}", url])
        return {"status": 200, "json": json.loads(out.stdout)}

    def trailers(self, srv: Server, url: str, path: Path) -> Result:
        # curl writes trailers where it writes headers (-D).
        out = _run([*self.base(srv), "-D", "/dev/stderr", "--data-binary", f"@{path}", url])
        return {
            **_digest(out.stdout),
            "status": 200,
            "trailers": _header_lines(out.stderr.decode(errors="replace")),
        }


def _header_lines(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith((" ", "<", ">", "[")):
            found[name.strip().lower()] = value.strip()
    return found


class Nghttp(Client):
    name = "nghttp"
    checks = frozenset({"get", "concurrent", "download", "upload", "trailers"})

    def __init__(self, tls: TLSFiles, *flags: str, label: str = "", most: int = 0) -> None:
        super().__init__(tls)
        self.flags = list(flags)
        self.name = f"nghttp{label}"
        self.most = most  # the largest body worth its time (a tiny window is slow)

    def get(self, srv: Server, url: str) -> Result:
        return {**_digest(nghttp_get(url, *self.flags, timeout=180)), "status": 200}

    download = get

    def concurrent(self, srv: Server, url: str, n: int) -> Result:
        out = _run(["nghttp", *self.flags, "-n", "-s", "-m", str(n), url])
        # -s lists one line per response; any failure makes nghttp exit non-zero.
        rows = re.findall(r"^\s*\d+\s+\+\S+\s+\+\S+\s+\S+\s+200\s", out.stdout.decode(), re.M)
        return {"ok": len(rows)}

    def upload(self, srv: Server, url: str, path: Path) -> Result:
        out = _run(["nghttp", *self.flags, "-d", str(path), url])
        return {"status": 200, "json": json.loads(out.stdout)}

    def trailers(self, srv: Server, url: str, path: Path) -> Result:
        out = _run(["nghttp", *self.flags, "-v", "-d", str(path), url])
        verbose = out.stdout.decode(errors="replace")
        trailers = dict(re.findall(r"recv \(stream_id=\d+\) (x-[\w-]+): (\S+)$", verbose, re.M))
        return {"status": 200, "trailers": trailers}


class H2load(Client):
    """h2load counts bytes and outcomes; it checks no content."""

    name = "h2load"
    checks = frozenset({"get", "concurrent", "download", "upload"})

    def _load(self, url: str, *args: str) -> tuple[dict[str, int], str]:
        out = _run(["h2load", "-n", "1", "-c", "1", *args, url])
        text = out.stdout.decode()
        match = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", text)
        assert match, text
        data = re.search(r"\((\d+)\) data", text)
        return {"succeeded": int(match[1]), "failed": int(match[2]) + int(match[3]) + int(match[4]),
                "data": int(data[1]) if data else -1}, text  # fmt: skip

    def get(self, srv: Server, url: str) -> Result:
        counts, _ = self._load(url)
        return {"status": 200 if counts["succeeded"] == 1 else 0, "bytes": counts["data"]}

    download = get

    def concurrent(self, srv: Server, url: str, n: int) -> Result:
        counts, _ = self._load(url, "-n", str(n), "-m", str(n))
        return {"ok": counts["succeeded"], "failed": counts["failed"]}

    def upload(self, srv: Server, url: str, path: Path) -> Result:
        counts, _ = self._load(url, "-d", str(path))
        return {"status": 200 if counts["succeeded"] == 1 else 0}


class Httpx(Client):
    name = "httpx"
    checks = frozenset({"get", "concurrent", "download", "upload", "cancel"})

    def _client(self, srv: Server) -> httpx.Client:
        if srv.tls:
            return httpx.Client(http2=True, verify=self.tls.client_context(alpn=None), timeout=120)
        return httpx.Client(http1=False, http2=True, timeout=120)

    def get(self, srv: Server, url: str) -> Result:
        with self._client(srv) as client, client.stream("GET", url) as response:
            digest, size = hashlib.sha256(), 0
            for piece in response.iter_raw():
                digest.update(piece)
                size += len(piece)
            return {"status": response.status_code, "proto": response.http_version,
                    "sha256": digest.hexdigest(), "bytes": size}  # fmt: skip

    download = get

    def concurrent(self, srv: Server, url: str, n: int) -> Result:
        """``n`` requests at once on one connection, with httpx's async
        client. Its sync client, shared by ``n`` threads, takes a stream id
        outside the lock it sends HEADERS under, so two threads can send
        HEADERS out of id order: a connection error (RFC 9113 5.1.1,
        StreamIDTooLowError) that every conforming server answers with
        GOAWAY(PROTOCOL_ERROR), about once in 20 runs of 100."""
        import asyncio

        async def run() -> list[httpx.Response]:
            verify = self.tls.client_context(alpn=None) if srv.tls else True
            async with httpx.AsyncClient(
                http1=srv.tls, http2=True, verify=verify, timeout=120
            ) as client:
                await client.get(url)
                return list(await asyncio.gather(*(client.get(url) for _ in range(n))))

        responses = asyncio.run(run())
        ok = sum(1 for r in responses if r.status_code == 200 and r.http_version == "HTTP/2")
        return {"ok": ok}

    def upload(self, srv: Server, url: str, path: Path) -> Result:
        with self._client(srv) as client, path.open("rb") as body:
            response = client.post(url, content=iter(lambda: body.read(65536), b""))
        return {"status": response.status_code, "json": response.json()}

    def cancel(self, srv: Server, url: str, then: str) -> Result:
        with self._client(srv) as client:
            with client.stream("GET", url) as response:
                got = 0
                for piece in response.iter_raw():
                    got += len(piece)
                    if got >= 1 << 20:
                        break  # closing the response resets the stream
            after = client.get(then)
        return {"cancelled_after": got, "status": after.status_code, **_digest(after.content)}
