"""The ``http2_*`` settings, read the same way on every Gunicorn from 23 on.

Gunicorn 25+ defines these names itself, so they arrive through its own
``Config`` (file, command line, ``GUNICORN_CMD_ARGS``). Gunicorn 23/24 does
not know them: its ``Config`` silently drops unknown names from
``gunicorn.conf.py``, so h2workers reads them from that file itself.

Two settings get a different default under an h2workers worker class: a user
who picks an HTTP/2 worker wants HTTP/2, so ``http_protocols`` left unset
means ``h2,h1`` and ``http2_cleartext`` left unset means ``prior-knowledge``.
Anything the user did set is obeyed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import shlex
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from h2workers.errors import ConfigError

MAX_WINDOW = 2**31 - 1
CLEARTEXT_MODES = ("off", "prior-knowledge", "upgrade", "both")


class _IntRange:
    """Checks an integer setting; ``allowed`` is what the reference says."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.allowed = f"integer, {low:,} to {high:,}"

    def __call__(self, name: str, value: Any) -> int:
        low, high = self.low, self.high
        try:
            number = int(value, 0) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name} must be an integer between {low} and {high}, got {value!r}"
            ) from None
        if isinstance(value, bool) or not low <= number <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value!r}")
        return number


def _int_in(low: int, high: int) -> _IntRange:
    return _IntRange(low, high)


