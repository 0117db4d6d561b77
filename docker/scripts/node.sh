#!/bin/sh
# One node of the local federation, from first start to `flare-node run`. Every step before
# `run` is idempotent, so a restarted container goes through them again and changes nothing:
# the password and keys are made once, the data recorded once, the account funded once,
# the node registered once.
#
# Environment: FLARE_CONFIG (the node's config file; every path comes from it),
# FLARE_SYNTH_NODE_INDEX and FLARE_SYNTH_NODES (record this node's share of synthetic data
# when its dataset is missing), FLARE_DEV_FUND=1 (give the account gas on a local anvil).
set -eu

: "${FLARE_CONFIG:?set FLARE_CONFIG to the node config file}"

# A setting as `flare-node run` will see it: the same loader, FLARE_* overrides included.
setting() {
    python - "$1" <<'PY'
import os
import sys
from pathlib import Path

from flare.cli.nodeconfig import parse_config, settings_of

value = settings_of(parse_config(Path(os.environ["FLARE_CONFIG"]), os.environ))[sys.argv[1]]
print("" if value is None else value)
PY
}

home=$(setting home)
password_file=$(setting keys.password_file)
dataset=$(setting data.dataset)
rpc=$(setting chain.rpc)
: "${password_file:?this script needs [keys] password_file in $FLARE_CONFIG}"

# --- a random key password, made once, readable by this user alone, never printed ---
if [ ! -e "$password_file" ]; then
    if [ -e "$home/keys" ]; then
        echo "$home has keys but $password_file is gone; restore it from your backup" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$password_file")"
    (umask 077 && python -c 'import secrets; print(secrets.token_urlsafe(32))' >"$password_file")
fi

# --- keys: made on the first start, left alone afterwards ---
flare-node init --if-missing --home "$home" --password-file "$password_file"

# --- data: this node's share of a synthetic world, recorded once, moved into place whole ---
if [ ! -e "$dataset" ] && [ -n "${FLARE_SYNTH_NODE_INDEX:-}" ]; then
    rm -rf "$dataset.partial"
    flare-node data synth "$dataset.partial" --images --skew region \
        --node-index "$FLARE_SYNTH_NODE_INDEX" --num-nodes "${FLARE_SYNTH_NODES:-3}"
    mv "$dataset.partial" "$dataset"
fi

# --- gas: on a local anvil only, top the account up through anvil's own RPC method ---
if [ "${FLARE_DEV_FUND:-0}" = 1 ]; then
    address=$(flare-node keys show --home "$home" --json \
        | python -c 'import json, sys; print(json.load(sys.stdin)["address"])')
    python - "$rpc" "$address" <<'PY'
import json
import sys
import urllib.request

rpc, address = sys.argv[1:]
ANVIL_CHAIN_ID = 31337
ENOUGH = 10**18  # 1 ETH pays for registration and many rounds of gas
GRANT = 100 * 10**18


def call(method, *params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(
        rpc, body.encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    if "error" in answer:
        sys.exit(f"{method} failed: {answer['error']}")
    return answer["result"]


if int(call("eth_chainId"), 16) != ANVIL_CHAIN_ID:
    sys.exit(f"FLARE_DEV_FUND=1 is for a local anvil chain only; {rpc} is another chain")
if int(call("eth_getBalance", address, "latest"), 16) < ENOUGH:
    call("anvil_setBalance", address, hex(GRANT))
    print(f"funded {address} with 100 ETH on the dev chain")
PY
fi

# --- check everything the config names before leaving the node alone ---
flare-node config check --config "$FLARE_CONFIG"

# --- register (a registered node is told so and goes on), then run ---
flare-node register --config "$FLARE_CONFIG"
exec flare-node run --config "$FLARE_CONFIG"
