"""The share of public functions and methods whose parameters and return are all annotated.

    python tools/annotation_share.py [--missing] [PATH ...]     (default: aisviz)

Public: a module-level function or a method of a module-level class whose names do not start with "_"
(so __init__ and other dunders are left out); self and cls need no annotation. Prints "annotated/all = share"
per PATH and, with --missing, every function still lacking an annotation.
"""
from __future__ import annotations

import argparse
import ast
from pathlib import Path

Function = ast.FunctionDef | ast.AsyncFunctionDef


def public_functions(tree: ast.Module) -> list[Function]:
    """Module-level functions and the methods of module-level classes, both with public names."""
    found: list[Function] = []
    for node in tree.body:
        members = node.body if isinstance(node, ast.ClassDef) and not node.name.startswith("_") else [node]
        found += [f for f in members if isinstance(f, Function) and not f.name.startswith("_")]
    return found


def fully_annotated(f: Function) -> bool:
    """True when every parameter (but a leading self/cls), *args, **kwargs and the return are annotated."""
    a = f.args
    params = a.posonlyargs + a.args + a.kwonlyargs
    if params and params[0].arg in ("self", "cls"):
        params = params[1:]
    params += [p for p in (a.vararg, a.kwarg) if p is not None]
    return f.returns is not None and all(p.annotation is not None for p in params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["aisviz"])
    parser.add_argument("--missing", action="store_true", help="list the functions still lacking annotations")
    args = parser.parse_args()
    for path in map(Path, args.paths):
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        total, missing = 0, []
        for file in files:
            functions = public_functions(ast.parse(file.read_text(), str(file)))
            total += len(functions)
            missing += [f"{file}:{f.lineno} {f.name}" for f in functions if not fully_annotated(f)]
        done = total - len(missing)
        print(f"{path}: {done}/{total} = {done / max(total, 1):.1%}")
        if args.missing:
            print("".join(f"  {m}\n" for m in missing), end="")


if __name__ == "__main__":
    main()