def _seconds(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds (0: off), got {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= 86400:
        raise ConfigError(f"{name} must be between 0 and 86400 seconds, got {value!r}")
    return number


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name} must be True or False, got {value!r}")


PARSERS = ("auto", "h11", "httptools")


def _parser(name: str, value: Any) -> str:
    parser = str(value).strip().lower()
    if parser not in PARSERS:
        raise ConfigError(f"{name} must be one of {', '.join(PARSERS)}; got {value!r}")
    if parser == "httptools" and importlib.util.find_spec("httptools") is None:
        raise ConfigError(f"{name} = 'httptools' needs httptools: pip install 'h2workers[asgi]'")
    return parser


def _protocols(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        items = [str(v).strip().lower() for v in value]
    elif isinstance(value, str):
        items = [p.strip().lower() for p in value.split(",") if p.strip()]
    else:
        raise ConfigError(f"{name} must be a comma-separated list of h2, h1; got {value!r}")
    if not items or any(p not in ("h1", "h2") for p in items) or len(set(items)) != len(items):
        raise ConfigError(f"{name} must list h2 and/or h1 once each, got {value!r}")
    return tuple(items)


def _cleartext(name: str, value: Any) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "prior-knowledge" if value else "off"
    mode = str(value).strip().lower()
    if mode not in CLEARTEXT_MODES:
        raise ConfigError(f"{name} must be one of {', '.join(CLEARTEXT_MODES)}; got {value!r}")
    return mode


@dataclass(frozen=True)
class _Spec:
    """One setting; ``docs/gen_reference.py`` writes the reference from these."""

    name: str
    cli: str  # Gunicorn 25+'s flag; "" for h2workers' own (config file only)
    default: Any  # the h2workers default when the user set nothing
    check: Callable[[str, Any], Any]
    doc: str = ""

    @property
    def allowed(self) -> str:
        return str(getattr(self.check, "allowed", ""))


_seconds.allowed = "seconds, 0 to 86,400 (0: off)"  # type: ignore[attr-defined]
_flag.allowed = "True or False"  # type: ignore[attr-defined]
_parser.allowed = ", ".join(PARSERS)  # type: ignore[attr-defined]
_protocols.allowed = "comma-separated h2, h1, in order of preference"  # type: ignore[attr-defined]
_cleartext.allowed = ", ".join(CLEARTEXT_MODES)  # type: ignore[attr-defined]

SPECS = (
    _Spec(
        "http_protocols", "--http-protocols", "h2,h1", _protocols,
        "Protocols served, offered over TLS by ALPN in this order; `h1` alone turns "
        "HTTP/2 off. Under an h2workers class an unset value means `h2,h1` (Gunicorn's "
        "own default is `h1`).",
    ),
    _Spec(
        "http2_cleartext", "--http2-cleartext", "prior-knowledge", _cleartext,
        "HTTP/2 without TLS: `prior-knowledge` (h2c: a connection that opens with "
        "the preface), `upgrade` (`Upgrade: h2c`; see the README on h2c smuggling "
        "before enabling it behind a proxy), `both`, or `off`.",
    ),
    _Spec(
        "http2_max_concurrent_streams", "--http2-max-concurrent-streams", 100,
        _int_in(1, MAX_WINDOW),
        "SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may have open on one "
        "connection; more are refused with RST_STREAM(REFUSED_STREAM).",
    ),
    _Spec(
        "http2_initial_window_size", "--http2-initial-window-size", 65535,
        _int_in(1, MAX_WINDOW),
        "SETTINGS_INITIAL_WINDOW_SIZE: request-body bytes a client may send on a "
        "stream before the app reads them.",
    ),
    _Spec(
        "http2_max_frame_size", "--http2-max-frame-size", 16384, _int_in(16384, 16777215),
        "SETTINGS_MAX_FRAME_SIZE: the largest frame payload a client may send.",
    ),
    _Spec(
        "http2_max_header_list_size", "--http2-max-header-list-size", 65536,
        _int_in(1, 2**32 - 1),
        "SETTINGS_MAX_HEADER_LIST_SIZE: a request's header list (RFC 9113 6.5.2 "
        "size) past it is answered 431; past twice it the connection ends "
        "(GOAWAY ENHANCE_YOUR_CALM).",
    ),
    # h2workers' own flood limits (not Gunicorn settings: config file only)
    _Spec(
        "http2_max_reset_streams", "", 1000, _int_in(1, MAX_WINDOW),
        "Burst of stream resets (the client's RST_STREAM, refused and malformed "
        "streams) a connection may cause; past it GOAWAY(ENHANCE_YOUR_CALM).",
    ),
    _Spec(
        "http2_reset_streams_per_second", "", 33, _int_in(0, 1_000_000),
        "How fast that budget refills.",
    ),
    _Spec(
        "http2_max_control_frames", "", 1000, _int_in(1, MAX_WINDOW),
        "Burst of control frames (SETTINGS, PING, PRIORITY, PRIORITY_UPDATE, "
        "WINDOW_UPDATE, empty DATA) a connection may send; past it "
        "GOAWAY(ENHANCE_YOUR_CALM).",
    ),
    _Spec(
        "http2_control_frames_per_second", "", 100, _int_in(0, 1_000_000),
        "How fast that budget refills.",
    ),
    # HTTP/1.1 (config file only)
    _Spec(
        "http1_early_hints", "", True, _flag,
        "Send 103 Early Hints to HTTP/1.1 clients too (`wsgi.early_hints`, "
        "`h2workers.preload`, ASGI's informational messages); HTTP/2 clients always "
        "get them. Turn it off behind a proxy that takes a 1xx response from its "
        "upstream for the final one: nginx before 1.29 does, and fails the request.",
    ),
    _Spec(
        "http1_parser", "", "auto", _parser,
        "AsgiH2: what parses HTTP/1.1. `httptools` (llhttp, in C; it comes with "
        "the `asgi` extra) is about twice as fast as `h11` (pure Python); `auto` "
        "takes httptools when it is installed. `Upgrade: h2c` in cleartext is "
        "always parsed by h11.",
    ),
    # AsgiH2's WebSockets (config file only)
    _Spec(
        "websocket_max_message_size", "", 16 << 20, _int_in(1, MAX_WINDOW),
        "AsgiH2: a larger WebSocket message closes the connection with 1009.",
    ),
    _Spec(
        "websocket_ping_interval", "", 20.0, _seconds,
        "AsgiH2: seconds between the server's WebSocket pings.",
    ),
    _Spec(
        "websocket_ping_timeout", "", 20.0, _seconds,
        "AsgiH2: no pong within this many seconds closes the WebSocket with 1011.",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class WebSocketSettings:
    """AsgiH2's WebSocket limits: a larger message closes with 1009; a ping
    every ``ping_interval`` s (0: none), and no pong within ``ping_timeout``
    closes with 1011."""

    max_message_size: int = 16 << 20
    ping_interval: float = 20.0
    ping_timeout: float = 20.0


@dataclass(frozen=True)
class H2Settings:
    """What the HTTP/2 core of one worker is configured with."""

    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int = 65536
    # Token buckets (burst, refill a second) against floods; see docs/security.md
    max_reset_streams: int = 1000
    reset_streams_per_second: int = 33
    max_control_frames: int = 1000
    control_frames_per_second: int = 100
    # SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441): set by a driver that
    # serves WebSockets over HTTP/2 (AsgiH2), never by the user
    enable_connect_protocol: bool = False


@dataclass(frozen=True)
class ServerOptions:
    """Everything h2workers resolved from the Gunicorn configuration."""

    protocols: tuple[str, ...]
    cleartext: str
    h2: H2Settings
    websocket: WebSocketSettings = WebSocketSettings()
    http1_early_hints: bool = True  # 103 responses to HTTP/1.1 clients
    http1_parser: str = "auto"  # AsgiH2's: auto, h11 or httptools

    @property
    def offers_h2(self) -> bool:
        return "h2" in self.protocols

    @property
    def alpn(self) -> list[str]:
        names = {"h2": "h2", "h1": "http/1.1"}
        return [names[p] for p in self.protocols]

    @property
    def fast_http1(self) -> bool:
        """AsgiH2 parses HTTP/1.1 with httptools (else h11)."""
        if self.http1_parser == "auto":
            return importlib.util.find_spec("httptools") is not None
        return self.http1_parser == "httptools"

    @property
    def prior_knowledge(self) -> bool:
        return self.offers_h2 and self.cleartext in ("prior-knowledge", "both")

    @property
    def upgrade(self) -> bool:
        return self.offers_h2 and self.cleartext in ("upgrade", "both")


_resolved: weakref.WeakKeyDictionary[Any, ServerOptions] = weakref.WeakKeyDictionary()


def server_options(cfg: Any) -> ServerOptions:
    """Resolve (once per Gunicorn ``Config``) and validate the settings.

    Raises ConfigError naming the setting and its allowed range.
    """
    try:
        return _resolved[cfg]
    except KeyError:
        pass
    except TypeError:  # a config object that cannot be weakly referenced
        return _resolve(cfg)
    options = _resolve(cfg)
    _resolved[cfg] = options
    return options


def _resolve(cfg: Any) -> ServerOptions:
    known: Mapping[str, Any] = getattr(cfg, "settings", {})
    from_file = ConfigFileValues(_config_location(cfg))
    values = {}
    for spec in SPECS:
        raw = _user_value(spec, known, from_file)
        values[spec.name] = spec.check(spec.name, spec.default if raw is _UNSET else raw)
    return ServerOptions(
        protocols=values["http_protocols"],
        cleartext=values["http2_cleartext"],
        h2=H2Settings(
            max_concurrent_streams=values["http2_max_concurrent_streams"],
            initial_window_size=values["http2_initial_window_size"],
            max_frame_size=values["http2_max_frame_size"],
            max_header_list_size=values["http2_max_header_list_size"],
            max_reset_streams=values["http2_max_reset_streams"],
            reset_streams_per_second=values["http2_reset_streams_per_second"],
            max_control_frames=values["http2_max_control_frames"],
            control_frames_per_second=values["http2_control_frames_per_second"],
        ),
        websocket=WebSocketSettings(
            max_message_size=values["websocket_max_message_size"],
            ping_interval=values["websocket_ping_interval"],
            ping_timeout=values["websocket_ping_timeout"],
        ),
        http1_early_hints=values["http1_early_hints"],
        http1_parser=values["http1_parser"],
    )


_UNSET: Any = object()


def _user_value(spec: _Spec, known: Mapping[str, Any], from_file: ConfigFileValues) -> Any:
    """The value the user set for this setting, or _UNSET."""
    setting = known.get(spec.name)
    if setting is None:  # Gunicorn 23/24: only the config file can carry it
        return from_file.get(spec.name)
    value = setting.get()
    if value != setting.validator(setting.default):
        return value
    # Equal to Gunicorn's default: set explicitly, or never touched?
    if from_file.get(spec.name) is not _UNSET or _on_command_line(spec.cli):
        return value
    return _UNSET


def _on_command_line(flag: str) -> bool:
    if not flag:
        return False
    args = list(sys.argv[1:]) + shlex.split(os.environ.get("GUNICORN_CMD_ARGS", ""))
    return any(a == flag or a.startswith(flag + "=") for a in args)


def _config_location(cfg: Any) -> str | None:
    try:
        location = cfg.config
    except AttributeError:
        return None
    return location if isinstance(location, str) and location else None


class ConfigFileValues:
    """Top-level names assigned in gunicorn.conf.py, read without running it
    where possible: literal assignments are parsed; only a file that computes
    one of our values is executed (as Gunicorn itself does on every load)."""

    def __init__(self, location: str | None) -> None:
        self._location = location
        self._values: dict[str, Any] | None = None

    def get(self, name: str) -> Any:
        if self._values is None:
            self._values = self._load()
        return self._values.get(name, _UNSET)

    def _load(self) -> dict[str, Any]:
        location = self._location
        if location is None:
            return {}
        if location.startswith("python:"):
            return dict(vars(importlib.import_module(location[len("python:") :])))
        if not os.path.exists(location):
            return {}
        with open(location, encoding="utf-8") as source:
            text = source.read()
        wanted = {spec.name for spec in SPECS}
        literal, computed = _literal_assignments(text, wanted)
        if computed:
            return _execute(location, text)
        return literal


def _literal_assignments(text: str, wanted: set[str]) -> tuple[dict[str, Any], bool]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}, False  # Gunicorn itself reports a broken config file
    values: dict[str, Any] = {}
    computed = False
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in wanted:
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    computed = True
    return values, computed


def _execute(location: str, text: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__file__": location, "__name__": "__config__"}
    exec(compile(text, location, "exec"), namespace)
    return namespace
