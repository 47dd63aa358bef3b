"""Import system-dynamics models written for other tools (Vensim .mdl, XMILE .xmile/.stmx).

:func:`import_model` parses a file into the neutral IR (``_ir.Project``) and lowers it onto a
:class:`spreadjax.core.Model` with simulation settings (:class:`ImportedModel`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from ._ir import Project
    from ._lower import ImportedModel

#: file suffixes each importer reads
SUFFIXES = {".mdl": "vensim", ".xmile": "xmile", ".stmx": "xmile", ".xml": "xmile"}


def parse_file(path: str | Path) -> "Project":
    """Parse a Vensim or XMILE file into the neutral IR, chosen by the file's suffix."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"{path}: cannot import a {path.suffix or 'suffix-less'} file; "
            f"expected one of {', '.join(SUFFIXES)}"
        )
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    if kind == "vensim":
        from ._vensim import parse
    else:
        from ._xmile import parse
    return parse(path)


def import_model(path: str | Path, *, sites: str | None = None) -> "ImportedModel":
    """Parse ``path`` and lower it onto a spreadjax model; ``sites`` names the subscript
    dimension whose elements become spreadjax sites (other dimensions are expanded)."""
    from ._lower import lower

    return lower(parse_file(path), sites=sites)


__all__ = ["SUFFIXES", "import_model", "parse_file"]
