"""Compare the installed packages with requirements.lock; `--prune` removes what the lock lacks."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
# Installed by venv/pip themselves or the project in editable form; not part of the lock.
NOT_LOCKED = {"efa-rollout", "pip", "setuptools", "wheel"}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def locked(text: str) -> dict[str, str]:
    """The pins of a lock file that apply to this interpreter and platform."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if not match:
            continue
        name, version, marker = match.groups()
        if marker and not Marker(marker).evaluate():
            continue
        pins[canonicalize_name(name)] = version
    return pins


def installed() -> dict[str, str]:
    """The distributions installed in this environment."""
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }


def drift(pins: dict[str, str], present: dict[str, str]) -> tuple[list[str], list[str]]:
    """Differences as (wrong or missing versions, packages the lock does not hold)."""
    wrong = [
        f"{name}: gesperrt {version}, installiert {present.get(name, 'nichts')}"
        for name, version in sorted(pins.items())
        if present.get(name) != version
    ]
    extra = sorted(set(present) - set(pins) - NOT_LOCKED)
    return wrong, extra


def main(argv: list[str]) -> int:
    """Print the drift; exit 1 when there is any (after pruning extras with --prune)."""
    wrong, extra = drift(locked(LOCK.read_text(encoding="utf-8")), installed())
    if "--prune" in argv and extra:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", *extra], check=True)
        extra = []
    for line in wrong:
        print(f"abweichend: {line}")
    for name in extra:
        print(f"nicht gesperrt: {name}")
    return 1 if wrong or extra else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
