"""Glue between the node's torch tensors and the protocol's numpy formats.

The protocol layer knows no torch, so the bundle writer takes numpy arrays (bfloat16 as its
uint16 bit patterns, since numpy has no bfloat16) and aggregation returns float64 numpy. This
module converts both ways without changing a bit, and builds the `ModelSpec` from a policy.
(`flare.node.compress.bundle_bytes` writes a compressed delta as a bundle.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from flare.protocol.modelspec import ModelSpec, ParamSpec

# The one map between torch dtypes and the spec's dtype names (protocol.modelspec.DTYPES).
SPEC_DTYPE = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
TORCH_DTYPE = {name: dtype for dtype, name in SPEC_DTYPE.items()}


def spec_from_parameters(
    named_parameters: Iterable[tuple[str, torch.Tensor]], *, backbone: str = ""
) -> ModelSpec:
    """The spec of the trainable parameters (requires_grad), in the module's order."""
    params = tuple(
        ParamSpec(name, tuple(tensor.shape), SPEC_DTYPE[tensor.dtype])
        for name, tensor in named_parameters
        if tensor.requires_grad
    )
    return ModelSpec(params, backbone)


def to_numpy(tensor: torch.Tensor) -> NDArray[Any]:
    """A CPU numpy copy; bfloat16 becomes its uint16 bit patterns (lossless)."""
    tensor = tensor.detach().to("cpu").contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(np.uint16).copy()
    return tensor.numpy().copy()


def from_numpy(array: NDArray[Any], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A torch tensor of `dtype` from a numpy array (e.g. an aggregated float64 delta)."""
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # torch will not share read-only memory (a parsed file's)
        array = array.copy()
    return torch.from_numpy(array).to(dtype)


def delta_to_torch(delta: Mapping[str, NDArray[Any]], spec: ModelSpec) -> dict[str, torch.Tensor]:
    """A (float64) aggregated delta as torch tensors in each parameter's spec dtype."""
    return {p.name: from_numpy(delta[p.name], TORCH_DTYPE[p.dtype]) for p in spec.params}
