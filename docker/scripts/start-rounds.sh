#!/bin/sh
# Opens round 1 once FLARE_START_AFTER nodes (default 3) have registered. A node is eligible
# only for rounds opened after it registered, so opening at once would leave round 1 to fail
# for want of updates.
set -eu

: "${FLARE_RPC:?set FLARE_RPC to the chain endpoint}"
record=/data/federation/deployment.json
want=${FLARE_START_AFTER:-3}

while :; do
    if ! counts=$(flare-node contract info --rpc "$FLARE_RPC" --deployment "$record" --json \
        | python -c 'import json, sys; d = json.load(sys.stdin); print(d["current_round"], d["node_count"])'); then
        echo "cannot read the contract yet; trying again" >&2
        sleep 10
        continue
    fi
    set -- $counts
    if [ "$1" -gt 0 ]; then
        echo "rounds have started (round $1)"
        exit 0
    fi
    if [ "$2" -ge "$want" ]; then
        break
    fi
    echo "$2 of $want nodes registered; waiting"
    sleep 10
done
# Dev account 0 deployed the contract, so it owns it (see deploy.sh).
flare-node contract start --rpc "$FLARE_RPC" --deployment "$record" --dev-account=0
