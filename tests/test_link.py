"""`DeviceLink` against a real HTTP server on loopback that answers what Serve's proxy and
the service would: the status codes decide between waiting, retrying and giving up."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from ams_ray.device.link import DeviceLink, DeviceRefused, ServerUnavailable, WireStats


class Scripted(BaseHTTPRequestHandler):
    """Answers the statuses in `server.script` in turn, then the last one forever."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        script = self.server.script
        status, body = script.pop(0) if len(script) > 1 else script[0]
        self.server.served.append(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        """Quiet: the test reads `served`, not the console."""


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    httpd.script, httpd.served = [], []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _link(httpd: ThreadingHTTPServer, **budget) -> DeviceLink:
    return DeviceLink(f"http://127.0.0.1:{httpd.server_port}", "cam-1", "token", WireStats(), timeout_s=10.0,
                      **budget)


NOT_ROUTED = (404, b"Path '/v1/streams/cam-1' not found. Ping http://.../-/routes for available routes.")
OK = (200, b'{"packet_sequence": 3}')


def test_a_404_while_the_service_deploys_is_waited_for(server):
    """Serve's proxy answers 404 until the app's routes are up (a restart): the device waits."""
    server.script[:] = [NOT_ROUTED, NOT_ROUTED, OK]
    link = _link(server)
    assert link.status() == {"packet_sequence": 3}
    assert server.served == [404, 404, 200] and link.stats.retries == 2


def test_a_404_that_lasts_names_the_address_as_the_likely_problem(server):
    server.script[:] = [NOT_ROUTED]
    with pytest.raises(ServerUnavailable, match="HTTP 404 .* check the server URL") as raised:
        _link(server, route_grace_s=1.0).status()
    assert "not found" in str(raised.value)  # the proxy's own words travel with it
    assert len(server.served) >= 2  # it was retried before giving up


def test_a_refusal_no_retry_fixes_ends_at_once(server):
    server.script[:] = [(403, b'{"detail": "token for cam-2 cannot act for cam-1"}')]
    with pytest.raises(DeviceRefused, match="HTTP 403: token for cam-2") as raised:
        _link(server).status()
    assert raised.value.status == 403 and server.served == [403]


def test_an_overloaded_server_is_retried_until_it_answers(server):
    server.script[:] = [(503, b'{"detail": "busy"}'), (429, b'{"detail": "slow down"}'), OK]
    link = _link(server)
    assert link.status() == {"packet_sequence": 3}
    assert server.served == [503, 429, 200] and link.stats.report()["requests"] == 3
