"""The [gossip] table: off by default, multiaddrs checked, bootstrap entries naming their peer."""

from __future__ import annotations

from pathlib import Path

import pytest

from flare.cli.nodeconfig import ConfigFileError, parse_config

PEER = "/ip4/10.0.0.2/tcp/4001/p2p/12D3KooWSNb5SzsvU6bFCdp1NfMxa4Fb8LM5diugtZTHkpjZ8hdV"
OTHER = "/dns4/node-1/tcp/4001/p2p/12D3KooWLvmNu4zTpqHZ9roCEbJoYJoQgSZTHxf67RHrBVsn8vjT"


TWIN = '[training]\ntrainer = "twin"\ntwin_spec = "spec.json"\n'  # needs no data or policy


def config(tmp_path: Path, text: str) -> Path:
    """A config of `text`; the gossip table comes first, so its lines are numbered from 1."""
    path = tmp_path / "node.toml"
    path.write_text(text + "\n" + TWIN)
    return path


def test_gossip_is_off_by_default_and_reads_every_key(tmp_path: Path) -> None:
    assert parse_config(config(tmp_path, ""), {}).gossip.enabled is False
    path = config(
        tmp_path,
        '[gossip]\nenabled = true\nlisten = "/ip4/0.0.0.0/tcp/0"\n'
        f'announce = "/dns4/node-0/tcp/4001"\nbootstrap = ["{PEER}"]\npeers_dir = "peers"\n',
    )
    gossip = parse_config(path, {}).gossip
    assert gossip.enabled is True
    assert gossip.listen == "/ip4/0.0.0.0/tcp/0"
    assert gossip.announce == "/dns4/node-0/tcp/4001"
    assert gossip.bootstrap == (PEER,)
    assert gossip.peers_dir == tmp_path / "peers"  # relative to the config file


def test_a_variable_sets_bootstrap_peers_as_an_array_or_comma_separated(tmp_path: Path) -> None:
    path = config(tmp_path, "")
    listed = parse_config(path, {"FLARE_GOSSIP_BOOTSTRAP": f'["{PEER}", "{OTHER}"]'})
    assert listed.gossip.bootstrap == (PEER, OTHER)
    joined = parse_config(path, {"FLARE_GOSSIP_BOOTSTRAP": f"{PEER}, {OTHER}"})
    assert joined.gossip.bootstrap == (PEER, OTHER)
    single = parse_config(config(tmp_path, f'[gossip]\nbootstrap = "{PEER}"'), {})
    assert single.gossip.bootstrap == (PEER,)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('bootstrap = ["/ip4/10.0.0.2/tcp/4001"]', "must end in /p2p/<peer id>"),
        ("bootstrap = [1, 2]", "must be an array of strings"),
        ('listen = "0.0.0.0:4001"', "must be a multiaddr"),
        ('announce = "node-0:4001"', "must be a multiaddr"),
        ('enabled = "yes"', "must be true or false"),
        ("peer_dir = 'x'", "did you mean peers_dir"),
    ],
)
def test_bad_gossip_settings_name_the_key_and_line(tmp_path: Path, line: str, says: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse_config(config(tmp_path, f"[gossip]\n{line}\n"), {})
    assert "node.toml:2" in caught.value.message
    assert says in caught.value.message
