"""Each package of ``signoff`` says what it owns: a README whose *Owns* names every module.

A package's README (``src/signoff/<package>/README.md``) has the four parts *Owns*, *May
import*, *Key contracts* and *Pitfalls*; its *Owns* part names every module of the package and
of its sub-packages (as `` `name.py` ``, `` `name` `` or a path such as `` `ui/layout.py` ``).
Folders that are not Python packages (Alembic's ``migrations/``) are not modules.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import signoff

ROOT = Path(signoff.__file__).parent
PACKAGES = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())
PARTS = ("Owns", "May import", "Key contracts", "Pitfalls")


def modules_of(package: Path) -> list[str]:
    """Paths (relative to ``package``) of its modules and its sub-packages' modules."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        folders = path.relative_to(package).parents
        if all((package / folder / "__init__.py").is_file() for folder in folders):
            found.append(path.relative_to(package).as_posix())
    return found


def _part(text: str, name: str) -> str | None:
    """The text of one part: from its heading (``## Owns`` or ``**Owns**``) to the next part."""
    starts = {}
    for part in PARTS:
        found = re.search(rf"^(?:#+ *{part}\b|\*\*{part}\*\*)", text, re.MULTILINE)
        if found:
            starts[part] = found.start()
    if name not in starts:
        return None
    later = [at for at in starts.values() if at > starts[name]]
    return text[starts[name] : min(later, default=len(text))]


def mentions(owns: str, module: str) -> bool:
    """Whether ``owns`` names ``module`` (``ui/layout.py``) in backticks, with or without
    ``.py`` and with or without (a tail of) its folder."""
    stem = module.removesuffix(".py").rsplit("/", 1)[-1]
    return re.search(rf"`(?:[\w./]*/)?{re.escape(stem)}(?:\.py)?`", owns) is not None


def test_the_checks_see_a_missing_module() -> None:
    owns = "**Owns**: `sql.py` (the store), `ui/layout.py`, the flavors (`_sklearn`)."
    assert mentions(owns, "sql.py")
    assert mentions(owns, "ui/layout.py")
    assert mentions(owns, "flavors/_sklearn.py")
    assert not mentions(owns, "schema.py")
    assert not mentions(owns, "_sklearn_trusted.py")  # a longer name is another module
    assert not mentions("`sql.py.bak`", "sql.py")
    text = "# x\n\n**Owns**: `a.py`.\n\n## May import\n`b.py`\n"
    assert _part(text, "Owns") == "**Owns**: `a.py`.\n\n"
    assert _part(text, "Pitfalls") is None


def test_packages_are_found() -> None:
    assert {"cli", "server", "notify", "store", "spec"} <= set(PACKAGES)
    assert "ui/layout.py" in modules_of(ROOT / "server")
    assert not [m for m in modules_of(ROOT / "store") if m.startswith("migrations/")]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_readme_has_the_four_parts(package: str) -> None:
    readme = ROOT / package / "README.md"
    assert readme.is_file(), f"signoff.{package} has no README.md"
    text = readme.read_text()
    missing = [part for part in PARTS if _part(text, part) is None]
    assert not missing, f"{readme} lacks {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_owns_names_every_module(package: str) -> None:
    readme = ROOT / package / "README.md"
    assert readme.is_file(), f"signoff.{package} has no README.md"
    owns = _part(readme.read_text(), "Owns") or ""
    missing = [m for m in modules_of(ROOT / package) if not mentions(owns, m)]
    assert not missing, f"{readme}: Owns does not name {missing}"
