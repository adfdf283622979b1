#!/usr/bin/env python3
"""Checks the module dependency graph of the Rust crate (`src/`) and of the Python model
package (`models/c3n/`): no cycles between modules and no upward imports between layers
(ARCHITECTURE.md, "Layers").

A node is one source file (one module). An edge A -> B means that A's code (comments and
strings left out) names an item of module B: a `use` path or an inline path through `crate::`,
`super::`, `self::` or `c3n_edge::` in Rust, an `import` (also inside a function) in Python.
`pub use` re-exports are aliases, not dependencies, and are not edges. A reference resolves to
the longest module prefix of its path, so `crate::sink::Sink` is an edge to `sink/mod.rs`.

Rules:
- no cycle between files (strongly connected components of size 1 only);
- an edge between two top-level modules (Rust: `crate::X`; Python: `c3n.X`) goes from a higher
  layer to a lower one, by the order of LAYERS / PY_LAYERS below (the binary's modules sit above
  every library module).

    python3 tests/module_graph.py            # check, exit 1 on a violation
    python3 tests/module_graph.py --dot      # print the graph of top-level modules (Graphviz)
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Rust library layers, lowest first. A module may use modules of its own or a lower layer.
# Keep in step with ARCHITECTURE.md.
LAYERS: list[list[str]] = [
    ["util", "uri", "categories", "metrics"],
    ["audio", "frontend", "dataset", "control", "guard"],
    ["source", "engine"],
    ["sync", "post"],
    ["events"],
    ["render"],
    ["sink"],
    ["pipeline", "service"],
    ["eval", "bench", "config"],
]
# Python model package layers, lowest first (c3n.X); keep in step with ARCHITECTURE.md.
PY_LAYERS: list[list[str]] = [
    ["paths", "audio_io"],
    ["packages"],
    ["labels"],
    ["categories", "similarity"],
    ["model"],
    ["data"],
    ["eval"],
    ["train", "export"],
    # the commands kept under their documented names (`python -m c3n.X`): each runs a lower
    # module's main (c3n.fetch also prepares the AVS-Composites backgrounds of c3n.data)
    ["fetch", "evaluate", "labelstats", "regionstats", "report", "featcache", "train_frozen",
     "eval_cached", "quantize", "profile", "bench_torch", "import_official"],
]

RUST_PATH = re.compile(r"\b(crate|super|self|c3n_edge)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_STMT = re.compile(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.S)


def strip_rust(code: str) -> str:
    """Source without comments, string and char literals (so doc links and messages are not
    dependencies)."""
    out, i, n = [], 0, len(code)
    while i < n:
        c = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            i = n if j < 0 else j
        elif code.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if code.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif code.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', code[i:i + 12]) and (i == 0 or not code[i - 1].isalnum()):
            m = re.match(r'r(#*)"', code[i:])
            end = code.find('"' + m.group(1), i + len(m.group(0)))
            out.append('""')
            i = n if end < 0 else end + 1 + len(m.group(1))
        elif c == '"':
            j = i + 1
            while j < n and code[j] != '"':
                j += 2 if code[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", code[i:i + 12]):
            m = re.match(r"'(\\[^']*|[^\\'])'", code[i:])
            out.append("' '")
            i += len(m.group(0)) if m else 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"] (renames and globs dropped)."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [re.sub(r"as\w+$", "", tree.split(" as ")[0])]
    prefix, inner = tree[:brace], tree[brace + 1:tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if not p:
            continue
        for e in expand_use(p):
            out.append(prefix + e if e not in ("self", "*") else prefix.rstrip(":"))
    return out


def rust_modules(src: Path) -> dict[tuple[str, ...], Path]:
    """Module path (("lib"|"bin", seg, ...)) -> file."""
    mods = {}
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src).with_suffix("").parts
        if rel == ("lib",):
            mods[("lib",)] = f
            continue
        if rel == ("main",):
            mods[("bin",)] = f
            continue
        segs = list(rel)
        if segs[-1] == "mod":
            segs.pop()
        root = "bin" if segs[0] in BIN_DIRS else "lib"
        mods[(root, *segs)] = f
    return mods


BIN_DIRS = {"cli"}  # folders under src/ that belong to the binary (main.rs), not the library


def rust_graph() -> tuple[dict, dict]:
    src = ROOT / "src"
    mods = rust_modules(src)
    edges: dict[tuple, set] = {m: set() for m in mods}
    for mod, f in mods.items():
        code = strip_rust(f.read_text())
        paths = []
        reexports = set()
        for m in USE_STMT.finditer(code):
            for p in expand_use(m.group(2)):
                if m.group(1):
                    reexports.add(p)
                else:
                    paths.append(p)
        body = USE_STMT.sub(" ", code)
        paths += [m.group(0) for m in RUST_PATH.finditer(body)]
        for p in paths:
            segs = [s for s in p.split("::") if s]
            if not segs:
                continue
            head, rest = segs[0], segs[1:]
            if head == "crate":
                base = (mod[0],)
            elif head == "c3n_edge":
                base = ("lib",)
            elif head == "self":
                base = mod
            elif head == "super":
                # `super` of a file's module is its parent module; `super::super` goes on up
                base = mod[:-1] if len(mod) > 1 else mod
                while rest and rest[0] == "super":
                    base, rest = (base[:-1] if len(base) > 1 else base), rest[1:]
            else:
                continue
            target = None
            for k in range(len(rest), -1, -1):
                cand = (*base, *rest[:k])
                if cand in mods:
                    target = cand
                    break
            if target and target != mod:
                edges[mod].add(target)
    return mods, edges


def py_graph() -> tuple[dict, dict]:
    pkg = ROOT / "models" / "c3n"
    mods = {}
    for f in sorted(pkg.rglob("*.py")):
        rel = f.relative_to(pkg.parent).with_suffix("").parts
        if rel[-1] == "__init__":
            rel = rel[:-1]
        mods[rel] = f
    edges: dict[tuple, set] = {m: set() for m in mods}
    for mod, f in mods.items():
        is_pkg = f.name == "__init__.py"
        tree = ast.parse(f.read_text(), str(f))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".") for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = list(mod if is_pkg else mod[:-1])
                    base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                else:
                    base = []
                base += node.module.split(".") if node.module else []
                names = [base + [a.name] for a in node.names]
            for segs in names:
                if not segs or segs[0] != "c3n":
                    continue
                for k in range(len(segs), 0, -1):
                    cand = tuple(segs[:k])
                    if cand in mods:
                        if cand != mod and not (len(cand) < len(mod) and mod[:len(cand)] == cand
                                                and cand == ("c3n",)):
                            edges[mod].add(cand)
                        break
    return mods, edges


def sccs(edges: dict) -> list[list]:
    """Tarjan's strongly connected components (iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def layer_of(name: str, layers: list[list[str]]) -> int | None:
    for i, names in enumerate(layers):
        if name in names:
            return i
    return None


