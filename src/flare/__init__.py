"""flare-node: decentralized federated learning of SmolVLA robot policies."""

__version__ = "0.1.0"
