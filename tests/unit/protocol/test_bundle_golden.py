"""Golden vectors: the exact bytes of a flare-update/1 bundle and of a model-spec hash.

A change here changes every CID a node publishes, so it must be a deliberate format change
(a new format version), never a side effect. The inputs are integers, not random draws.
To regenerate after a deliberate change, run this file and paste what it prints:

    .venv/bin/python tests/unit/protocol/test_bundle_golden.py
"""

from __future__ import annotations

import hashlib

import numpy as np

from flare.protocol.bundle import BundleMeta, read_bundle, write_bundle
from flare.protocol.modelspec import ModelSpec
from flare.protocol.tensorfile import bfloat16_bits

SPEC_HASH = "68e057f25e7681d66fc70be5a576e1238b64688d16311c91ce79cab9f7768f3a"
BUNDLE_SHA256 = {
    "float32": "6ff9b321ab499156f79e6b60e2e0ea5a6cae36f63d561f6bbdc41958cc7f361a",
    "bfloat16": "3bd205c6b9e7ac6a11b2b8437e32079097805d2c5ea370ce1352f4161c6048b8",
}


def golden_spec() -> ModelSpec:
    return ModelSpec.from_shapes(
        {
            "expert.q_proj.weight": (12, 10),
            "expert.norm.weight": (10,),
            "state_proj.weight": (2, 3),
        },
        backbone="golden",
    )


def golden_bundle(factor_dtype: str) -> bytes:
    spec = golden_spec()
    meta = BundleMeta(
        round=3,
        node="0x00000000000000000000000000000000000000aa",
        base_model="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        num_samples=256,
        rank=2,
        model_spec=spec.hash,
        factor_dtype=factor_dtype,
        metrics={"loss": 0.5, "steps": 10},
    )
    tensors = {}
    for name, (dtype, shape) in spec.wire_layout(2, factor_dtype).items():
        values = (np.arange(np.prod(shape), dtype=np.float32).reshape(shape) - 3.0) / 8.0
        tensors[name] = bfloat16_bits(values) if dtype == "bfloat16" else values
    return write_bundle(meta, spec, tensors)


def test_model_spec_hash_is_stable() -> None:
    assert golden_spec().canonical_json() == (
        b'{"backbone":"golden","format":"flare-modelspec/1","params":'
        b'[["expert.q_proj.weight",[12,10],"float32"],["expert.norm.weight",[10],"float32"],'
        b'["state_proj.weight",[2,3],"float32"]]}'
    )
    assert golden_spec().hash.hex() == SPEC_HASH


def test_bundle_bytes_are_stable() -> None:
    for dtype, digest in BUNDLE_SHA256.items():
        data = golden_bundle(dtype)
        assert hashlib.sha256(data).hexdigest() == digest, dtype
        assert read_bundle(data, golden_spec()).meta.num_samples == 256


if __name__ == "__main__":
    print(f'SPEC_HASH = "{golden_spec().hash.hex()}"')
    for dtype in BUNDLE_SHA256:
        print(f'    "{dtype}": "{hashlib.sha256(golden_bundle(dtype)).hexdigest()}",')
