"""Round values and formulas: the quorum, round config bounds, the updates root."""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flare.protocol.errors import ConfigError
from flare.protocol.rounds import (
    MAX_COMMITTEE,
    InvalidRoundConfigError,
    RoundConfig,
    Seat,
    accumulate,
    address_bytes,
    next_seed,
    quorum,
    updates_root,
)
from flare.protocol.sortition import seat_word

ADDRESSES = st.binary(min_size=20, max_size=20).map(lambda raw: "0x" + raw.hex())
CIDS = st.binary(min_size=1, max_size=64)
POLICY = bytes.fromhex("01551220") + bytes(32)


@given(k=st.integers(1, MAX_COMMITTEE), bps=st.integers(1, 10_000))
def test_quorum_is_the_smallest_count_reaching_the_share(k: int, bps: int) -> None:
    needed = quorum(k, bps)

    assert needed == math.ceil(Fraction(k * bps, 10_000))
    assert Fraction(needed, k) >= Fraction(bps, 10_000) > Fraction(needed - 1, k)
    assert 1 <= needed <= k


def test_quorum_of_the_default_config() -> None:
    assert RoundConfig(review_policy=POLICY).quorum == 5  # 60% of 7 = 4.2, rounded up


@given(
    k=st.integers(-5, 80),
    bps=st.integers(-5, 10_100),
    train=st.integers(-1, 2**32),
    review=st.integers(-1, 2**32),
    claim=st.integers(-1, 2**32),
    minimum=st.integers(-1, 2**32),
    samples=st.integers(-1, 2**64),
    policy=st.binary(max_size=130),
)
def test_round_config_accepts_exactly_what_the_contract_accepts(
    k: int, bps: int, train: int, review: int, claim: int, minimum: int, samples: int, policy: bytes
) -> None:
    # The contract's _checkConfig, stated independently: k in 1..64, bps in 1..10000 with a
    # quorum that is a majority of k, windows > 0, claim window <= train window, minUpdates and
    # maxSamples >= 1, a policy CID of 1..128 bytes; and what the ABI types can carry.
    majority = k >= 1 and bps >= 1 and 2 * -(-k * bps // 10_000) > k
    valid = (
        1 <= k <= 64
        and 1 <= bps <= 10_000
        and majority
        and 1 <= train < 2**32
        and 1 <= review < 2**32
        and 0 <= claim <= train
        and 1 <= minimum < 2**32
        and 1 <= samples < 2**64
        and 1 <= len(policy) <= 128
    )
    fields = (k, bps, train, review, claim, minimum, samples)
    if valid:
        config = RoundConfig(*fields, review_policy=policy)
        assert config.as_tuple() == (*fields, policy)
        assert RoundConfig.from_tuple(config.as_tuple()) == config
    else:
        with pytest.raises(InvalidRoundConfigError, match="invalid round config"):
            RoundConfig(*fields, review_policy=policy)


@pytest.mark.parametrize(("k", "bps"), [(2, 5000), (4, 5000), (10, 5000), (64, 100)])
def test_a_quorum_that_is_no_majority_is_refused_with_the_reason(k: int, bps: int) -> None:
    with pytest.raises(InvalidRoundConfigError, match="not a majority"):
        RoundConfig(committee_size=k, quorum_bps=bps, review_policy=POLICY)


def test_updates_root_golden_vector() -> None:
    # Regenerate with an independent keccak (pysha3), in the contract's own terms,
    # keccak256(abi.encodePacked(node_b, keccak256(cid_b), node_a, keccak256(cid_a))):
    #   import sha3, hashlib; k = lambda b: sha3.keccak_256(b).digest()
    #   cid = lambda s: bytes.fromhex("01551220") + hashlib.sha256(s).digest()
    #   k(b"\x11" * 20 + k(cid(b"update b")) + b"\x22" * 20 + k(cid(b"update a"))).hex()
    def cid(label: bytes) -> bytes:
        return bytes.fromhex("01551220") + hashlib.sha256(label).digest()

    updates = [("0x" + "22" * 20, cid(b"update a")), ("0x" + "11" * 20, cid(b"update b"))]

    assert updates_root(updates).hex() == (
        "d45141c688d7366219c3360186eae3a8179303c8b6656bf1671e87cacfe99e30"
    )
    # No updates: keccak256 of nothing.
    assert updates_root([]).hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


@given(st.dictionaries(ADDRESSES, CIDS, min_size=1, max_size=8), st.randoms())
def test_updates_root_ignores_order_but_not_content(updates: dict[str, bytes], rng: object) -> None:
    entries = list(updates.items())
    shuffled = entries[:]
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    node, cid = entries[0]
    changed = [(node, cid + b"\x00"), *entries[1:]]

    assert updates_root(shuffled) == updates_root(entries)
    assert updates_root(changed) != updates_root(entries)


def test_updates_root_refuses_a_node_twice() -> None:
    node = "0x" + "ab" * 20

    with pytest.raises(ConfigError, match="appears twice"):
        updates_root([(node, b"\x01"), (node.upper().replace("0X", "0x"), b"\x02")])


def test_address_bytes_checks_the_checksum() -> None:
    checksummed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"

    assert address_bytes(checksummed) == bytes.fromhex(checksummed[2:])
    assert address_bytes(checksummed.lower()) == bytes.fromhex(checksummed[2:].lower())
    with pytest.raises(ConfigError, match="checksum"):
        address_bytes("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD")
    with pytest.raises(ConfigError, match="not an Ethereum address"):
        address_bytes("0x1234")


@pytest.mark.parametrize(
    "address",
    [
        "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",  # a valid checksum, but no prefix
        "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        "0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED",
        "  0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    ],
)
def test_address_bytes_requires_the_0x_prefix(address: str) -> None:
    with pytest.raises(ConfigError, match="must start with 0x") as caught:
        address_bytes(address)

    assert "checksum" not in caught.value.message  # the real problem is named, not a checksum


@given(rank=st.integers(0, 2**96 - 1), holder=ADDRESSES)
def test_a_seat_word_is_its_rank_above_its_holder(rank: int, holder: str) -> None:
    word = Seat(holder, rank).word

    assert word == seat_word(rank, address_bytes(holder))
    assert word >> 160 == rank
    assert word % 2**160 == int(holder, 16)


def test_seed_chain_golden_vector() -> None:
    # keccak256(abi.encode(bytes32 seed, uint256 prevrandao, uint64 round, address contract,
    # bytes32 accumulator)) as _openRound computes it; regenerate with eth_abi:
    #   keccak(encode(["bytes32","uint256","uint64","address","bytes32"], [...]))
    from eth_abi import encode
    from eth_utils.crypto import keccak

    seed, acc = b"\x01" * 32, b"\x02" * 32
    contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    expected = keccak(
        encode(["bytes32", "uint256", "uint64", "address", "bytes32"], [seed, 7, 3, contract, acc])
    )

    assert next_seed(seed, 7, 3, contract, acc) == expected
    assert accumulate(seed, acc) == keccak(seed + acc)
    assert next_seed(seed, 7, 3, contract, accumulate(acc, b"\x03" * 32)) != expected
