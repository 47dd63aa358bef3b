"""Reports and figures (matplotlib); imported only by the CLI and report builders."""

from ._html import build_report as build_report
from ._html import headline as headline
