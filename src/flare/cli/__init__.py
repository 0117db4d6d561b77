"""The `flare-node` command line: the only place that reads the environment and wires adapters."""
