"""Module and function sizes of the engine: ``python -m bench.sizes [PATH ...]``.

Prints every module's line count (largest first), flagging those over the module
limit, then every function or method longer than the function limit (decorators and
docstrings included, as a reader meets them). Exits 0 whatever it finds: a size is a
prompt to split, not a rule (see STYLE.md).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MODULE_LIMIT = 400
FUNCTION_LIMIT = 40
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class FunctionSize:
    """One function's place and length in lines."""

    path: Path
    name: str
    line: int
    lines: int


def modules(paths: Sequence[Path]) -> list[Path]:
    """The Python files under ``paths`` (files given directly are kept as they are)."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return found


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def functions(path: Path) -> Iterator[FunctionSize]:
    """Every function and method in ``path``, nested ones included, by qualified name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    yield from _walk(path, tree, "")


def _walk(path: Path, node: ast.AST, prefix: str) -> Iterator[FunctionSize]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
            end = child.end_lineno or child.lineno
            name = f"{prefix}{child.name}"
            yield FunctionSize(path, name, start, end - start + 1)
            yield from _walk(path, child, f"{name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _walk(path, child, f"{prefix}{child.name}.")


def report(paths: Sequence[Path], module_limit: int, function_limit: int) -> str:
    """The printed report: modules by size, then functions over the limit."""
    files = modules(paths)
    sizes = sorted(((line_count(p), p) for p in files), key=lambda item: (-item[0], str(item[1])))
    over = [f for p in files for f in functions(p) if f.lines > function_limit]
    over.sort(key=lambda f: (-f.lines, str(f.path), f.line))
    out = [f"modules ({len(files)}, {sum(n for n, _ in sizes)} lines; over {module_limit} flagged)"]
    for count, path in sizes:
        flag = "  OVER" if count > module_limit else ""
        out.append(f"  {count:6d}  {_shown(path)}{flag}")
    out.append(f"functions over {function_limit} lines ({len(over)})")
    for size in over:
        out.append(f"  {size.lines:6d}  {_shown(size.path)}:{size.line}  {size.name}")
    flagged = sum(1 for count, _ in sizes if count > module_limit)
    out.append(
        f"{flagged} module(s) over {module_limit} lines, {len(over)} function(s) over "
        f"{function_limit}"
    )
    return "\n".join(out)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sizes", description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "engine"])
    parser.add_argument("--module-limit", type=int, default=MODULE_LIMIT)
    parser.add_argument("--function-limit", type=int, default=FUNCTION_LIMIT)
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        parser.error(f"no such file or directory: {', '.join(missing)}")
    print(report(args.paths, args.module_limit, args.function_limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
