"""Readers of our artifact container (Sources/Shared/Editing/Artifact.swift) for the analysis scripts:
magic (8 bytes), version, length, body, FNV-1a-64 checksum at the end (not verified here: the Swift
readers do that)."""
import struct
import numpy as np

def body(path):
    b = open(path, "rb").read()
    return b[:8].decode(), memoryview(b)[24:len(b) - 8]

def statistics(path):
    magic, m = body(path)
    assert magic == "AEKSTATS", magic
    f, nl, sl = struct.unpack_from("<qqq", m, 0); o = 24 + sl
    layers, counts = [], []
    for _ in range(nl):
        l, n = struct.unpack_from("<qq", m, o); o += 16; layers.append(l); counts.append(n)
    out = {}
    for l, n in zip(layers, counts):
        s, o = symmetric_from_upper(m, o, f)
        out[l] = s / n
    return out

def symmetric_from_upper(m, o, f):
    """The f×f symmetric matrix stored as its packed upper triangle (Float64, row by row) at offset o,
    and the offset after it."""
    tri = f * (f + 1) // 2
    s = np.zeros((f, f)); s[np.triu_indices(f)] = np.frombuffer(m, "<f8", tri, o)
    return s + np.triu(s, 1).T, o + tri * 8

def deltas(path):
    magic, m = body(path)
    assert magic == "AEDELTAS", magic
    rows, cols, nl = struct.unpack_from("<qqq", m, 0); o = 24
    out = {}
    for _ in range(nl):
        (l,) = struct.unpack_from("<q", m, o); o += 8
        out[l] = np.frombuffer(m, "<f8", rows * cols, o).reshape(rows, cols); o += rows * cols * 8
    return out

def sequential_state(path):
    """Cp per layer (Σ K1 K1ᵀ over the keys edited so far) and the key counts: {layer: (count, Cp)}."""
    magic, m = body(path)
    assert magic == "AESEQSTA", magic
    f, nl = struct.unpack_from("<qq", m, 0); o = 16
    heads = []
    for _ in range(nl):
        heads.append(struct.unpack_from("<qq", m, o)); o += 16
    out = {}
    for l, n in heads:
        s, o = symmetric_from_upper(m, o, f)
        out[l] = (n, s)
    return out

def projector_eigenvalues(path):
    """C0's eigenvalues (ascending) per layer from a projector artifact (NullSpaceProjector.swift):
    {layer: (eigenvalues, threshold, kept dimension)}; the bases are skipped."""
    magic, m = body(path)
    assert magic == "AENSPROJ", magic
    (sl,) = struct.unpack_from("<q", m, 0); o = 8 + sl
    f, nl = struct.unpack_from("<qq", m, o); o += 16
    out = {}
    for _ in range(nl):
        l, t, k = struct.unpack_from("<qdq", m, o); o += 24
        out[l] = (np.frombuffer(m, "<f8", f, o).copy(), t, k); o += f * 8 + f * k * 8
    return out
