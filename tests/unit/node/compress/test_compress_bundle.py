"""From torch delta to bundle bytes and back: the protocol reader sees what the node sent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load as safetensors_load

from flare.node.compress import PowerSGDConfig, bundle_bytes, compress, decompress
from flare.node.delta import delta_to_torch, spec_from_parameters, to_numpy
from flare.protocol.bundle import read_bundle
from flare.protocol.tensorfile import bfloat16_bits

NODE = "0x" + "3c" * 20
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def small_policy() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(24, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 6)
    )
    model[1].weight.requires_grad_(False)  # frozen parameters stay out of the spec
    return model


def test_spec_from_parameters_keeps_trainable_ones_in_order() -> None:
    spec = spec_from_parameters(small_policy().named_parameters(), backbone="tiny")
    assert spec.names == ("0.weight", "0.bias", "1.bias", "2.weight", "2.bias")
    assert spec.param("0.weight").shape == (32, 24)
    assert spec.backbone == "tiny"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_bundle_round_trip_matches_the_nodes_own_reconstruction(dtype: str) -> None:
    model = small_policy()
    spec = spec_from_parameters(model.named_parameters())
    generator = torch.Generator().manual_seed(1)
    delta = {p.name: torch.randn(p.shape, generator=generator) * 1e-3 for p in spec.params}
    compressed, _ = compress(
        delta, spec, PowerSGDConfig(rank=2, factor_dtype=dtype), None, seed=b"s"
    )
    data = bundle_bytes(
        compressed, spec, round_number=4, node=NODE, base_model=CID, num_samples=64,
        metrics={"loss": 0.125},
    )  # fmt: skip
    again, _ = compress(delta, spec, PowerSGDConfig(rank=2, factor_dtype=dtype), None, seed=b"s")
    assert data == bundle_bytes(
        again, spec, round_number=4, node=NODE, base_model=CID, num_samples=64,
        metrics={"loss": 0.125},
    )  # fmt: skip
    bundle = read_bundle(data, spec)
    assert bundle.meta.factor_dtype == dtype
    assert bundle.meta.num_samples == 64
    ours = decompress(compressed, spec)
    for name, value in bundle.delta().items():
        np.testing.assert_allclose(value, ours[name].double().numpy(), rtol=1e-5, atol=1e-9)
    loaded = safetensors_load(data)  # any safetensors reader sees the same tensors
    assert all(torch.equal(loaded[k], compressed.tensors[k]) for k in compressed.tensors)


def test_protocol_bfloat16_rounding_matches_torch() -> None:
    values = torch.randn(
        10_000, generator=torch.Generator().manual_seed(2)
    ) * 10.0 ** torch.randint(-20, 20, (10_000,), generator=torch.Generator().manual_seed(3))
    ours = bfloat16_bits(values.numpy())
    np.testing.assert_array_equal(ours, to_numpy(values.to(torch.bfloat16)))


def test_aggregated_delta_comes_back_in_the_spec_dtype() -> None:
    spec = spec_from_parameters(small_policy().to(torch.bfloat16).named_parameters())
    delta = {p.name: np.full(p.shape, 0.5) for p in spec.params}
    tensors = delta_to_torch(delta, spec)
    assert all(t.dtype == torch.bfloat16 and float(t.flatten()[0]) == 0.5 for t in tensors.values())
