"""Print structure figures of the production code: lines per folder, long modules, function lengths."""

from __future__ import annotations

import ast
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("efa_rollout", "models", "tasks", "flows", "deployments")


def production_files(root: Path) -> list[Path]:
    """Every Python file of the product, migrations excluded."""
    files: list[Path] = []
    for top in PRODUCTION:
        base = root / top
        if base.is_dir():
            files += [p for p in base.rglob("*.py") if "migrations" not in p.parts]
    return sorted(files)


def folder_of(path: Path, root: Path) -> str:
    """Two levels deep for efa_rollout/, one level for the rest."""
    parts = path.relative_to(root).parts
    if parts[0] == "efa_rollout" and len(parts) > 2:
        return "/".join(parts[:2]) + "/"
    return parts[0] + "/" if len(parts) > 1 else parts[0]


def function_lengths(tree: ast.AST) -> list[int]:
    """Lines per function or method."""
    return [
        node.end_lineno - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno
    ]


def main(root: Path) -> None:
    """Print the figures for the tree at ``root``."""
    lines: Counter[str] = Counter()
    long_modules: list[tuple[int, str]] = []
    lengths: list[int] = []
    for path in production_files(root):
        text = path.read_text(encoding="utf-8")
        count = len(text.splitlines())
        lines[folder_of(path, root)] += count
        if count > 500:
            long_modules.append((count, str(path.relative_to(root))))
        lengths += function_lengths(ast.parse(text))
    total = sum(lines.values())
    print(f"production lines: {total}")
    for folder, count in lines.most_common():
        print(f"  {folder:32} {count:6}  {100 * count / total:5.1f} %")
    print(f"modules over 500 lines: {len(long_modules)}")
    for count, name in sorted(long_modules, reverse=True):
        print(f"  {name} {count}")
    lengths.sort()
    p90 = lengths[int(0.9 * (len(lengths) - 1))]
    print(
        f"functions: {len(lengths)}, median {statistics.median(lengths):.0f}, p90 {p90}, max {lengths[-1]}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT)
