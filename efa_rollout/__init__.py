"""efa-rollout: coordinate EfA service rollouts across the municipalities of a district."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root: holds templates/ (mail, reports, campaign definitions).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
