#!/bin/sh
# Kubo runs every /container-init.d/*.sh before its daemon, on every start (sourced when not
# executable, so no `exit` here). These are the importer settings of flare-node's embedded
# store: CIDv1, raw leaves, 256 KiB chunks, sha2-256, a balanced DAG of at most 174 links per
# node. flare-node passes the first three on each add anyway; setting all of them here makes
# a plain `ipfs add` of a model file on this daemon give the CID the chain records, and keeps
# newer Kubo defaults (1 MiB chunks, 1024 links) out of the federation's content.
set -e
ipfs config --json Import.CidVersion 1
ipfs config --json Import.UnixFSRawLeaves true
ipfs config Import.UnixFSChunker size-262144
ipfs config Import.HashFunction sha2-256
ipfs config --json Import.UnixFSFileMaxLinks 174
ipfs config Import.UnixFSDAGLayout balanced
