"""Gossip over py-libp2p gossipsub, one topic per deployment.

py-libp2p runs on trio while the node loop is plain blocking code, so the host lives in one
dedicated thread running `trio.run`, and the loop's calls cross into it with trio's
`from_thread` helpers: `publish` hands the message to a trio task and returns at once,
received messages wait in a bounded inbox (gossipsub's own subscription queue is small, and
the loop may be busy training for minutes), and `peers` reads the connection table.

The host's identity is the node's ed25519 peer key, the one registered on-chain, so its
libp2p peer id is derived from public data. Peers are found through `bootstrap` multiaddrs
(each ending in `/p2p/<peer id>`) and, on one host, a shared `peers_dir` where every node
writes its own dialable address: compose services and the multi-process tests learn each
other's ids and OS-chosen ports that way. Unconnected known peers are dialled again every
`REDIAL_SECONDS`, so a peer that restarts or a partition that heals rejoins by itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flare.node.gossip import Inbox
from flare.protocol.errors import ConfigError, UnavailableError
from flare.protocol.ports import Peer

START_SECONDS = 30.0
REDIAL_SECONDS = 3.0
DIAL_SECONDS = 5.0
CLOSE_SECONDS = 5.0
INBOX = 4096
Log = Callable[[str], None]


class GossipStartError(UnavailableError):
    """The libp2p host could not start (the listen address is taken, a bad multiaddr)."""


def peer_id_of(public_key: bytes) -> str:
    """The libp2p peer id (base58) of an ed25519 public key: what `status` shows."""
    from libp2p.crypto.ed25519 import Ed25519PublicKey
    from libp2p.peer.id import ID

    return str(ID.from_pubkey(Ed25519PublicKey.from_bytes(public_key)).to_base58())


def check_multiaddr(text: str, *, what: str, peer: bool) -> None:
    """Refuse a malformed multiaddr at startup, naming the setting, rather than when dialled."""
    import multiaddr

    try:
        if not text.startswith("/"):
            raise ValueError("a multiaddr starts with /")
        addr = multiaddr.Multiaddr(text)
    except Exception as error:  # multiaddr raises several kinds
        raise ConfigError(
            f"{what} {text!r} is not a multiaddr: {error}",
            hint="write it like /ip4/127.0.0.1/tcp/4001"
            + ("/p2p/<peer id>" if peer else "")
            + " or /dns4/host/tcp/4001",
        ) from None
    if peer and "p2p" not in [p.name for p in addr.protocols()]:
        raise ConfigError(
            f"{what} {text!r} does not name the peer",
            hint="end it with /p2p/<peer id> (`flare-node status` on that node shows its id)",
        )


class Libp2pGossip:
    """A gossipsub host on its own trio thread (see the module docstring)."""

    def __init__(
        self,
        *,
        secret_key: bytes,
        topic: str,
        listen: str,
        announce: str | None = None,
        bootstrap: Sequence[str] = (),
        peers_dir: Path | None = None,
        log: Log | None = None,
    ) -> None:
        check_multiaddr(listen, what="[gossip] listen", peer=False)
        if announce:
            check_multiaddr(announce, what="[gossip] announce", peer=False)
        for entry in bootstrap:
            check_multiaddr(entry, what="[gossip] bootstrap entry", peer=True)
        logging.getLogger("libp2p").setLevel(logging.ERROR)  # its chatter is not the node's
        self._secret = secret_key
        self.topic = topic
        self._listen = listen
        self._announce = announce or None
        self._bootstrap = list(bootstrap)
        self._peers_dir = peers_dir
        self._log = log or (lambda message: None)
        self._inbox = Inbox(INBOX)
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._token: Any = None
        self._stop: Any = None
        self._nursery: Any = None
        self._pubsub: Any = None
        self._host: Any = None
        self._own_file: Path | None = None
        self.peer_id = ""
        self._own_id = b""
        self._peers: tuple[Peer, ...] = ()
        self._closed = False
        self.address = ""  # the dialable multiaddr, /p2p/<id> included
        self._thread = threading.Thread(target=self._main, name="flare-gossip", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_SECONDS) or self._failure is not None:
            self.close()
            reason = self._failure or f"no answer within {START_SECONDS:g} s"
            raise GossipStartError(
                f"the gossip host could not start on {listen}: {reason}",
                hint="pick a free port in [gossip] listen, or set [gossip] enabled = false",
            )

    # ---------------------------------------------------------------- the loop's side

    @property
    def running(self) -> bool:
        """Whether the host still runs (it stops only on close, or on an error it logged)."""
        return self._token is not None and self._thread.is_alive() and not self._closed

    def publish(self, data: bytes) -> None:
        import trio

        if self._token is None or self._nursery is None:
            return
        with contextlib.suppress(trio.RunFinishedError):  # queued: never waits on the thread
            self._token.run_sync_soon(self._nursery.start_soon, self._publish, data)

    def receive(self) -> list[bytes]:
        return self._inbox.drain()

    def peers(self) -> list[Peer]:
        """The connected peers as the host's thread last listed them (within a second)."""
        return list(self._peers) if self.running else []

    def close(self) -> None:
        import trio

        self._closed = True
        if self._token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._stop.set)
        self._thread.join(10.0)
        if self._own_file is not None:
            self._own_file.unlink(missing_ok=True)
            self._own_file = None

    # ---------------------------------------------------------------- the trio thread

    def _main(self) -> None:
        import trio

        try:
            trio.run(self._serve)
        except BaseException as error:  # reported to the starting thread
            self._failure = error
            if self._ready.is_set():
                self._log(f"gossip: the libp2p host stopped: {error}")
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        import multiaddr
        import trio
        from libp2p import new_host
        from libp2p.crypto.ed25519 import Ed25519PrivateKey
        from libp2p.crypto.keys import KeyPair
        from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
        from libp2p.pubsub.pubsub import Pubsub
        from libp2p.tools.anyio_service import background_trio_service

        private = Ed25519PrivateKey.new(self._secret)
        listen = multiaddr.Multiaddr(self._listen)
        host = new_host(key_pair=KeyPair(private, private.get_public_key()), listen_addrs=[listen])
        router = GossipSub(
            protocols=[PROTOCOL_ID_V11],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_initial_delay=0.1,
            heartbeat_interval=1,
        )
        pubsub = Pubsub(host, router)
        self._host, self._pubsub = host, pubsub
        self.peer_id = host.get_id().to_base58()
        self._own_id = host.get_id().to_bytes()
        async with (
            host.run(listen_addrs=[listen]),
            trio.open_nursery() as nursery,
            background_trio_service(pubsub),
            background_trio_service(router),
        ):
            if not host.get_transport_addrs():  # py-libp2p logs a failed bind and carries on
                raise OSError("could not listen there (the port is taken, or not this host's)")
            await pubsub.wait_until_ready()
            subscription = await pubsub.subscribe(self.topic)
            if self._closed:  # the starter gave up waiting: leave no address behind
                return
            self.address = self._dialable(host)
            self._write_own_address()
            self._stop = trio.Event()
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            nursery.start_soon(self._receive, subscription)
            nursery.start_soon(self._dial_known, host)
            nursery.start_soon(self._list_peers)
            await self._stop.wait()
            with trio.move_on_after(CLOSE_SECONDS):  # close connections, not just drop them
                for peer_id in list(host.get_connected_peers()):
                    await host.get_network().close_peer(peer_id)
            nursery.cancel_scope.cancel()

    def _dialable(self, host: Any) -> str:
        """The address peers should dial: `announce`, else the bound listen address (a
        wildcard bind announced as loopback, which only same-host peers can use)."""
        if self._announce:
            return f"{self._announce}/p2p/{self.peer_id}"
        bound = [str(a) for a in host.get_transport_addrs()] or [self._listen]
        addr = bound[0].replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/")
        return f"{addr}/p2p/{self.peer_id}"

    def _write_own_address(self) -> None:
        if self._peers_dir is None:
            return
        self._peers_dir.mkdir(parents=True, exist_ok=True)
        path = self._peers_dir / f"{self.peer_id}.addr"
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(self.address + "\n")
        temporary.replace(path)
        self._own_file = path

    def _known(self) -> list[str]:
        addrs = list(self._bootstrap)
        if self._peers_dir is not None and self._peers_dir.is_dir():
            for path in sorted(self._peers_dir.glob("*.addr")):
                if path.stem != self.peer_id:
                    with contextlib.suppress(Exception):  # unreadable, not text: not a peer
                        addrs.append(path.read_text().strip())
        return addrs

    async def _dial_known(self, host: Any) -> None:
        import multiaddr
        import trio
        from libp2p.peer.peerinfo import info_from_p2p_addr

        while True:
            connected = {str(p) for p in host.get_connected_peers()}
            try:
                known = self._known()
            except Exception:  # the peers directory vanished or turned unreadable: try later
                known = list(self._bootstrap)
            for text in known:
                try:
                    info = info_from_p2p_addr(multiaddr.Multiaddr(text))
                except Exception:  # noqa: S112 - a half-written or bad file: skip it
                    continue
                if str(info.peer_id) in connected or str(info.peer_id) == self.peer_id:
                    continue
                with trio.move_on_after(DIAL_SECONDS):
                    try:
                        await host.connect(info)
                    except Exception as error:  # a peer down is normal
                        self._log(f"gossip: could not reach {text}: {error}")
            await trio.sleep(REDIAL_SECONDS)

    async def _list_peers(self) -> None:
        """Keep `peers()`'s snapshot fresh, so the loop never waits on this thread to ask."""
        import trio

        while True:
            self._peers = tuple(self._connected())
            await trio.sleep(1.0)

    async def _receive(self, subscription: Any) -> None:
        while True:
            message = await subscription.get()
            if bytes(message.from_id) != self._own_id:  # pubsub hands subscribers their own too
                self._inbox.put(bytes(message.data))

    async def _publish(self, data: bytes) -> None:
        try:
            await self._pubsub.publish(self.topic, data)
        except Exception as error:  # best effort
            self._log(f"gossip: publishing failed: {error}")

    def _connected(self) -> list[Peer]:
        peers = []
        for peer_id in self._host.get_connected_peers():
            try:
                addrs = self._host.get_peerstore().addrs(peer_id)
            except Exception:  # a peer that dialled in is not in the peer store
                addrs = []
            peers.append(Peer(peer_id.to_base58(), str(addrs[0]) if addrs else None))
        return peers
