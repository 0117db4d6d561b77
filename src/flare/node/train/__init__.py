"""Local SmolVLA training with LeRobot, offline: the node's TRAIN phase.

- `backbone`: tiny and full-size SmolVLM backbones written locally (no Hub);
- `policy`: build, save and load self-contained SmolVLA checkpoints;
- `synth`: a synthetic SO-100 dataset with learnable structure and per-node skew;
- `dataset`: open a LeRobot v3 dataset and check it fits the policy before training;
- `local`: N steps of LeRobot's training step plus FedProx, returning the trainable delta;
- `evaluate`: held-out loss with fixed noise;
- `spec`: the model-spec hash a deployment puts on-chain.

Modules import torch and LeRobot inside their functions, so importing this package is cheap.
"""
