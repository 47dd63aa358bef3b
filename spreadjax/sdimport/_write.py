"""Write an imported model as a TOML model file and a config that runs it (``spreadjax import``)."""

from __future__ import annotations

from pathlib import Path

from .._errors import InputError
from ._lower import ImportedModel


def model_path_for(config: Path) -> Path:
    """Where the model file of config ``CONFIG.toml`` goes: ``CONFIG_model.toml`` beside it."""
    return config.with_name(f"{config.stem}_model.toml")


def outputs(imported: ImportedModel) -> list[str]:
    """The names a run keeps: the source's variables that are not constants or lookups (stocks,
    auxiliaries, flows, smooths), in the source's order."""
    kinds = imported.model.names
    return [n for n, _ in imported.names if kinds.get(n) not in (None, "parameter", "lookup", "schedule")]


def config_text(imported: ImportedModel, model_file: str) -> str:
    """The text of a config running ``imported`` from the model file ``model_file`` (relative to
    the config): ``[model] file``, ``[sites]`` when a dimension maps onto sites, per-site
    ``[parameters]`` and ``[simulation]`` with the source's settings."""
    import tomli_w

    data: dict = {"title": f"{Path(imported.source).name} (imported)", "model": {"file": model_file}}
    if imported.sites:
        data["sites"] = {"names": list(imported.sites)}
    if imported.site_values:
        data["parameters"] = {name: list(values) for name, values in imported.site_values}
    data["simulation"] = {"start": imported.start, "end": imported.end, "dt": imported.dt,
                          "output_every": imported.output_every, "solver": imported.solver,
                          "outputs": outputs(imported)}
    head = (f"# Imported from {imported.source} by `spreadjax import`"
            + (f" (sites: the subscript dimension {imported.site_dimension!r})" if imported.site_dimension else "")
            + ".\n# Time is in the source model's time unit. Constants are the model's parameters: add\n"
            "# [priors.NAME] tables to calibrate them, and [data]/[observation] to fit counts.\n\n")
    return head + tomli_w.dumps(data)


def write_import(imported: ImportedModel, config: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``config`` and its model file beside it, each atomically; refuse to overwrite either
    unless ``force``. Returns ``(config, model file)``."""
    from .._io import write_atomic
    from ..models import dump_model_toml

    model_file = model_path_for(config)
    for path in (config, model_file):
        if path.is_dir():
            raise InputError(f"--out {config}: {path} is a folder, where a file is to be written; choose another --out")
        if path.exists() and not force:
            raise InputError(f"--out {config}: {path} exists; pass --force to overwrite it (priors added by hand are lost)")
    model_text = dump_model_toml(imported.model)
    text = config_text(imported, model_file.name)
    write_atomic(model_file, lambda tmp: tmp.write_text(model_text))
    write_atomic(config, lambda tmp: tmp.write_text(text))
    return config, model_file
