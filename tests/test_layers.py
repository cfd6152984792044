"""The layering of the code base (docs/codec.md, "Modules"), read from the source with ``ast``:
no import cycle among gvc_jax modules or among its folders (function-local imports included),
nothing in gvc_jax imports convert_weights, tests, bench or research, bench/research/notebooks
never import tests, and configs/ holds data (it imports nothing from the library)."""
from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPS = ("gvc_jax", "convert_weights", "configs", "bench", "research", "notebooks")


def _modules() -> dict[str, set[str]]:
    """``{module: names it imports}`` for every .py file under TOPS."""
    out = {}
    for top in TOPS:
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                path = os.path.join(d, f)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                pkg = rel.endswith(".__init__")
                mod = rel[:-9] if pkg else rel
                with open(path, encoding="utf-8") as fh:
                    tree = ast.parse(fh.read(), path)
                names = set()
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        names.update(a.name for a in node.names)
                    elif isinstance(node, ast.ImportFrom):
                        if node.level:
                            base = mod.split(".") if pkg else mod.split(".")[:-1]
                            base = base[: len(base) - node.level + 1]
                            m = ".".join(base + ([node.module] if node.module else []))
                        else:
                            m = node.module or ""
                        names.add(m)
                        names.update(f"{m}.{a.name}" for a in node.names)
                out[mod] = names
    return out


def _graph():
    mods = _modules()

    def resolve(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges = {m: {r for n in names if (r := resolve(n)) and r != m} for m, names in mods.items()}
    return mods, edges


def _cycles(nodes, edges) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root] & nodes)))]
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
                    work.append((w, iter(sorted(edges[w] & nodes))))
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


def _folder(m: str, mods) -> str:
    parts = m.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or m + ".__init__" in mods else m


def test_no_import_cycles():
    mods, edges = _graph()
    lib = {m for m in mods if m.split(".")[0] == "gvc_jax"}
    # a package __init__ that imports its own submodules is the package, not a cycle
    lib_edges = {m: {w for w in edges[m] if not w.startswith(m + ".")} for m in lib}
    assert _cycles(lib, lib_edges) == []
    folders = {_folder(m, mods) for m in lib}
    fedges = {f: set() for f in folders}
    for m in lib:
        fedges[_folder(m, mods)].update(_folder(w, mods) for w in lib_edges[m] if w in lib)
    for f in fedges:
        fedges[f].discard(f)
    assert _cycles(folders, fedges) == []


def test_imports_point_the_right_way():
    mods, _ = _graph()
    bad = []
    for m, names in mods.items():
        top = m.split(".")[0]
        for n in names:
            t = n.split(".")[0]
            if top == "gvc_jax" and t in ("convert_weights", "tests", "bench", "research"):
                bad.append(f"{m} imports {n}")
            if top in ("bench", "research", "notebooks") and t == "tests":
                bad.append(f"{m} imports {n}")
            if top == "configs" and t in ("gvc_jax", "convert_weights"):
                bad.append(f"{m} imports {n}")
            if top == "gvc_jax" and t == "gvc_jax" and n.startswith("gvc_jax.testing") \
                    and not m.startswith("gvc_jax.testing"):
                bad.append(f"{m} imports {n}")
    assert bad == []


def test_the_checker_sees_cycles(tmp_path):
    """The cycle search finds what it must (a check that cannot fail proves nothing)."""
    nodes = {"a", "b", "c", "d"}
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(nodes, edges) == [["a", "b", "c"]]
    assert _cycles(nodes, {"a": {"b"}, "b": set(), "c": {"d"}, "d": set()}) == []


def _own_imports():
    """``(file, module named)`` of every absolute import of a project module (top level or
    function-local): ``import a.b`` names a.b, ``from a.b import c`` names a.b."""
    for top in TOPS:
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in (f for f in files if f.endswith(".py")):
                path = os.path.join(d, f)
                with open(path, encoding="utf-8") as fh:
                    tree = ast.parse(fh.read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        named = [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                        named = [node.module]
                    else:
                        continue
                    for n in named:
                        if n.split(".")[0] in TOPS:
                            yield os.path.relpath(path, ROOT), n


def test_every_project_import_names_an_existing_module():
    """A function-local import of a moved or renamed module fails only when that function runs;
    this finds it without running anything."""
    mods = _modules()
    bad = [f"{f}: {n}" for f, n in _own_imports() if n not in mods and not _is_package(n)]
    assert bad == []


def test_docs_name_existing_files_and_modules():
    """Every ``path/to/file.py`` and ``gvc_jax.module`` that the README, docs/ and notebooks
    name exists."""
    import glob
    import re

    mods = _modules()
    texts = [os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "*.md")),
             *glob.glob(os.path.join(ROOT, "notebooks", "*.py"))]
    bad = []
    for t in texts:
        with open(t, encoding="utf-8") as fh:
            s = fh.read()
        name = os.path.relpath(t, ROOT)
        for m in re.finditer(r"\b((?:gvc_jax|bench|tests|research|configs|convert_weights)"
                             r"/[\w/]+\.py)\b", s):
            if not os.path.exists(os.path.join(ROOT, m.group(1))):
                bad.append(f"{name}: {m.group(1)}")
        for m in re.finditer(r"\bgvc_jax(?:\.\w+)+", s):
            parts = m.group(0).split(".")
            while parts and ".".join(parts) not in mods and not _is_package(".".join(parts)):
                parts.pop()
            rest = m.group(0).split(".")[len(parts):]
            # a dotted name past a package must name a module of it or a name in its __init__
            if len(parts) < 2 or (rest and os.path.isdir(os.path.join(ROOT, *parts))
                                  and rest[0] not in _package_names(parts)):
                bad.append(f"{name}: {m.group(0)}")
    assert bad == []


def _is_package(name: str) -> bool:
    """A folder of the project (namespace packages such as gvc_jax/codec have no __init__)."""
    return os.path.isdir(os.path.join(ROOT, *name.split(".")))


def _package_names(parts) -> str:
    init = os.path.join(ROOT, *parts, "__init__.py")
    if not os.path.exists(init):
        return ""
    with open(init, encoding="utf-8") as fh:
        return fh.read()
