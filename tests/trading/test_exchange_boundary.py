"""One module talks to BingX: no application code outside trading/exchange/ imports ccxt."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPLICATION_PACKAGES = ("tvbingx", "trading", "signals_app", "telegram_bot", "reports")


def _imports_ccxt(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "ccxt" for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ccxt":
            return True
    return False


def test_only_the_exchange_package_imports_ccxt():
    offenders = [
        str(path.relative_to(ROOT))
        for package in APPLICATION_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if _imports_ccxt(path) and (ROOT / "trading" / "exchange") not in path.parents
    ]

    assert offenders == []
