"""Transient failures between a ledger and a real node: retried, and a re-sent tx is harmless."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from chain_harness import GENESIS_CID, SPEC_HASH, Chain, federation_config

from flare.chain.connect import connect
from flare.chain.deploy import deploy
from flare.chain.devchain import dev_account_key
from flare.chain.ledger import open_ledger

pytestmark = pytest.mark.anvil


class LossyProxy(BaseHTTPRequestHandler):
    """Forwards JSON-RPC to anvil; the first time it sees `drop_method`, the node gets the
    request but the client gets a 503, as when a response is lost on the way back."""

    upstream = ""
    drop_method = "eth_sendRawTransaction"
    dropped = 0
    calls: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        method = json.loads(body).get("method", "")
        type(self).calls.append(method)
        answer = requests.post(
            self.upstream, data=body, timeout=10, headers={"Content-Type": "application/json"}
        )
        if method == self.drop_method and type(self).dropped == 0:
            type(self).dropped += 1
            self.send_response(503)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


@pytest.fixture
def proxy_url(anvil_url: str) -> Iterator[tuple[str, type[LossyProxy]]]:
    handler = type("Handler", (LossyProxy,), {"upstream": anvil_url, "dropped": 0, "calls": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_lost_send_response_is_retried_and_the_tx_lands_once(
    anvil_url: str, proxy_url: tuple[str, type[LossyProxy]]
) -> None:
    direct = Chain("anvil", anvil_url)
    record, _ = deploy(
        direct.w3,
        direct.key(0),
        model_spec_hash=SPEC_HASH,
        genesis_model=GENESIS_CID,
        config=federation_config(),
    )
    url, handler = proxy_url
    w3 = connect(url)
    owner_key = dev_account_key(w3.eth.chain_id, 0)
    sender = w3.eth.account.from_key(owner_key).address
    nonce_before = direct.w3.eth.get_transaction_count(sender)

    started = open_ledger(w3, record.address, private_key=owner_key).start()

    assert handler.dropped == 1
    assert handler.calls.count("eth_sendRawTransaction") == 2  # the provider re-sent it
    assert direct.w3.eth.get_transaction_count(sender) == nonce_before + 1  # landed once
    assert started.block > record.block
