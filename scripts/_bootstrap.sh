# Sourced by scripts/demo, scripts/test and .ci/run: create .venv and install the locked set when needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "» Lege die virtuelle Umgebung .venv an ..."
    "$PYTHON" -m venv .venv
fi
STAMP=".venv/.efa-installed"
WANT="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "» Installiere efa-rollout mit den gesperrten Abhängigkeiten (requirements.lock, einmalig) ..."
    PIP=(.venv/bin/python -m pip --disable-pip-version-check --quiet)
    # Exactly the tested set: every package pinned and hash-checked, nothing resolved anew.
    "${PIP[@]}" install --require-hashes --no-deps -r requirements.lock
    "${PIP[@]}" install --no-deps -e .
    # Drop what an earlier lock installed and this one no longer holds.
    .venv/bin/python scripts/lock_check.py --prune
    echo "$WANT" > "$STAMP"
fi
# Bytecode of our own packages (pip compiled the dependencies): with PYTHONDONTWRITEBYTECODE
# set, every `efa` call would otherwise compile them again (~30 ms). Up-to-date files are skipped.
.venv/bin/python -m compileall -q -j 0 efa_rollout models flows tasks deployments >/dev/null || true
export PATH="$ROOT/.venv/bin:$PATH"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
