#!/bin/sh
# The federation's deployment, made once: a base policy and its genesis model pinned on the
# federation's Kubo daemon, a review policy, and FlareRounds on the chain. The record is the
# last thing written, so a failed attempt is simply run again; once it exists this job only
# shows what is deployed.
#
# Environment: FLARE_RPC, FLARE_STORE (the chain and the Kubo daemon); FLARE_BASE_POLICY
# (tiny, the default, or smolvlm2-500m: a preset built on synthetic reference data);
# FLARE_COMMITTEE_SIZE, FLARE_TRAIN_WINDOW, FLARE_REVIEW_WINDOW, FLARE_MIN_CLAIM_WINDOW,
# FLARE_MIN_UPDATES (the round parameters); FLARE_MAX_LOSS_INCREASE (the review policy's
# acceptance rule).
set -eu

: "${FLARE_RPC:?set FLARE_RPC to the chain endpoint}"
: "${FLARE_STORE:?set FLARE_STORE to the IPFS daemon, ipfs://host:port}"
out=/data/federation
record="$out/deployment.json"

if [ -e "$record" ]; then
    echo "already deployed: $record"
    flare-node contract info --rpc "$FLARE_RPC" --deployment "$record"
    exit 0
fi

field() {
    python -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# The deployer's reference data fixes the policy's features and normalization statistics.
rm -rf "$out/reference"
flare-node data synth "$out/reference" --images --episodes 8
flare-node model genesis --policy "${FLARE_BASE_POLICY:-tiny}" --dataset "$out/reference" \
    --out "$out/base-model" --spec-out "$out/model-spec.json" --force \
    --store "$FLARE_STORE" --json >"$out/genesis.json"
# Members approve a model at most 25% worse on their own held-out data than the base: each
# node here holds a different stripe of the table, and a few steps of a tiny policy are noisy.
flare-node policy new --out "$out/policy.json" --force \
    --max-loss-increase "${FLARE_MAX_LOSS_INCREASE:-0.25}"
spec=$(field "$out/genesis.json" model_spec)
genesis=$(field "$out/genesis.json" cid)

# Dev account 0 is the first account of anvil's public test mnemonic: a throwaway key every
# anvil prefunds, and one flare-node refuses on any other chain. On a real chain deploy with
# --keystore FILE --password-file FILE instead (docs/deployer.md).
# --open: nodes register without an allowlist, since nobody is there to approve them.
flare-node contract deploy --rpc "$FLARE_RPC" --store "$FLARE_STORE" --dev-account=0 --open \
    --model-spec-hash "$spec" --genesis-model "$genesis" \
    --policy "$out/policy.json" \
    --committee-size "${FLARE_COMMITTEE_SIZE:-3}" \
    --train-window "${FLARE_TRAIN_WINDOW:-5m}" \
    --review-window "${FLARE_REVIEW_WINDOW:-5m}" \
    --min-claim-window "${FLARE_MIN_CLAIM_WINDOW:-1m}" \
    --min-updates "${FLARE_MIN_UPDATES:-2}" \
    --out "$record"