def check(label: str, mods: dict, edges: dict, top, layers, fmt) -> list[str]:
    errors = []
    for comp in sccs(edges):
        errors.append(f"{label}: cycle between " + ", ".join(fmt(m) for m in comp))
    # the same one level up: sibling modules, each taken with all its submodules
    for parent in {m[:k] for m in mods for k in range(1, len(m))}:
        def child(m, parent=parent):
            return m[:len(parent) + 1] if len(m) > len(parent) and m[:len(parent)] == parent else None

        folded: dict[tuple, set] = {}
        for a, targets in edges.items():
            ca = child(a)
            if ca is None:
                continue
            folded.setdefault(ca, set())
            for b in targets:
                cb = child(b)
                if cb is not None and cb != ca:
                    folded[ca].add(cb)
                    folded.setdefault(cb, set())
        for comp in sccs(folded):
            errors.append(f"{label}: cycle between the modules " + ", ".join("::".join(m[1:]) for m in comp))
    for a, targets in edges.items():
        for b in targets:
            ta, tb = top(a), top(b)
            if ta is None or tb is None or ta == tb:
                continue
            la, lb = layer_of(ta, layers), layer_of(tb, layers)
            if ta == "<bin>":
                continue
            if tb == "<bin>":
                errors.append(f"{label}: library module {fmt(a)} uses the binary's {fmt(b)}")
                continue
            if la is None or lb is None:
                missing = ta if la is None else tb
                errors.append(f"{label}: top-level module '{missing}' is in no layer "
                              f"(tests/module_graph.py, ARCHITECTURE.md)")
                continue
            if lb > la:
                errors.append(f"{label}: upward import {fmt(a)} -> {fmt(b)} "
                              f"(layer {la} '{ta}' uses layer {lb} '{tb}')")
    return sorted(set(errors))


def main() -> int:
    mods, edges = rust_graph()
    pmods, pedges = py_graph()

    def rtop(m):
        return "<bin>" if m[0] == "bin" else (m[1] if len(m) > 1 else None)

    def rfmt(m):
        return str(mods[m].relative_to(ROOT))

    def ptop(m):
        return m[1] if len(m) > 1 else None

    def pfmt(m):
        return str(pmods[m].relative_to(ROOT))

    if "--dot" in sys.argv:
        print("digraph src {")
        seen = set()
        for a, ts in edges.items():
            for b in ts:
                e = (rtop(a), rtop(b))
                if None not in e and e[0] != e[1] and e not in seen:
                    seen.add(e)
                    print(f'  "{e[0]}" -> "{e[1]}";')
        print("}")
        return 0
    errors = check("src", mods, edges, rtop, LAYERS, rfmt)
    errors += check("models/c3n", pmods, pedges, ptop, PY_LAYERS, pfmt)
    for e in errors:
        print(e)
    n_edges = sum(len(v) for v in edges.values()) + sum(len(v) for v in pedges.values())
    print(f"module graph: {len(mods)} Rust + {len(pmods)} Python modules, {n_edges} edges, "
          f"{len(errors)} violation(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
