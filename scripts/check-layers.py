#!/usr/bin/env python3
"""Checks that every file of a layered target imports only the targets Package.swift declares for it
(and system modules). SwiftPM puts every built module on the search path, so an undeclared import can
compile in a full build and fail in a target-alone one; this finds it without building."""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
package = open(os.path.join(root, "Package.swift")).read()
system = {"Foundation", "Glibc", "Darwin", "Dispatch"}
declared = {}
# `layer("Shared", layers)`: the umbrella takes the list Package.swift names `layers`.
every = re.search(r'let layers: \[Target\.Dependency\] = \[(.*?)\]', package, re.S)
if every:
    package = package.replace('layer("Shared", layers)', f'layer("Shared", [{every.group(1)}])')
for name, deps in re.findall(r'layer\("(\w+)",\s*\[(.*?)\](?:,\s*settings:[^)]*)?\)', package, re.S):
    # "X" entries, and .product(name: "Logging", package: "swift-log") as Logging
    declared[name] = set(re.findall(r'(?<!package: )"(\w+)"', deps))
layers = list(declared)
bad = []
for name, deps in declared.items():
    folder = os.path.join(root, "Sources", "Shared", name)
    if not os.path.isdir(folder):
        bad.append(f"{name}: no folder Sources/Shared/{name}")
        continue
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".swift"):
            continue
        for line in open(os.path.join(folder, f)):
            m = re.match(r"\s*(?:@_exported\s+)?import\s+(\w+)", line)
            if not m:
                continue
            mod = m.group(1)
            if mod in system:
                continue
            if mod not in deps:
                bad.append(f"Sources/Shared/{name}/{f}: imports {mod}, which Package.swift does not declare for {name}")
            elif mod in layers and layers.index(mod) > layers.index(name):
                bad.append(f"Sources/Shared/{name}/{f}: imports {mod}, a layer above it")
for b in bad:
    print(b)
print(f"layers: {len(declared)} targets, " + ("OK" if not bad else f"{len(bad)} problem(s)"))
sys.exit(1 if bad else 0)
