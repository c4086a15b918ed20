#!/usr/bin/env python3
"""Every tensor of GGUF files, dequantized by us (`alphaedit inspect FILE --npy DIR`) and by gguf-py (llama.cpp's
own Python package: numpy ports of ggml's dequantizers), compared bit for bit. Types gguf-py 0.19 cannot
dequantize (Q1_0) are compared with ggml's own C dequantizers instead: scripts/ggml-dequantize.c, built
against the llama.cpp that scripts/llamacpp-quantize.sh builds (LLAMACPP_DIR, default ../llamacpp). Prints per
file and type the tensors, values and differing values; exits 1 if any value differs, 2 if a tensor cannot
be compared.

  python3 -m venv /tmp/v && /tmp/v/bin/pip install gguf==0.19.0
  bash scripts/llamacpp-quantize.sh            # llama.cpp's files of each type into models/quant/
  /tmp/v/bin/python scripts/check-quant-files.py models/quant/*.gguf
"""
import collections
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf.quants import dequantize

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.path.join(ROOT, ".build", "release", "alphaedit")


# Types gguf-py 0.19 has no numpy dequantizer for, by ggml type id, with ggml's name of each.
GGML_ONLY = {41: "q1_0"}


def ggml_dequantizer():
    """scripts/ggml-dequantize.c, built once against llama.cpp's libggml-base."""
    src = os.path.join(os.path.abspath(os.environ.get("LLAMACPP_DIR", os.path.join(ROOT, "..", "llamacpp"))), "llama.cpp")
    exe = os.path.join(src, "build", "bin", "ggml-dequantize")
    if not os.path.exists(exe):
        lib = os.path.join(src, "build", "bin")
        subprocess.run(["gcc", "-O2", "-I", os.path.join(src, "ggml", "include"), os.path.join(ROOT, "scripts", "ggml-dequantize.c"),
                        "-L", lib, "-lggml-base", "-Wl,-rpath," + lib, "-o", exe], check=True)
    return exe


def check(path):
    reader = gguf.GGUFReader(path)
    stats = collections.defaultdict(lambda: [0, 0, 0])  # type: tensors, values, values with other bits
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as ggml_out:
        subprocess.run([BIN, "inspect", path, "--npy", out], check=True, stdout=subprocess.DEVNULL)
        ggml_types = sorted({GGML_ONLY[int(t.tensor_type)] for t in reader.tensors if int(t.tensor_type) in GGML_ONLY})
        if ggml_types:
            subprocess.run([ggml_dequantizer(), path, ggml_out] + ggml_types, check=True, stdout=subprocess.DEVNULL)
        for t in reader.tensors:
            ours = np.load(os.path.join(out, t.name + ".npy"))
            if int(t.tensor_type) in GGML_ONLY:
                theirs = np.fromfile(os.path.join(ggml_out, t.name + ".f32"), dtype="<f4").reshape(ours.shape)
                name = GGML_ONLY[int(t.tensor_type)].upper()
            else:
                theirs = dequantize(t.data, t.tensor_type).astype("<f4").reshape(ours.shape)
                name = t.tensor_type.name
            s = stats[name]
            s[0] += 1
            s[1] += ours.size
            s[2] += int((ours.view("<u4") != theirs.view("<u4")).sum())
    return stats


def main():
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: swift build -c release")
    bad = 0
    for path in sys.argv[1:]:
        stats = check(path)
        print(os.path.basename(path) + ": " + ", ".join(f"{k} {v[0]} tensors {v[1]:,} values {v[2]} differ" for k, v in sorted(stats.items())))
        bad += sum(v[2] for v in stats.values())
    print("all bit for bit" if bad == 0 else f"{bad} values differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
