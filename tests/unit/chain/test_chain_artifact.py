"""The committed artifact: current with the sources, complete against the protocol, loadable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from string import Formatter

import pytest

from flare.chain.artifact import (
    ArtifactInvalidError,
    ArtifactMissingError,
    default_artifact_path,
    load_artifact,
)
from flare.chain.compile import (
    ArtifactFileError,
    find_project_root,
    render_artifact,
    source_hashes,
    write_artifact,
)
from flare.chain.events import snake
from flare.protocol.events import EVENT_TYPES
from flare.protocol.ledger import CONTRACT_ERRORS

ROOT = Path(__file__).resolve().parents[3]
STALE_HINT = "contract sources changed: run `flare-node contract compile` and commit the artifact"


def test_artifact_records_the_sources_as_they_are_now() -> None:
    artifact = load_artifact()

    assert source_hashes(find_project_root(ROOT), sorted(artifact.sources)) == artifact.sources, (
        STALE_HINT
    )
    assert "contracts/src/FlareRounds.sol" in artifact.sources


def test_every_contract_error_has_a_ledger_error_class_and_back() -> None:
    in_abi = {item["name"] for item in load_artifact().abi_items("error")}

    assert in_abi == set(CONTRACT_ERRORS)


def test_every_contract_event_has_a_dataclass_with_its_fields() -> None:
    artifact = load_artifact()
    in_abi = {item["name"]: item for item in artifact.abi_items("event")}

    assert set(in_abi) == set(EVENT_TYPES)
    for name, item in in_abi.items():
        fields = set(EVENT_TYPES[name].__dataclass_fields__) - {"block", "log_index", "tx_hash"}
        assert fields == {snake(arg["name"]) for arg in item["inputs"]}, name


def test_artifact_hash_is_the_files_sha256() -> None:
    path = default_artifact_path()

    assert load_artifact().sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_missing_artifact_says_how_to_rebuild_it(tmp_path: Path) -> None:
    with pytest.raises(ArtifactMissingError, match="no contract artifact") as caught:
        load_artifact(tmp_path / "FlareRounds.json")
    assert "flare-node contract compile" in str(caught.value.hint)


def test_a_broken_artifact_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "FlareRounds.json"
    broken.write_text(json.dumps({"abi": []}))

    with pytest.raises(ArtifactInvalidError, match="not a FlareRounds artifact"):
        load_artifact(broken)


def test_code_comparison_ignores_immutables_only() -> None:
    artifact = load_artifact()
    code = bytearray(artifact.deployed_bytecode)
    spans = [span for spans in artifact.immutable_references.values() for span in spans]
    assert spans, "FlareRounds keeps its model spec hash as an immutable"
    for span in spans:
        code[span["start"] : span["start"] + span["length"]] = b"\x5e" * span["length"]

    assert artifact.code_matches(bytes(code))
    code[0] ^= 0xFF
    assert not artifact.code_matches(bytes(code))
    assert not artifact.code_matches(bytes(code[:-1]))


def test_error_messages_only_name_arguments_the_contract_sends() -> None:
    for item in load_artifact().abi_items("error"):
        cls = CONTRACT_ERRORS[item["name"]]
        names = {arg["name"] for arg in item["inputs"]}
        texts = [cls.template, cls.hint_template or ""]
        used = {field for text in texts for _, field, _, _ in Formatter().parse(text) if field}

        assert used <= names, (item["name"], used - names)
        assert set(cls.phase_args) <= names


def test_an_artifact_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    target = tmp_path / "FlareRounds.json"
    (tmp_path / "FlareRounds.json.tmp").mkdir()  # the temporary file cannot be created

    with pytest.raises(ArtifactFileError, match="cannot write the contract artifact") as caught:
        write_artifact({"contractName": "FlareRounds"}, target)

    assert str(target) in caught.value.message
    assert not target.exists()


def test_an_artifact_is_written_whole(tmp_path: Path) -> None:
    target = tmp_path / "out" / "FlareRounds.json"
    artifact = {"contractName": "FlareRounds", "abi": []}

    write_artifact(artifact, target)

    assert target.read_bytes() == render_artifact(artifact)
    assert sorted(p.name for p in target.parent.iterdir()) == ["FlareRounds.json"]
