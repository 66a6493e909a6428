# Sourced by scripts/demo and scripts/test: create .venv and install the project when needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "» Lege die virtuelle Umgebung .venv an ..."
    "$PYTHON" -m venv .venv
fi
STAMP=".venv/.efa-installed"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "» Installiere efa-rollout mit allen Abhängigkeiten (einmalig, etwa eine Minute) ..."
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    echo "$WANT" > "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
