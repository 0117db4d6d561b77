"""Damage in the embedded store: how a block it cannot serve is named, and what a walk finds.

A block the store held and can no longer serve is reported as corrupt, with the pack file that
held it, never as "not in the store": that answer sends an operator looking for content that the
store has in fact lost, and hides a failing disk. The store knows a block is lost when a pack
lists it but cannot serve it (cut short, bad bytes), or when its file is pinned (gc never
removes a pinned block, so a pinned block that is gone was lost), and it finds a block bad
when its bytes fail their hash (`diagnose`). `walk` goes through every pin and collects each
damaged block rather than stopping at the first, for `verify` and gc.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from flare.node.store.packs import CUT_SHORT, PackIndex, read_block
from flare.protocol.cid import CODEC_DAG_PB, Cid, StorageIntegrityError
from flare.protocol.store import (
    BlockNotFoundError,
    DamagedBlock,
    DamagedPack,
    DamagedPin,
    StoreCorruptionError,
)

__all__ = ["Survey", "damaged_packs", "diagnose", "kept_for_repair", "missing_error", "walk"]


@dataclass
class Survey:
    """What a walk of the pins found: the blocks checked, and the damage."""

    live: dict[bytes, list[Cid]] = field(default_factory=dict)  # checked: digest -> its links
    damaged: dict[str, list[DamagedBlock]] = field(default_factory=dict)  # pin -> its faults
    lost: set[bytes] = field(default_factory=set)  # digests of the damaged blocks
    unknown: list[str] = field(default_factory=list)  # lost inner nodes: what is under them?
    bytes: int = 0

    def pins(self) -> tuple[DamagedPin, ...]:
        return tuple(DamagedPin(pin, tuple(blocks)) for pin, blocks in sorted(self.damaged.items()))


def walk(pins: list[str], visit: Callable[[Cid, Cid], tuple[list[Cid], int]]) -> Survey:
    """Walk every pin's DAG, noting each damaged block instead of stopping at the first.

    `visit(root, cid)` checks one block and returns its links and the bytes it read, or raises
    for a damaged block. A block shared by several pins is visited once and counted against
    each pin that reaches it.
    """
    survey = Survey()
    faults: dict[bytes, DamagedBlock] = {}
    for text in pins:
        root = Cid.parse(text)
        seen: set[bytes] = set()
        todo = [root]
        while todo:
            cid = todo.pop()
            if cid.digest in seen:
                continue
            seen.add(cid.digest)
            fault = faults.get(cid.digest)
            if fault is None and cid.digest not in survey.live:
                try:
                    survey.live[cid.digest], read = visit(root, cid)
                    survey.bytes += read
                except (StorageIntegrityError, BlockNotFoundError) as error:
                    fault = faults[cid.digest] = _damaged_block(cid, error)
                    if cid.codec == CODEC_DAG_PB:
                        survey.unknown.append(cid.text)
            if fault is not None:
                survey.damaged.setdefault(text, []).append(fault)
                survey.lost.add(cid.digest)
            else:
                todo.extend(survey.live[cid.digest])
    return survey


def _damaged_block(cid: Cid, error: StorageIntegrityError | BlockNotFoundError) -> DamagedBlock:
    if isinstance(error, StoreCorruptionError):
        return DamagedBlock(cid.text, error.reason, error.packs[0] if error.packs else None)
    if isinstance(error, StorageIntegrityError):
        return DamagedBlock(cid.text, error.reason)
    return DamagedBlock(cid.text, "it is missing")


def missing_error(
    index: PackIndex, location: str, root: Cid, cid: Cid, *, pinned: bool
) -> BlockNotFoundError | StoreCorruptionError:
    """The error for a block of `root` with no usable copy: corrupt if the store should have it.

    It should when a pack is known to have held it, when `root` is pinned, or when the rest of
    the file is here and a damaged pack whose contents are not all known may have held it.
    """
    lost = index.lost(cid.digest)
    if lost:
        paths = tuple(index.path(pack) for pack, _ in lost)
        problem = "; ".join(
            f"pack {path} is cut short inside it"
            if why == CUT_SHORT
            else f"its bytes in pack {path} do not hash to it"
            for path, (_, why) in zip(paths, lost, strict=True)
        )
        return StoreCorruptionError(cid.text, root.text, location, problem, packs=paths, lost=True)
    unknown = {
        index.path(pack): damage for pack, damage in index.damaged().items() if not damage.complete
    }
    if not pinned and not (unknown and cid != root):
        return BlockNotFoundError(root.text, location, block=cid.text)
    if cid == root:
        problem = "it is pinned, but missing"
    elif pinned:
        problem = "the file is pinned, but this block of it is missing"
    else:
        problem = "the file's root is here, but this block of it is missing"
    if unknown:
        problem += "; damaged pack(s) may have held it: " + ", ".join(
            f"{path} ({damage.problem})" for path, damage in sorted(unknown.items())
        )
    else:
        problem += "; no pack is damaged, so a pack file was deleted, moved or lost"
    return StoreCorruptionError(cid.text, root.text, location, problem, lost=True)


def diagnose(index: PackIndex, location: str, root: Cid, cid: Cid) -> StoreCorruptionError | None:
    """Why the stored copy of `cid` failed its hash, or None if it reads well now.

    The copy is set aside, so that adding the file writes the block again: a block cut short
    means its pack was torn, and the pack's index is read again (it keeps whole records only);
    other bad bytes are listed in `bad`. Takes no lock, like every read: a gc running meanwhile
    may drop the line, which costs nothing but finding the block bad again.
    """
    found = index.lookup(cid.digest)
    if found is None:
        return None
    path = index.path(found.pack)
    try:
        data = read_block(path, found.offset, found.length)
    except OSError:
        return None
    if len(data) < found.length:
        index.reload(found.pack)
        problem = f"pack {path} is cut short {'inside' if data else 'before'} it"
    elif hashlib.sha256(data).digest() != cid.digest:
        with contextlib.suppress(OSError):
            index.mark_bad(found)
        problem = f"its bytes in pack {path} do not hash to it"
        damage = index.damaged().get(found.pack)
        if damage is not None:
            problem += f", and the pack is damaged ({damage.problem})"
    else:
        return None
    return StoreCorruptionError(cid.text, root.text, location, problem, packs=(path,))


def kept_for_repair(index: PackIndex, survey: Survey) -> set[str]:
    """The packs gc keeps whole while pinned content is damaged: a damaged pack whose contents
    are not all known (it may hold what is lost), and a pack with a bad copy of a lost block
    (it names where the block was until the block is stored again)."""
    if not survey.damaged:
        return set()
    kept = {
        pack for pack, damage in index.damaged().items() if not damage.complete and damage.size > 0
    }
    for pack, bad in index.bad_blocks().items():
        if any(entry.digest in survey.lost for entry in bad):
            kept.add(pack)
    return kept


def damaged_packs(index: PackIndex, survey: Survey) -> tuple[DamagedPack, ...]:
    """Every damaged pack, what is wrong with it, and the pins that lack a block it held (or,
    for a pack whose contents are not all known, any block no pack is known to have held)."""
    problems: dict[str, list[str]] = {}
    unknown: set[str] = set()
    for pack, damage in index.damaged().items():
        path = index.path(pack)
        problems.setdefault(path, []).append(damage.problem)
        if not damage.complete:
            unknown.add(path)
    for pack, bad in index.bad_blocks().items():
        problems.setdefault(index.path(pack), []).append(
            f"{len(bad)} block(s) in it fail their hash"
        )
    affected: dict[str, set[str]] = {path: set() for path in problems}
    for pin, blocks in survey.damaged.items():
        for block in blocks:
            if block.pack is not None:
                problems.setdefault(block.pack, ["a block in it cannot be read back"])
                affected.setdefault(block.pack, set()).add(pin)
            else:
                for path in unknown:
                    affected[path].add(pin)
    return tuple(
        DamagedPack(path, "; ".join(problems[path]), tuple(sorted(affected[path])))
        for path in sorted(problems)
    )
