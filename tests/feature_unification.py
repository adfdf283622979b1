#!/usr/bin/env python3
"""Checks the feature unification of Cargo.toml (its "Feature unification" block).

`cargo run`, `cargo test` and the feature builds CI runs (ffmpeg, ort, mqtt-tls + mqtt-broker) must
build every dependency they share with the same features and the same dependencies: otherwise
cargo compiles that crate, and every crate above it (tract: ~10 CPU-minutes), once more. Reads the
dependency graphs from `cargo tree` (nothing is built; a few seconds), gives each node a key made
of its package, its features and its dependencies' keys (what cargo's build hash covers), and
prints, for each configuration, the shared crates whose build would change, and why (features
changed, or a dependency built with other features). Exit status 1 when any would.

    python3 tests/feature_unification.py
"""
import hashlib
import re
import subprocess
import sys

ROOT_PKG = "c3n-edge "
GLYPHS = re.compile(r"^[│├└─ ]*")


def graph(args):
    """{(pkg, features): set of child (pkg, features)} from `cargo tree` (indent format)."""
    out = subprocess.run(
        ["cargo", "tree", "--locked", "-f", "{p}|{f}", *args],
        check=True, capture_output=True, text=True,
    ).stdout
    children, stack = {}, []
    for line in out.splitlines():
        prefix = GLYPHS.match(line).group(0)
        depth, text = len(prefix) // 4, line[len(prefix):]
        if text.startswith("["):  # [build-dependencies] / [dev-dependencies]
            continue
        text = text.removesuffix(" (*)")
        pkg, _, feats = text.partition("|")
        pkg = re.sub(r" \((proc-macro|/[^)]*)\)", "", pkg)
        node = (pkg, feats)
        children.setdefault(node, set())
        del stack[depth:]
        if stack:
            children[stack[-1]].add(node)
        stack.append(node)
    return children


def keys(children):
    memo = {}

    def key(n, seen=()):
        if n not in memo:
            if n in seen:  # dev-dependency cycle
                return "cycle"
            ks = sorted(key(c, seen + (n,)) for c in children[n])
            memo[n] = hashlib.sha1(repr((n, ks)).encode()).hexdigest()
        return memo[n]

    return {n: key(n) for n in children}


def compare(ref, other, allowed=()):
    """Lines describing each shared crate whose ref build is not reused by `other`."""
    rk, ok = keys(ref), keys(other)
    okeys = set(ok.values())
    opkgs = {}
    for p, f in other:
        opkgs.setdefault(p, set()).add(f)
    problems = []
    for (p, f), k in sorted(rk.items()):
        if p.startswith(ROOT_PKG) or p.split()[0] in allowed or p not in opkgs or k in okeys:
            continue
        if f not in opkgs[p]:
            problems.append(f"{p}: features [{f}] -> {sorted(opkgs[p])}")
            continue
        for c in sorted(ref[(p, f)] - other[(p, f)]):
            now = sorted(cf for cp, cf in other[(p, f)] if cp == c[0])
            if c in other:  # the child's old build still exists: this edge is the cause
                problems.append(f"{p} [{f}]: uses {c[0]} [{now and now[0]}] instead of [{c[1]}]")
    return problems


def main():
    test = graph(["-e", "normal,build,dev"])  # what `cargo test` builds: the reference
    dev = ["-e", "normal,build,dev"]
    # (what, cargo tree arguments, crates allowed to change, check both ways)
    checks = [
        # neither may build a shared crate the other's way
        ("cargo build / cargo run", ["-e", "normal,build"], (), True),
        ("--features ffmpeg", dev + ["--features", "ffmpeg"], (), False),
        # itertools: `cargo tree` shows the host build (under prost-derive, which `ort`'s own
        # prost dependency prints first) and the target build (under tract-data), which have
        # the same features, as one node with the children of whichever it prints first; the
        # builds are the same (target/debug/.fingerprint holds no new itertools or either unit)
        ("--features ort", dev + ["--features", "ort"], ("itertools",), False),
        # rumqttc's own use-native-tls is what mqtt-tls is for: only rumqttc is rebuilt
        ("--features mqtt-tls,mqtt-broker", dev + ["--features", "mqtt-tls,mqtt-broker"],
         ("rumqttc",), False),
        # tests/run-all.sh builds every optional feature together
        ("--features ffmpeg,mqtt-tls,mqtt-broker,window,ort",
         dev + ["--features", "ffmpeg,mqtt-tls,mqtt-broker,window,ort"],
         ("rumqttc", "itertools"), False),
    ]
    bad = False
    for what, args, allowed, both_ways in checks:
        other = graph(args)
        problems = compare(test, other, allowed)
        if both_ways:
            problems += compare(other, test)
        for p in problems:
            print(f"  {what} vs cargo test: {p}")
        bad |= bool(problems)
    if bad:
        print("feature unification broken: the crates above (and every crate above them) would be "
              "compiled again; add the features shown to the block in Cargo.toml", file=sys.stderr)
        return 1
    print("feature unification: cargo build, cargo test and --features ffmpeg / ort / "
          "mqtt-tls,mqtt-broker / all optional features share every dependency build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
