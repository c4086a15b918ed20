#!/usr/bin/env python3
"""One-off generator of Tests/SharedTests/Fixtures/quant_blocks.json: an independent reference for our
GGUF code, made with the `gguf` package from PyPI (llama.cpp's gguf-py; numpy ports of ggml's code).

  dequant   random but valid blocks of each type we dequantize (f16 scales finite) and gguf.quants'
            float32 dequantization of them
  quantize  float32 rows and gguf.quants' Q8_0 / Q4_1 encoding (bit-exact ports of ggml's reference
            quantizers), including degenerate blocks (all zero, constant, one spike) and rounding ties
  python_gguf  a small GGUF file written by gguf.GGUFWriter, with the values it holds

Byte strings and float32 arrays are hex (floats as little-endian IEEE bits, so nothing is lost).
Q1_0, which gguf-py 0.19 cannot dequantize, is dequantized by ggml's own C code instead
(scripts/ggml-dequantize.c against the llama.cpp build of scripts/llamacpp-quantize.sh, LLAMACPP_DIR).
Usage: python3 -m venv /tmp/v && /tmp/v/bin/pip install gguf==0.19.0 && /tmp/v/bin/python scripts/gen_quant_fixture.py
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "SharedTests", "Fixtures", "quant_blocks.json")
rng = np.random.default_rng(20240607)

# type -> (block bytes, elements per block, byte offsets of f16 scale fields, blocks to generate)
LAYOUT = {
    "Q4_0": (18, 32, [0], 8),
    "Q4_1": (20, 32, [0, 2], 8),
    "Q5_0": (22, 32, [0], 8),
    "Q5_1": (24, 32, [0, 2], 8),
    "Q8_0": (34, 32, [0], 8),
    "Q4_K": (144, 256, [0, 2], 4),
    "Q5_K": (176, 256, [0, 2], 4),
    "Q6_K": (210, 256, [208], 4),
}

# Types added later (2026-12-06), drawn from a generator of their own so the blocks above stay as they were.
more_rng = np.random.default_rng(20261206)
MORE_LAYOUT = {
    "Q2_K": (84, 256, [80, 82], 4),
    "Q3_K": (110, 256, [108], 4),
    "IQ4_NL": (18, 32, [0], 8),
    "IQ4_XS": (136, 256, [0], 4),
    "TQ1_0": (54, 256, [52], 4),
    "TQ2_0": (66, 256, [64], 4),
    "MXFP4": (17, 32, [], 8),
}


# The grid-coded i-quants and NVFP4 (added 2026-12-07), from a generator of their own again. IQ1_M keeps its
# f16 d in the top nibbles of its four scale words (bytes 48–55), set in iquant_blocks.
iq_rng = np.random.default_rng(20261207)
IQ_LAYOUT = {
    "IQ2_XXS": (66, 256, [0], 4),
    "IQ2_XS": (74, 256, [0], 4),
    "IQ2_S": (82, 256, [0], 4),
    "IQ3_XXS": (98, 256, [0], 4),
    "IQ3_S": (110, 256, [0], 4),
    "IQ1_S": (50, 256, [0], 4),
    "IQ1_M": (56, 256, [], 4),
    "NVFP4": (36, 64, [], 8),
}


# Q1_0 (added 2026-12-07): f16 d, 16 bytes of sign bits; from a generator of its own, dequantized by ggml.
q1_rng = np.random.default_rng(202612071)


def ggml_q1_0_case(count=8):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    ggml_dequantizer = __import__("check-quant-files").ggml_dequantizer
    raw = random_blocks(18, [0], count, q1_rng)
    with tempfile.TemporaryDirectory() as d:
        w = gguf.GGUFWriter(d + "/q1.gguf", "llama")
        w.add_tensor("q1", raw.reshape(-1), raw_shape=(count * 18,), raw_dtype=Q.Q1_0)
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
        subprocess.run([ggml_dequantizer(), d + "/q1.gguf", d, "q1_0"], check=True, stdout=subprocess.DEVNULL)
        y = np.fromfile(d + "/q1.f32", dtype="<f4")
    assert y.size == count * 128
    return {"count": count * 128, "bytes": raw.tobytes().hex(), "expected": f32hex(y), "reference": "ggml dequantize_row_q1_0"}


def iquant_blocks(name, nbytes, scales, count):
    raw = random_blocks(nbytes, scales, count, iq_rng)
    if name == "IQ1_M":
        for b in range(count):
            d = np.frombuffer(np.float16(iq_rng.choice([-1, 1]) * 10 ** iq_rng.uniform(-4, 0)).tobytes(), dtype=np.uint16)[0]
            words = raw[b, 48:56].copy().view(np.uint16)
            for k in range(4):
                words[k] = (words[k] & 0x0FFF) | (((int(d) >> (4 * k)) & 0xF) << 12)
            raw[b, 48:56] = words.view(np.uint8)
    return raw


def f32hex(x):
    return np.asarray(x, dtype="<f4").tobytes().hex()


def random_blocks(nbytes, scale_offsets, count, rng=rng):
    raw = rng.integers(0, 256, size=(count, nbytes), dtype=np.uint8)
    for b in range(count):
        for off in scale_offsets:
            # Finite scales of mixed sign and magnitude, as a real model's would be.
            s = np.float16(rng.choice([-1, 1]) * 10 ** rng.uniform(-4, 0))
            raw[b, off:off + 2] = np.frombuffer(s.tobytes(), dtype=np.uint8)
    return raw


def dequant_cases():
    cases = {}
    for name, (nbytes, per_block, scales, count) in LAYOUT.items():
        raw = random_blocks(nbytes, scales, count)
        y = dequantize(raw.reshape(-1), getattr(Q, name)).reshape(-1)
        cases[name] = {"count": count * per_block, "bytes": raw.tobytes().hex(), "expected": f32hex(y)}
    x = (rng.standard_normal(256) * 10 ** rng.uniform(-3, 2, size=256)).astype(np.float32)
    f16 = x.astype(np.float16)
    cases["F16"] = {"count": 256, "bytes": f16.tobytes().hex(), "expected": f32hex(f16.astype(np.float32))}
    bf16_bits = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation: any finite bf16 will do
    raw = bf16_bits.view(np.uint8)
    y = dequantize(raw, Q.BF16).reshape(-1)
    cases["BF16"] = {"count": 256, "bytes": bf16_bits.tobytes().hex(), "expected": f32hex(y)}
    for name, (nbytes, per_block, scales, count) in MORE_LAYOUT.items():
        raw = random_blocks(nbytes, scales, count, more_rng)
        if name == "MXFP4":
            # E8M0 exponents: the two that decode to subnormal scales, then values whose products stay finite.
            raw[:, 0] = [0, 1] + list(more_rng.integers(100, 150, size=count - 2))
        y = dequantize(raw.reshape(-1), getattr(Q, name)).reshape(-1)
        cases[name] = {"count": count * per_block, "bytes": raw.tobytes().hex(), "expected": f32hex(y)}
    for name, (nbytes, per_block, scales, count) in IQ_LAYOUT.items():
        raw = iquant_blocks(name, nbytes, scales, count)
        y = dequantize(raw.reshape(-1), getattr(Q, name)).reshape(-1)
        cases[name] = {"count": count * per_block, "bytes": raw.tobytes().hex(), "expected": f32hex(y)}
    cases["Q1_0"] = ggml_q1_0_case()
    sizes = {t.name: list(gguf.GGML_QUANT_SIZES[t]) for t in Q}
    return cases, sizes


def quantize_cases():
    rows = [
        rng.standard_normal(32 * 6) * 0.05,
        np.zeros(32),
        np.full(32, 0.375),
        np.full(32, -2.5),
        np.concatenate([np.zeros(31), [7.0]]),
        # d = 1 exactly, so x/d lands on .5 ties: roundf rounds them away from zero, not to even.
        np.array([127, -127] + [s * (k + 0.5) for k in range(15) for s in (1, -1)]),
        rng.uniform(-1, 1, 32 * 4) * np.repeat(10.0 ** rng.uniform(-6, 3, 4), 32),
    ]
    x = np.concatenate(rows).astype(np.float32)
    return {
        "input": f32hex(x),
        "count": int(x.size),
        "Q8_0": quantize(x, Q.Q8_0).tobytes().hex(),
        "Q4_1": quantize(x, Q.Q4_1).tobytes().hex(),
    }


def python_gguf():
    """A file from gguf.GGUFWriter (general.architecture is added first by the writer itself)."""
    md = {
        "test.u8": ("uint8", 200), "test.i8": ("int8", -100), "test.u16": ("uint16", 60000),
        "test.i16": ("int16", -30000), "test.u32": ("uint32", 4000000000), "test.i32": ("int32", -2000000000),
        "test.f32": ("float32", 0.15625), "test.u64": ("uint64", 2 ** 63 + 5), "test.i64": ("int64", -(2 ** 62)),
        "test.f64": ("float64", 1e-300), "test.bool": ("bool", True), "test.str": ("string", "héllo, 世界 🌍"),
        "test.strs": ("array", ["a", "", "Ġthe"]), "test.ints": ("array", [1, -2, 3]),
    }
    t_f32 = rng.standard_normal((3, 8)).astype(np.float32)        # GGML dims [8, 3]
    t_f16 = rng.standard_normal((2, 5)).astype(np.float16)        # GGML dims [5, 2]
    q_src = rng.standard_normal((2, 64)).astype(np.float32)       # GGML dims [64, 2]
    t_q8 = quantize(q_src, Q.Q8_0)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.gguf")
        w = gguf.GGUFWriter(path, "testarch")
        for k, (kind, v) in md.items():
            getattr(w, "add_" + kind)(k, v)
        w.add_tensor("a.f32", t_f32)
        w.add_tensor("b.f16", t_f16)
        w.add_tensor("c.q8_0", t_q8, raw_shape=t_q8.shape, raw_dtype=Q.Q8_0)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        data = open(path, "rb").read()
    return {
        "bytes": data.hex(),
        "tensors": {
            "a.f32": {"dims": [8, 3], "type": "F32", "values": f32hex(t_f32.reshape(-1))},
            "b.f16": {"dims": [5, 2], "type": "F16", "values": f32hex(t_f16.astype(np.float32).reshape(-1))},
            "c.q8_0": {"dims": [64, 2], "type": "Q8_0",
                       "values": f32hex(dequantize(t_q8, Q.Q8_0).reshape(-1)), "raw": t_q8.tobytes().hex()},
        },
    }


def main():
    dequant, sizes = dequant_cases()
    fixture = {
        "generator": f"scripts/gen_quant_fixture.py with gguf {gguf.__version__ if hasattr(gguf, '__version__') else '0.19.0'}, numpy {np.__version__}",
        "dequant": dequant,
        "block_geometry": sizes,
        "quantize": quantize_cases(),
        "python_gguf": python_gguf(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
