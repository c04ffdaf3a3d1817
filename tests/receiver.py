"""A local HTTP receiver of webhooks (a real server on 127.0.0.1, in a thread) and the README's check of
their signature, shared by the webhook tests and the end-to-end automation tests."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def signature_valid(secret: str, headers, body: bytes, *, tolerance: int = 300) -> bool:
    """The README's verification snippet."""
    timestamp = headers["X-LeadEngine-Timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-LeadEngine-Signature"])


class Receiver:
    """An HTTP server in a thread that records every POST and answers from a script: a list of status
    codes (or "sleep" to sleep past the timeout) used one per request, then 200. It listens on 127.0.0.1,
    which webhooks reach only with WEBHOOK_ALLOW_PRIVATE_TARGETS (and plain http with DEBUG or
    WEBHOOK_ALLOW_HTTP) on: the `receiver_allowed` fixture.

    `each_key` is a script per Idempotency-Key instead: the n-th request carrying a key gets each_key[n]
    (e.g. [500, 500]: every lead fails twice, then succeeds), then the shared script applies."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        self.script: list = []
        self.each_key: list = []
        self.seen: Counter[str] = Counter()
        self.connections = 0  # every TCP connection accepted, whether or not a request came on it
        self.on_request = None  # called with the request's headers before it is answered (a fault to inject)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers), body))
                    answer = receiver._answer(self.headers.get("Idempotency-Key", ""))
                if receiver.on_request is not None:
                    receiver.on_request(dict(self.headers))
                if answer == "sleep":
                    time.sleep(1.5)
                    answer = 200
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            # A delivery run posts WEBHOOK_CONCURRENCY at a time, racing runs several times that: a real
            # server's backlog, not socketserver's 5 (a full backlog drops connections, which are retried).
            request_queue_size = 256

            def verify_request(self, request, client_address) -> bool:
                with receiver.lock:
                    receiver.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/leads"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _answer(self, key: str):
        """Under self.lock: the answer to the next request carrying `key`."""
        nth = self.seen[key]
        self.seen[key] += 1
        if nth < len(self.each_key):
            return self.each_key[nth]
        return self.script.pop(0) if self.script else 200

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="receiver_allowed")
def receiver_allowed_fixture(settings):
    """Settings under which webhooks may be posted to the Receiver: private targets and plain http."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_ALLOW_HTTP = True
    return settings


# What a worker process needs in its environment to post to the Receiver.
RECEIVER_ENV = {"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOK_ALLOW_HTTP": "true"}


@pytest.fixture(name="receiver")
def receiver_fixture():
    """A Receiver, closed after the test."""
    server = Receiver()
    yield server
    server.close()
