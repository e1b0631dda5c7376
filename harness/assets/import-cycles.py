#!/usr/bin/env python3
"""Reports import cycles between the files of one Rust crate.

Usage: import-cycles.py [--child-paths] [SRC_DIR ...]
       (default: unwinder/src harness/src)

A file A imports file B when A names an item of B's module through
`use crate::...`, a `crate::b::...` path, a `super::...` path or a
`self::...` path. With --child-paths, a path in lib.rs / mod.rs that starts
with one of its own child modules (`wasm::frame(...)`, `use heap::Heap`)
counts too, which also shows a parent module and its children that use
each other.
lib.rs is the crate root; a main.rs next to it is a separate crate whose
`crate::` means main.rs. Comments and string literals are ignored.
Prints each directory's cycles (strongly connected components, with one
shortest cycle through each) and exits 1 when any directory has one.
"""

import os
import re
import sys
from collections import defaultdict

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(src):
    """Source with comments, strings and char literals blanked out."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif re.match(r'(b?r)(#*)"', src[i:]) and (i == 0 or not re.match(r"\w", src[i - 1])):
            m = re.match(r'(b?r)(#*)"', src[i:])
            end = '"' + m.group(2)
            j = src.find(end, i + len(m.group(0)))
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'":
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", src[i:])
            if m:
                i += len(m.group(0))
                out.append("' '")
            else:  # a lifetime or label
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def use_paths(tree):
    """Expands a use tree (`a::{b, c::{d, self}}`) into segment lists."""
    tree = re.sub(r"\s+", "", tree)
    tree = re.sub(r"\bas\w+", "", tree)  # `as` aliases (whitespace gone)

    def parse(s, prefix):
        paths, depth, start = [], 0, 0
        parts = []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:k])
                start = k + 1
        parts.append(s[start:])
        for part in parts:
            if not part:
                continue
            if "{" in part:
                head, _, rest = part.partition("{")
                head = [x for x in head.split("::") if x]
                paths += parse(rest[: rest.rfind("}")], prefix + head)
            else:
                segs = [x for x in part.split("::") if x]
                if segs == ["self"]:
                    segs = []
                paths.append(prefix + segs)
        return paths

    return parse(tree, [])


class Crate:
    def __init__(self, root_file):
        self.dir = os.path.dirname(root_file)
        self.files = {}  # module path tuple -> file
        self.walk(root_file, ())

    def walk(self, path, modpath):
        self.files[modpath] = path
        text = strip(open(path, encoding="utf-8").read())
        is_dir_owner = os.path.basename(path) in ("lib.rs", "main.rs", "mod.rs")
        base = os.path.dirname(path) if is_dir_owner else path[: -len(".rs")]
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*;", text):
            name = m.group(1)
            for cand in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
                if os.path.exists(cand):
                    self.walk(cand, modpath + (name,))
                    break

    def file_of(self, segs):
        """The file owning the longest module prefix of an absolute path."""
        for k in range(len(segs), -1, -1):
            if tuple(segs[:k]) in self.files:
                return self.files[tuple(segs[:k])]
        return None

    def edges(self):
        graph = defaultdict(set)
        for modpath, path in self.files.items():
            text = strip(open(path, encoding="utf-8").read())
            children = {p[-1] for p in self.files if len(p) == len(modpath) + 1 and p[:-1] == modpath}
            # Inline modules (`mod tests { ... }`) shift what `super` and
            # `self` mean; track them by brace depth.
            inline = []  # (brace depth at which it closes, name)
            depth = 0
            targets = []
            pos = 0
            tokens = re.finditer(
                r"\bmod\s+(" + IDENT + r")\s*\{|[{}]|\buse\s+([^;]*);"
                r"|(?<![\w:])((?:crate|super|self|" + IDENT + r")(?:::(?:" + IDENT + r"|\{))+)",
                text,
            )
            for m in tokens:
                tok = m.group(0)
                here = modpath + tuple(name for _, name in inline)
                if m.group(1):
                    depth += 1
                    inline.append((depth, m.group(1)))
                    continue
                if tok == "{":
                    depth += 1
                    continue
                if tok == "}":
                    if inline and inline[-1][0] == depth:
                        inline.pop()
                    depth -= 1
                    continue
                if m.group(2) is not None:
                    paths = use_paths(m.group(2))
                    # `use` may itself contain braces; they are balanced.
                else:
                    paths = [[x for x in m.group(3).split("::") if x and x != "{"]]
                for segs in paths:
                    target = self.resolve(segs, here, modpath, children, bool(inline))
                    if target is not None:
                        targets.append(target)
            for t in targets:
                if t != path:
                    graph[path].add(t)
        return graph

    def resolve(self, segs, here, filemod, children, in_inline):
        if not segs:
            return None
        if segs[0] == "crate":
            return self.file_of(segs[1:])
        if segs[0] in ("super", "self"):
            cur = list(here)
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    if not cur:
                        return None
                    cur.pop()
                segs = segs[1:]
            return self.file_of(cur + segs)
        if CHILD_PATHS and segs[0] in children and not in_inline:
            return self.file_of(list(filemod) + segs)
        return None


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def shortest_cycle(graph, comp):
    """One shortest cycle inside a component, as a list of files."""
    comp = set(comp)
    best = None
    for start in sorted(comp):
        prev, frontier = {start: None}, [start]
        found = None
        while frontier and not found:
            nxt = []
            for v in frontier:
                for w in sorted(graph.get(v, ())):
                    if w == start:
                        found = v
                        break
                    if w in comp and w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found:
                    break
            frontier = nxt
        if found:
            path = [found]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            path.reverse()
            if best is None or len(path) < len(best):
                best = path
    return best


def report(src):
    roots = [os.path.join(src, f) for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(src, f))]
    found = False
    for root in roots:
        crate = Crate(root)
        if root.endswith("main.rs") and len(crate.files) == 1:
            continue  # a binary with no modules of its own
        graph = crate.edges()
        comps = cycles(graph)
        rel = lambda f: os.path.relpath(f, src)
        nedges = sum(len(v) for v in graph.values())
        print(f"{rel(root)} in {src}: {len(crate.files)} files, {nedges} import edges, {len(comps)} cycle(s)")
        for comp in comps:
            found = True
            cyc = shortest_cycle(graph, comp)
            print(f"  component: {', '.join(rel(f) for f in comp)}")
            print(f"    e.g. {' -> '.join(rel(f) for f in cyc + cyc[:1])}")
    return found


CHILD_PATHS = False


def main():
    global CHILD_PATHS
    args = sys.argv[1:]
    if "--child-paths" in args:
        CHILD_PATHS = True
        args.remove("--child-paths")
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    dirs = args or [os.path.join(repo, "unwinder", "src"), os.path.join(repo, "harness", "src")]
    bad = False
    for d in dirs:
        bad |= report(d)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
