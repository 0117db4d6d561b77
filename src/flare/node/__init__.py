"""The peer: training, compression, content store, committee work, the round loop, keys."""
