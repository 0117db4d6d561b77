"""Pure protocol code: types, phases, VRF, CIDs, update format, aggregation math, errors.

Nothing here does I/O or imports torch, web3, lerobot, typer or an HTTP client, so every
other layer (and an auditor's script) can depend on it cheaply.
"""
