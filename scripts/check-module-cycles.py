#!/usr/bin/env python3
"""Fails when the files (modules) of a crate import each other in a circle.

A module depends on another when its text names it through `crate::…` or `super::…` (test
modules included). Each crate's module graph must be acyclic, so that its files read bottom-up:
see ARCHITECTURE.md. Run by .ci/run; standard library only.
"""
import os
import re
import sys

PATH = re.compile(r"\b(crate|super)::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)")


def modules(src):
    """Module path ('a::b') → file, for every .rs file under src."""
    found = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                parts = os.path.relpath(path, src)[:-3].split(os.sep)
                if parts[-1] in ("mod", "lib", "main"):
                    parts = parts[:-1]
                found["::".join(parts)] = path
    return found


def dependencies(module, text, known):
    """The other modules of the crate that `text` (the file of `module`) names."""
    deps = set()
    parent = module.split("::")[:-1]
    for root, tail in PATH.findall(text):
        base = [] if root == "crate" else parent
        tails = [t.strip() for t in tail.strip("{}").split(",")] if tail.startswith("{") else [tail]
        for t in filter(None, tails):
            parts = base + t.split("::")
            for k in range(len(parts), 0, -1):
                candidate = "::".join(parts[:k])
                if candidate in known:
                    if candidate != module and not module.startswith(candidate + "::"):
                        deps.add(candidate)
                    break
    return deps


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    failed = False
    for crate_dir in sorted([os.path.join(root, "crates", c) for c in os.listdir(os.path.join(root, "crates"))] + [root]):
        src = os.path.join(crate_dir, "src")
        if not os.path.isdir(src):
            continue
        known = modules(src)
        graph = {m: dependencies(m, open(p, encoding="utf-8").read(), known) for m, p in known.items()}
        for component in cycles(graph):
            failed = True
            edges = "; ".join(f"{m} -> {', '.join(sorted(graph[m] & set(component)))}" for m in component)
            print(f"{os.path.relpath(src, root)}: modules import each other in a circle: {edges}", file=sys.stderr)
    if failed:
        sys.exit(1)
    print("module graphs: no cycles")


if __name__ == "__main__":
    main()
