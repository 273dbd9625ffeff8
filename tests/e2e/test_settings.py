"""The http2_* settings on the wire: the server's one SETTINGS frame, the
concurrency limit (REFUSED_STREAM), and startup refusing invalid values."""

from __future__ import annotations

import os
import re

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from .util import H2Client, summary

CONFIGURED = {
    SettingCodes.MAX_CONCURRENT_STREAMS: 7,
    SettingCodes.INITIAL_WINDOW_SIZE: 100000,
    SettingCodes.MAX_FRAME_SIZE: 32768,
    SettingCodes.MAX_HEADER_LIST_SIZE: 12345,
}
CONFIG_TEXT = (
    "http2_max_concurrent_streams = 7\n"
    "http2_initial_window_size = 100000\n"
    "http2_max_frame_size = 32768\n"
    "http2_max_header_list_size = 12345\n"
)
CLI_ARGS = [
    "--http2-max-concurrent-streams", "7",
    "--http2-initial-window-size", "100000",
    "--http2-max-frame-size", "32768",
    "--http2-max-header-list-size", "12345",
]  # fmt: skip


@pytest.fixture(scope="module")
def configured(module_server):
    return module_server(tls=False, config_text=CONFIG_TEXT)


@pytest.fixture(scope="module")
def configured_tls(module_server):
    return module_server(tls=True, config_text=CONFIG_TEXT)


def _check_settings(client: H2Client) -> None:
    client.handshake()
    sid = client.request("/hello")
    client.response(sid)
    client.pump(0.3)  # anything sent late would be here by now
    sent = client.settings_frames()
    assert len(sent) == 1, [summary(f) for f in client.frames]
    values = dict(sent[0].settings)
    for code, value in CONFIGURED.items():
        assert values.get(code) == value, (code, values)
    # the first frame the server sends is its SETTINGS (RFC 9113 3.4)
    assert client.frames[0] is sent[0]


def test_settings_frame_from_config_file(configured):
    with H2Client(configured.port) as client:
        _check_settings(client)


def test_settings_frame_over_tls(configured_tls, tls_files):
    with H2Client(configured_tls.port, tls_files.client_context(alpn=["h2"])) as client:
        _check_settings(client)


def test_settings_frame_from_the_cli(server, gunicorn_ver):
    if gunicorn_ver < (25,):
        pytest.skip("the --http2-* flags are Gunicorn 25+; the config file covers older")
    srv = server(tls=False, args=CLI_ARGS)
    with H2Client(srv.port) as client:
        _check_settings(client)


def test_default_settings(module_server):
    srv = module_server(tls=False)
    with H2Client(srv.port) as client:
        client.handshake()
        values = dict(client.settings_frames()[0].settings)
    assert values[SettingCodes.MAX_CONCURRENT_STREAMS] == 100
    assert values.get(SettingCodes.INITIAL_WINDOW_SIZE, 65535) == 65535
    assert values.get(SettingCodes.MAX_FRAME_SIZE, 16384) == 16384
    assert values[SettingCodes.MAX_HEADER_LIST_SIZE] == 65536


def test_configured_max_frame_size_is_accepted_inbound(configured):
    """The client may send DATA frames as large as the advertised 32768."""
    payload = os.urandom(200_000)
    with H2Client(configured.port) as client:
        client.handshake()
        assert client.conn.max_outbound_frame_size == 32768
        response = client.get("/echo", method="POST", body=payload)
        assert response.status == 200 and bytes(response.data) == payload
        assert not client.goaways()


def test_configured_initial_window_is_granted(configured):
    """A client may send the whole advertised 100000-byte stream window at once."""
    with H2Client(configured.port) as client:
        client.handshake()
        sid = client.request("/upload-count", "POST", end=False)
        assert client.conn.local_flow_control_window(sid) == 100000
        client.send_body(sid, b"z" * 100000, end=True)
        response = client.response(sid)
        assert response.status == 200 and response.json()["count"] == 100000


def test_stream_over_the_limit_is_refused(module_server):
    srv = module_server(tls=False, threads=8, config_text="http2_max_concurrent_streams = 3\n")
    with H2Client(srv.port) as client:
        client.handshake()
        client.ignore_stream_limit()
        sids = [client.request("/sleep?s=0.5") for _ in range(4)]  # no waiting in between
        for sid in sids:
            client.response(sid)
        assert [client.streams[s].status for s in sids[:3]] == [200, 200, 200]
        assert client.streams[sids[3]].reset == ErrorCodes.REFUSED_STREAM
        assert client.resets() == {sids[3]: ErrorCodes.REFUSED_STREAM}
        assert not client.goaways()
        # the connection goes on serving
        assert client.get("/hello").status == 200


def test_header_list_over_the_limit_gets_431(configured):
    """http2_max_header_list_size = 12345: a bigger block is refused on its stream.
    Each field stays under Gunicorn's limit_request_field_size (8190)."""
    over = [(f"x-big-{i}", "a" * 5000) for i in range(3)]  # 15000 + overhead > 12345
    under = [(f"x-big-{i}", "b" * 3000) for i in range(3)]  # 9000 + overhead < 12345
    with H2Client(configured.port) as client:
        client.handshake()
        response = client.get("/headers", headers=over)
        assert response.status == 431
        fits = client.get("/headers", headers=under)
        assert fits.status == 200 and fits.json()["x-big-2"] == "b" * 3000
        assert not client.goaways()
    with H2Client(configured.port) as client:  # two of those fields fit
        assert client.get("/headers", headers=over[:2]).status == 200


@pytest.mark.parametrize(
    ("config_text", "setting"),
    [
        ("http2_max_frame_size = 5\n", "http2_max_frame_size"),
        ("http2_max_frame_size = 16777216\n", "http2_max_frame_size"),
        ('http_protocols = "h3"\n', "http_protocols"),
        ("http2_initial_window_size = 2**31\n", "http2_initial_window_size"),
        ("http2_max_concurrent_streams = 0\n", "http2_max_concurrent_streams"),
        ('http2_cleartext = "sometimes"\n', "http2_cleartext"),
    ],
)
def test_invalid_setting_in_config_file_fails_startup(server, config_text, setting):
    code, output = server.run_to_exit(config_text=config_text)
    assert code not in (None, 0), output
    assert setting in output, output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--http2-max-frame-size", "5"], "http2_max_frame_size"),
        # Gunicorn 27's words ("concurrent streams"), or ours where Gunicorn
        # lets 0 through (25.0)
        (["--http2-max-concurrent-streams", "0"], "concurrent[_ ]streams"),
        (["--http-protocols", "h3"], "h3"),
    ],
)
def test_invalid_setting_on_the_cli_fails_startup(server, gunicorn_ver, args, needle):
    if gunicorn_ver < (25,):
        pytest.skip("the --http2-* flags are Gunicorn 25+")
    code, output = server.run_to_exit(args=args)
    assert code not in (None, 0), output
    assert re.search(needle, output.lower()), output
