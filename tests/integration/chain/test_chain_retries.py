"""Transient failures between a ledger and a real node: retried, and a re-sent tx is harmless."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chain_harness import GENESIS_CID, SPEC_HASH, Chain, federation_config
from local_http import ForwardingProxy, serving

from flare.chain.connect import connect
from flare.chain.deploy import deploy
from flare.chain.devchain import dev_account_key
from flare.chain.ledger import open_ledger

pytestmark = pytest.mark.anvil


class LossyProxy(ForwardingProxy):
    """Forwards JSON-RPC to anvil; the first time it sees `drop_method`, the node gets the
    request but the client gets a 503, as when a response is lost on the way back."""

    drop_method = "eth_sendRawTransaction"
    dropped = 0
    calls: list[str]

    def lose_answer(self, method: str) -> bool:
        type(self).calls.append(method)
        if method == self.drop_method and type(self).dropped == 0:
            type(self).dropped += 1
            return True
        return False


@pytest.fixture
def proxy_url(anvil_url: str) -> Iterator[tuple[str, type[LossyProxy]]]:
    handler = type("Handler", (LossyProxy,), {"upstream": anvil_url, "dropped": 0, "calls": []})
    with serving(handler) as url:
        yield url, handler


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
