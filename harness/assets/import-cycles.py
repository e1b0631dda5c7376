#!/usr/bin/env python3
"""File-level import cycles of a Rust crate's src directory.

Usage: import-cycles.py SRC_DIR [--graph]

Builds the graph "file A names an item of file B" from
  * `use crate::...` trees (groups `{a, b::{c, d}}` expanded),
  * `crate::a::b` paths anywhere in the code,
  * `super::` and `self::` paths (relative to the module they are written in,
    inline `mod x { ... }` blocks included, so a test module's `use super::*`
    points at its own file),
  * bare `child::` paths in a module that declares `mod child;`,
and reports every cycle: each strongly connected component of more than one
file, with one closed path through it and the lines that make its edges.
`mod x;` declarations are not imports. Comments and string literals are
ignored. Exit status: 0 without cycles, 1 with cycles, 2 on bad usage.
Works on any crate's src directory (lib.rs and main.rs are both roots).
"""

import os
import re
import sys


def strip_comments_and_strings(text):
    """Blank out comments and string/char literals, keeping line numbers."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        m = re.match(r'b?r(#*)"', text[i:i + 40])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == "'":
            # char literal ('a', '\n', '\u{..}') but not a lifetime ('a)
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '")
                i += m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def module_of(rel):
    """Module path (tuple) of a file relative to src."""
    parts = rel[:-3].split(os.sep)
    if parts in (["lib"], ["main"]):
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    depth = 0
    for k, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                prefix, inner = tree[:k], tree[k + 1:tree.rfind("}")]
                items, cur, d = [], "", 0
                for x in inner:
                    if x == "," and d == 0:
                        items.append(cur)
                        cur = ""
                        continue
                    d += (x == "{") - (x == "}")
                    cur += x
                items.append(cur)
                res = []
                for it in items:
                    if not it:
                        continue
                    for sub in expand_use_tree(it):
                        res.append(prefix + sub if sub != "self" else prefix.rstrip(":"))
                return res
            depth += 1
    return [tree]


PATH_RE = re.compile(r"(?<![\w:])((?:crate|super|self|[A-Za-z_]\w*)(?:::(?:super|[A-Za-z_]\w*))+)")
MOD_OPEN_RE = re.compile(r"\bmod\s+([A-Za-z_]\w*)\s*\{")
USE_RE = re.compile(r"\buse\s+([^;]+);", re.S)


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # module path -> rel file
        for root, _, names in os.walk(src):
            for name in sorted(names):
                if name.endswith(".rs"):
                    rel = os.path.relpath(os.path.join(root, name), src)
                    mod = module_of(rel)
                    if rel == "main.rs" and () in self.files:
                        mod = ("<main>",)
                    self.files.setdefault(mod, rel)
        self.modules = set(self.files)

    def file_for(self, path):
        """The file owning the longest module prefix of `path`."""
        for k in range(len(path), -1, -1):
            if tuple(path[:k]) in self.files:
                return self.files[tuple(path[:k])]
        return None

    def resolve(self, segs, here, file_mod):
        """Absolute module path named by `segs` written in module `here`."""
        if not segs:
            return None
        if segs[0] == "crate":
            return list(segs[1:])
        if segs[0] in ("super", "self"):
            base = list(here)
            i = 0
            while i < len(segs) and segs[i] in ("super", "self"):
                if segs[i] == "super":
                    if not base:
                        return None
                    base.pop()
                i += 1
            return base + list(segs[i:])
        # bare path: a child module of the module it is written in
        if tuple(list(here) + [segs[0]]) in self.modules:
            return list(here) + list(segs)
        return None

    def edges(self):
        out = {}
        for mod, rel in sorted(self.files.items()):
            text = open(os.path.join(self.src, rel), encoding="utf-8").read()
            code = strip_comments_and_strings(text)
            base = [] if mod == ("<main>",) else list(mod)
            # inline module spans: (start offset, end offset, module path)
            spans = []
            for m in MOD_OPEN_RE.finditer(code):
                depth, j = 1, m.end()
                while j < len(code) and depth:
                    depth += (code[j] == "{") - (code[j] == "}")
                    j += 1
                spans.append((m.start(), j, m.group(1)))

            def module_at(pos):
                path = list(base)
                for s, e, name in spans:
                    if s <= pos < e:
                        path.append(name)
                return path

            def add(target_mod, pos):
                if target_mod is None:
                    return
                tgt = self.file_for(target_mod)
                if tgt and tgt != rel:
                    line = code.count("\n", 0, pos) + 1
                    out.setdefault(rel, {}).setdefault(tgt, []).append(line)

            used = []
            for m in USE_RE.finditer(code):
                for p in expand_use_tree(m.group(1)):
                    p = p.split(" as ")[0]
                    segs = [s for s in p.split("::") if s and s != "*"]
                    used.append((segs, m.start()))
            for m in PATH_RE.finditer(code):
                used.append((m.group(1).split("::"), m.start()))
            for segs, pos in used:
                here = module_at(pos)
                add(self.resolve(segs, here, mod), pos)
        return out


def sccs(nodes, graph):
    index, low, stack, on, res, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            res.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return [c for c in res if len(c) > 1]


def a_cycle(comp, graph):
    """One closed path through a strongly connected component."""
    members = set(comp)
    start = comp[0]
    # breadth-first search back to start
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, {})):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 1 or not os.path.isdir(args[0]):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    crate = Crate(args[0])
    graph = crate.edges()
    nodes = sorted(crate.files.values())
    n_edges = sum(len(v) for v in graph.values())
    if "--graph" in argv:
        for a in nodes:
            for b, lines in sorted(graph.get(a, {}).items()):
                print(f"{a} -> {b}  (line {', '.join(map(str, sorted(set(lines))))})")
    comps = sccs(nodes, graph)
    print(f"{args[0]}: {len(nodes)} files, {n_edges} file-to-file imports, "
          f"{len(comps)} cycle(s)")
    for comp in comps:
        cyc = a_cycle(comp, graph)
        print(f"cycle among {len(comp)} files: {', '.join(comp)}")
        for a, b in zip(cyc, cyc[1:]):
            lines = sorted(set(graph[a][b]))
            print(f"  {a} -> {b}  (line {', '.join(map(str, lines))})")
    return 1 if comps else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
