"""German string literals in production code, per folder (AST; docstrings not counted).

What is left to move into the text catalogue (templates/texts/): ``python3
scripts/german_literals.py [ROOT] [-v]`` (-v lists each literal with file and line). A literal
counts when it has an umlaut, ß, »«, – or a common German word.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from pathlib import Path

WORDS = (
    "und|oder|nicht|der|die|das|ist|sind|wurde|wurden|keine?|bitte|Bitte|Sie|Ihre?|für|mit|von"
    "|vom|bei|nach|ein|eine|einen|noch|schon|gibt|kann|können|Gemeinde|Kampagne|Datei|Zeile"
    "|Spalte|Angaben?|Stufe|offen|gesendet|versandt|abgeschlossen|Rückmeldung|Erinnerung|Frist"
    "|fehlt|ungültig|Eintrag|Adresse|Empfänger|Landratsamt"
)
GERMAN = re.compile(r"[äöüÄÖÜß»«–]|\b(" + WORDS + r")\b")
PRODUCTION = ["efa_rollout", "flows", "tasks", "models", "deployments"]


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every German literal of PATH; an f-string counts once."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
    result = []
    for node in ast.walk(tree):
        text = None
        if not isinstance(node, ast.expr):
            continue
        if isinstance(node, ast.JoinedStr):
            text = "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            text = node.value
        if text and len(text) > 1 and GERMAN.search(text):
            result.append((node.lineno, text))
    return result


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "-v"]
    root = Path(args[0] if args else ".")
    counts: Counter[str] = Counter()
    for top in PRODUCTION:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root)
            if "migrations/versions" in str(rel):
                continue
            for line, text in literals(path):
                counts[str(rel.parent)] += 1
                if "-v" in sys.argv:
                    print(f"{rel}:{line}: {text[:90]!r}")
    for folder, count in sorted(counts.items()):
        print(f"{count:5d}  {folder}")
    print(f"{sum(counts.values()):5d}  total")


if __name__ == "__main__":
    main()
