"""What spreadjax refuses: a table of bad inputs across every subcommand.

Each case must exit with code 2 and print exactly one line, ``error: ...``, naming the file, key,
row or value (the expected text), with no traceback, and leave nothing behind: the folder the
case works in holds the same files, byte for byte, before and after. Values are ones users
really have (populations of 7 and 900, two sites with real names), not only the defaults.
docs/refusals.md lists the same rules in words.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from spreadjax._cli import app

runner = CliRunner()

COUNTS = """site,time,population,adopters
Ashford,0.25,7,1
Ashford,0.5,7,2
Ashford,0.75,7,4
Ashford,1.0,7,5
Leeds,0.25,900,20
Leeds,0.5,900,70
Leeds,0.75,900,180
Leeds,1.0,900,330
"""


def model_toml(parameters: str = "population = [7, 900]\ninitial_adopters = [1, 3]", simulation: str = "",
               extra: str = "", sites: str = '["Ashford", "Leeds"]') -> str:
    """A fast two-site design ensemble (12 steps a year, 1 year)."""
    return textwrap.dedent("""
        title = "refusals"
        [model]
        name = "four_stage"
        [sites]
        names = {sites}
        [parameters]
        {parameters}
        [simulation]
        end = 1.0
        steps_per_year = 12
        outputs_per_year = 4
        {simulation}
        """).format(sites=sites, parameters=parameters, simulation=simulation) + textwrap.dedent(extra)


ENSEMBLE = """
[ensemble]
source = "design"
design = { q = [0.2, 1.2] }
draws = 4
chunk_size = 2
"""


def calibration_toml(data: str = "counts.csv", parameters: str = "initial_adopters = 0.0", simulation: str = "",
                     extra: str = "") -> str:
    """Fits q to the counts above (the population comes from the data)."""
    return model_toml(parameters, simulation, f"""
        [data]
        counts = "{data}"
        [priors.q]
        dist = "LogNormal"
        loc = -0.5
        scale = 1.0
        [calibration]
        chains = 1
        warmup = 20
        samples = 10
        {extra}
        """)


def fake_posterior(path: Path, sites=("Ashford", "Leeds"), population=(7.0, 900.0)) -> Path:
    """A posterior.nc shaped like calibrate's, recording other sites or populations."""
    from spreadjax.calibrate._run import write_posterior

    post = xr.Dataset({"q": (("chain", "draw"), np.full((1, 5), 0.4))},
                      coords={"chain": [0], "draw": np.arange(5)}, attrs={"calibrated_model": "x"})
    obs = xr.Dataset({"population": (("site",), np.asarray(population))}, coords={"site": list(sites)})
    return write_posterior({"posterior": post, "observed_data": obs}, path)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.rglob("*"))}


def cfg(tmp: Path, text: str, name: str = "cfg.toml") -> Path:
    (tmp / "counts.csv").write_text(COUNTS)
    (tmp / name).write_text(text)
    return tmp / name


# Each case: (make(tmp) -> argv, text the one line must contain). ``tmp`` holds counts.csv.
OBS = """
[observation]
{}
"""

SHARE_MODEL = """
[model]
name = "share"
[parameters.rate]
default = 1.0
[stocks.u]
init = 1.0
[stocks.a]
init = 0.0
[flows.adopting]
rate = "rate * u"
source = "u"
sink = "a"
"""


def share_model(tmp: Path, observation: str, ensemble: bool = True, outputs: str | None = None) -> Path:
    """A model in shares of a population of 1 (no population parameter) fitted to the counts."""
    (tmp / "share.toml").write_text(SHARE_MODEL)
    table = ENSEMBLE.replace('source = "design"', 'source = "prior"').replace("design = { q = [0.2, 1.2] }", "")
    table += f"outputs = {outputs}\n" if outputs else ""
    text = calibration_toml(extra=OBS.format(observation) + (table if ensemble else ""))
    text = text.replace('name = "four_stage"', 'file = "share.toml"').replace("initial_adopters = 0.0", "")
    return cfg(tmp, text.replace("[priors.q]", "[priors.rate]"))


def share_without_data(tmp: Path) -> Path:
    """The share model with an [ensemble] but no [data]/[observation] to say what is adopted."""
    (tmp / "share.toml").write_text(SHARE_MODEL)
    text = model_toml("", extra=ENSEMBLE.replace('source = "design"', 'source = "fixed"').replace("design = { q = [0.2, 1.2] }", ""))
    return cfg(tmp, text.replace('name = "four_stage"', 'file = "share.toml"'))


CASES = {
    # -- the config file itself
    "config-missing": (lambda t: ["check", t / "nope.toml"], "nope.toml: no such config file"),
    "config-is-directory": (lambda t: ["check", t], "is a directory, expected a TOML config file"),
    "config-binary": (lambda t: ["check", _bytes(t / "c.toml", b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 40)],
                      "c.toml: not a text file"),
    "config-not-toml": (lambda t: ["check", cfg(t, "[model\nname = 1\n")], "not valid TOML"),
    "unknown-section": (lambda t: ["check", cfg(t, model_toml(extra="[simulaton]\nend = 2.0\n"))],
                        "unknown key 'simulaton'"),
    "unknown-key-simulation": (lambda t: ["check", cfg(t, model_toml(simulation="solvr = \"rk4\""))],
                               "[simulation] unknown key 'solvr'"),
    "unknown-key-inline-edge": (
        lambda t: ["check", cfg(t, model_toml(extra='[network]\nkind = "edges"\n'
                                              'edges = [{ source = "Ashford", target = "Leeds", wieght = 2.0 }]\n'))],
        "[network] edges[0] unknown key 'wieght'; did you mean 'weight'?"),
    "unknown-key-inline-target": (
        lambda t: ["check", cfg(t, model_toml(extra=ENSEMBLE + "targets = [{ fraction = 0.5, by = 1.0, lable = 'x' }]\n"))],
        "[ensemble] targets[0] unknown key 'lable'"),
    "unknown-key-scenario": (lambda t: ["check", cfg(t, model_toml(extra="[scenarios.a]\ndescrption = 'x'\n"))],
                             "[scenarios.a] unknown key 'descrption'"),
    "unknown-key-prior": (lambda t: ["check", cfg(t, calibration_toml().replace("scale = 1.0", "scale = 1.0\nsacle = 2"))],
                          "[priors.q] unknown key 'sacle'"),
    "unknown-model-option": (lambda t: ["check", cfg(t, model_toml(extra="[model.options]\nawareness = false\n"))],
                             "has no option 'awareness'"),
    "unknown-parameter": (lambda t: ["check", cfg(t, model_toml("population = [7, 900]\npeer_influenze = 2.0"))],
                          "unknown parameter 'peer_influenze'"),
    # -- values outside their physical range
    "infinite-rate": (lambda t: ["check", cfg(t, model_toml("population = [7, 900]\nq = inf"))],
                      "[parameters] q = inf: expected a finite number"),
    "nan-rate": (lambda t: ["check", cfg(t, model_toml("population = [7, 900]\np = nan"))], "[parameters] p is nan"),
    "negative-rate": (lambda t: ["check", cfg(t, model_toml("population = [7, 900]\nq = -0.3"))],
                      "[parameters] q = -0.3 is negative"),
    "share-above-one": (lambda t: ["check", cfg(t, model_toml("population = [7, 900]\nreach = 1.5"))],
                        "[parameters] reach = 1.5 is out of range"),
    "share-in-schedule": (
        lambda t: ["check", cfg(t, model_toml(extra="[schedules.programme]\ntimes = [0.0]\nvalues = [1.2]\n"))],
        "[schedules.programme] values[0] = 1.2 is out of range [0, 1]"),
    "adopters-above-population": (lambda t: ["check", cfg(t, model_toml("population = [7, 900]\ninitial_adopters = [8, 3]"))],
                                  "at site 1: initial_adopters 8 + initial_aware 0 exceed(s) population 7"),
    "aware-and-adopters-above-population": (
        lambda t: ["check", cfg(t, model_toml("population = [7, 900]\ninitial_adopters = [4, 3]\ninitial_aware = 4"))],
        "initial_adopters 4 + initial_aware 4 exceed(s) population 7"),
    "scenario-adopters-above-population": (
        lambda t: ["check", cfg(t, model_toml(extra="[scenarios.a]\nparameters = { initial_adopters = 901 }\n"))],
        "[scenarios.a] at site 1"),
    "scenario-changes-population": (
        lambda t: ["check", cfg(t, model_toml(extra="[scenarios.a]\nparameters = { population = 50 }\n"))],
        "[scenarios.a] parameters: population is fixed per site"),
    "no-population": (lambda t: ["check", cfg(t, model_toml("q = 0.5"))], "[parameters] population is missing"),
    "fractional-population-stochastic": (
        lambda t: ["check", cfg(t, model_toml("population = [7.5, 900]", extra="[stochastic]\nenabled = true\n"))],
        "population = 7.5 at site 1: stochastic runs count organisations"),
    "blank-site-name": (lambda t: ["check", cfg(t, model_toml(sites='["Ashford", "  "]'))],
                        "[sites] names[1] = '  ': a site name must be non-blank"),
    "site-named-all": (lambda t: ["check", cfg(t, model_toml(sites='["all", "Leeds"]'))], "'all' is reserved"),
    "duplicate-site": (lambda t: ["check", cfg(t, model_toml(sites='["Leeds", "Leeds"]'))], "'Leeds' appears twice"),
    "per-site-list-length": (lambda t: ["check", cfg(t, model_toml("population = [7, 900, 40]"))],
                             "[parameters] population has 3 values but there are 2 sites"),
    "target-fraction": (lambda t: ["check", cfg(t, model_toml(extra=ENSEMBLE + "targets = [{ fraction = 1.5, by = 1.0 }]\n"))],
                        "fraction = 1.5: expected a number in (0, 1]"),
    "chunk-size-zero": (lambda t: ["check", cfg(t, model_toml(extra=ENSEMBLE.replace("chunk_size = 2", "chunk_size = 0")))],
                        "[ensemble] chunk_size = 0"),
    # -- side files: network and data
    "network-file-missing": (lambda t: ["check", cfg(t, model_toml(extra='[network]\nkind = "edges"\nfile = "e.csv"\n'))],
                             "[network] file"),
    "network-file-directory": (
        lambda t: ["check", cfg(t, model_toml(extra='[network]\nkind = "edges"\nfile = "sub"\n'), "c.toml")
                   if (t / "sub").mkdir() is None else None], "is a directory, expected a CSV file"),
    "network-file-binary": (
        lambda t: ["check", cfg(t, model_toml(extra='[network]\nkind = "edges"\nfile = "e.csv"\n'))
                   if _bytes(t / "e.csv", b"\xff\xfe\x00\x81" * 50) else None], "is not UTF-8 text"),
    "data-file-directory": (lambda t: ["check", cfg(t, calibration_toml(data="sub"))] if (t / "sub").mkdir() is None
                            else None, "is a directory, expected a CSV file"),
    "data-file-binary": (lambda t: ["check", cfg(t, calibration_toml(data="d.csv"))]
                         if _bytes(t / "d.csv", b"\x00\xff\x81\x90" * 64) else None, "not UTF-8 text"),
    "data-count-above-population": (
        lambda t: ["check", cfg(t, calibration_toml(data="d.csv"))]
        if (t / "d.csv").write_text(COUNTS.replace("Ashford,1.0,7,5", "Ashford,1.0,7,9")) else None,
        "value '9': adopters above the population 7"),
    "data-sites-differ": (lambda t: ["check", cfg(t, calibration_toml().replace('["Ashford", "Leeds"]', '["Ashford", "York"]'))],
                          "unknown site 'Leeds'"),
    "data-beyond-horizon": (lambda t: ["check", cfg(t, calibration_toml(simulation="").replace("end = 1.0", "end = 0.5"))],
                            "[data] observations run from year 0.25 to 1 but [simulation] covers 0 to 0.5"),
    "population-disagrees-with-data": (
        lambda t: ["check", cfg(t, calibration_toml(parameters="initial_adopters = 0.0\npopulation = [7, 100]"))],
        "[parameters] population = [7, 100] but the data"),
    # -- [observation]: which model quantity the counts are compared with, and in what units
    "observation-scale-unknown": (lambda t: ["check", cfg(t, calibration_toml(extra=OBS.format('scale = "percent"')))],
                                  "[observation] scale = 'percent': expected \"count\""),
    "observation-cumulative-unknown": (
        lambda t: ["check", cfg(t, calibration_toml(extra=OBS.format('cumulative = "adopted + discontinud"')))],
        "[observation] cumulative = 'adopted + discontinud': 'discontinud' is not a name in the model"),
    "observation-cumulative-parameter": (
        lambda t: ["check", cfg(t, calibration_toml(extra=OBS.format('cumulative = "q"')))],
        "[observation] cumulative = 'q': 'q' is a parameter; expected a stock or auxiliary"),
    "observation-cumulative-expression": (
        lambda t: ["check", cfg(t, calibration_toml(extra=OBS.format('cumulative = "2 * adopted"')))],
        "[observation] cumulative = '2 * adopted': expected the name of a model stock or auxiliary"),
    "observation-cumulative-not-text": (lambda t: ["check", cfg(t, calibration_toml(extra=OBS.format("cumulative = 3")))],
                                        "[observation] cumulative = 3: expected the name"),
    "observation-share-without-ever-adopted": (
        lambda t: ["check", share_model(t, 'cumulative = "a"\nscale = "count"')],
        "names none: set [model] population"),
    "observation-share-no-default-stock": (
        lambda t: ["check", share_model(t, "")],
        "the stock 'ever_adopted'; model 'share' (file 'share.toml') has none"),
    "ensemble-share-unknown-cumulative": (lambda t: ["ensemble", share_model(t, 'cumulative = "b"\nscale = "fraction"'),
                                                     "--out", t / "out"],
                                          "[observation] cumulative = 'b': 'b' is not a name in the model"),
    "ensemble-share-outputs-without-cumulative": (
        lambda t: ["ensemble", share_model(t, 'cumulative = "a"\nscale = "fraction"', outputs='["u"]'), "--out", t / "out"],
        "[ensemble] outputs must include 'a' (the summaries use it)"),
    "ensemble-table-model-without-adopted": (lambda t: ["check", share_without_data(t)],
                                             "[ensemble]: model 'share': ensembles need an 'adopted' stock"),
    # -- sizes refused before anything is allocated
    "outputs-per-year-huge": (lambda t: ["check", cfg(t, model_toml(simulation="").replace(
        "outputs_per_year = 4", "outputs_per_year = 1000000000").replace("steps_per_year = 12", "steps_per_year = 1000000000"))],
        "output times"),
    "steps-too-many": (lambda t: ["check", cfg(t, model_toml().replace("end = 1.0", "end = 100000.0").replace(
        "steps_per_year = 12", "steps_per_year = 100000"))], "solver steps per run"),
    "simulate-replicates-huge": (
        lambda t: ["simulate", cfg(t, model_toml(extra="[stochastic]\nenabled = true\nreplicates = 1000000000000\n")),
                   "--out", t / "out"], "simulating 1,000,000,000,000 replicate(s)"),
    "ensemble-replicates-huge": (
        lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE + "replicates = 1000000000000\n")), "--out", t / "out",
                   "--workers", "0"], "of memory"),
    "ensemble-draws-huge-store": (
        lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE.replace("draws = 4", "draws = 100000000000000"))),
                   "--out", t / "out", "--workers", "0"], "the ensemble (100,000,000,000,000 draws"),
    "ensemble-store-too-big-for-disk": (
        lambda t: ["ensemble", cfg(t, model_toml(extra='[ensemble]\nsource = "fixed"\ndraws = 10000000000\n')),
                   "--out", t / "out", "--workers", "0"], "of disk in"),
    "summaries-only-huge": (
        lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE + "replicates = 1000000000000\n")), "--out", t / "out",
                   "--summaries-only"], "of memory"),
    "calibrate-samples-huge": (
        lambda t: ["calibrate", cfg(t, calibration_toml().replace("samples = 10", "samples = 100000000000")),
                   "--out", t / "out"], "lower [calibration] samples"),
    "workers-negative": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE)), "--out", t / "out", "--workers", "-1"],
                         "--workers -1: expected a whole number >= 1"),
    "workers-too-many": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE)), "--out", t / "out",
                                    "--workers", "100000000"], "100000000 local dask worker(s)"),
    "run-workers-negative": (lambda t: ["run", cfg(t, calibration_toml()), "--out", t / "out", "--workers", "-3"],
                             "--workers -3"),
    # -- output folders
    "simulate-out-is-file": (lambda t: ["simulate", cfg(t, model_toml()), "--out", t / "counts.csv"],
                             "counts.csv: exists and is not a folder"),
    "ensemble-out-is-file": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE)), "--out", t / "counts.csv"],
                             "exists and is not a folder"),
    "calibrate-out-is-file": (lambda t: ["calibrate", cfg(t, calibration_toml()), "--out", t / "counts.csv"],
                              "exists and is not a folder"),
    "run-out-under-file": (lambda t: ["run", cfg(t, calibration_toml()), "--out", t / "counts.csv" / "out"],
                           "is a file, not a folder"),
    "simulate-out-not-writable": (lambda t: ["simulate", cfg(t, model_toml()), "--out", "/proc/spreadjax-out"],
                                  "--out /proc/spreadjax-out: cannot write in /proc"),
    "run-too-few-members": (lambda t: ["run", cfg(t, calibration_toml() + "[ensemble]\ndraws = 4\n"), "--out", t / "out"],
                            "draws x replicates = 4: the lever sensitivities"),
    "report-no-folder": (lambda t: ["report", t / "nothing-here"], "nothing-here: no such folder"),
    "report-on-a-file": (lambda t: ["report", _bytes(t / "report.html", b"<html></html>")], "report.html: is not a folder"),
    "report-corrupt-summary": (lambda t: ["report", _run_dir(t, {"summary.json": b"garbage{"})],
                               "summary.json: not a readable JSON"),
    "report-corrupt-posterior": (lambda t: ["report", _run_dir(t, {"posterior.nc": b"\x89HDF\r\n"})],
                                 "posterior.nc: not a readable posterior file"),
    "calibrate-without-data": (lambda t: ["calibrate", cfg(t, model_toml()), "--out", t / "out"],
                               "has no [data] section"),
    # -- posteriors
    "posterior-corrupt": (lambda t: ["ensemble", cfg(t, calibration_toml()), "--out", t / "out", "--workers", "0",
                                     "--posterior", _bytes(t / "p.nc", b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 99)],
                          "p.nc: not a readable posterior file"),
    "posterior-is-directory": (lambda t: ["ensemble", cfg(t, calibration_toml()), "--out", t / "out", "--workers", "0",
                                          "--posterior", t], "is a directory, expected a posterior.nc file"),
    "posterior-other-sites": (lambda t: ["ensemble", cfg(t, calibration_toml()), "--out", t / "out", "--workers", "0",
                                         "--posterior", fake_posterior(t / "p.nc", sites=("Ashford", "York"))],
                              "calibrated on sites ['Ashford', 'York']; "),
    "posterior-other-population": (
        lambda t: ["ensemble", cfg(t, calibration_toml()), "--out", t / "out", "--workers", "0",
                   "--posterior", fake_posterior(t / "p.nc", population=(7.0, 100.0))],
        "calibrated with population [7, 100];"),
    "posterior-other-model": (lambda t: ["ensemble", cfg(t, calibration_toml()), "--out", t / "out", "--workers", "0",
                                              "--posterior", fake_posterior(t / "p.nc")],
                                   "calibrated with a different model"),
    "scheduler-and-workers": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE)), "--out", t / "out",
                                         "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
                              "give --scheduler or --workers, not both"),
    # -- backtests
    "backtest-without-data": (lambda t: ["backtest", cfg(t, model_toml()), "--out", t / "out"],
                              "a backtest needs [data] and [priors]"),
    "backtest-unknown-key": (lambda t: ["backtest", cfg(t, calibration_toml() + "[backtest]\norigin = 3\n"),
                                        "--out", t / "out"], "[backtest] unknown key 'origin'"),
    "backtest-origin-not-observed": (lambda t: ["backtest", cfg(t, calibration_toml() + "[backtest]\norigins = [0.6]\n"),
                                                "--out", t / "out"], "[backtest] origins: 0.6 is not an observation time"),
    "backtest-origin-at-the-end": (lambda t: ["backtest", cfg(t, calibration_toml() + "[backtest]\norigins = [1.0]\n"),
                                              "--out", t / "out"], "[backtest] origins: 1 is not an observation time"),
    "backtest-min-train": (lambda t: ["backtest", cfg(t, calibration_toml() + "[backtest]\nmin_train = 1.5\n"),
                                      "--out", t / "out"], "[backtest] min_train = 1.5"),
    "backtest-draws-few": (lambda t: ["check", cfg(t, calibration_toml() + "[backtest]\ndraws = 3\n")],
                           "[backtest] draws = 3: expected a whole number >= 10"),
    # -- comparisons: the same data, sites and origins, at least two configs, distinct names
    "compare-one-config": (lambda t: ["compare", cfg(t, calibration_toml()), "--out", t / "out"],
                           "a comparison needs at least 2 configs; got 1: "),
    "compare-same-name": (lambda t: _pair(t, calibration_toml(data="../counts.csv"), "sub/cfg.toml"),
                          "both are named 'cfg'"),
    "compare-other-data": (lambda t: _pair(t, calibration_toml(data="counts2.csv"),
                                           counts=COUNTS.replace("Leeds,1.0,900,330", "Leeds,1.0,900,331")),
                           "other.toml fit different data: "),
    "compare-other-sites": (lambda t: _pair(t, calibration_toml().replace('["Ashford", "Leeds"]', '["Leeds", "Ashford"]')),
                            "have different sites: ['Ashford', 'Leeds'] and ['Leeds', 'Ashford']"),
    "compare-other-origins": (lambda t: _pair(t, calibration_toml() + "[backtest]\norigins = [0.5]\n"),
                              "have different [backtest] origins: [0.5, 0.75] and [0.5] years"),
    "compare-unknown-key": (lambda t: ["check", cfg(t, calibration_toml() + "[compare]\nwth = ['x.toml']\n")],
                            "[compare] unknown key 'wth'; did you mean 'with'?"),
    "compare-missing-file": (lambda t: ["check", cfg(t, calibration_toml() + "[compare]\nwith = ['nope.toml']\n")],
                             "nope.toml: no such config file"),
    "run-compare-other-data": (
        lambda t: _pair(t, calibration_toml(data="counts2.csv"), counts=COUNTS.replace("Leeds,1.0,900,330", "Leeds,1.0,900,331"))
        and ["run", cfg(t, calibration_toml() + ENSEMBLE_RUN + "[compare]\nwith = ['other.toml']\n", "main.toml"),
             "--out", t / "out", "--workers", "0", "--backtest"], "fit different data"),
    # -- damaged stores: named, never read as data
    "verify-no-folder": (lambda t: ["verify", t / "nothing-here"], "nothing-here: no such folder"),
    "verify-on-a-file": (lambda t: ["verify", _bytes(t / "e.zarr", b"PK\x03\x04")], "e.zarr: is not a folder"),
    "verify-not-a-store": (lambda t: ["verify", t], "not a readable spreadjax ensemble store"),
    "verify-garbage-chunk": (lambda t: ["verify", _run_dir(t, {"ensemble.zarr/adopted/1.0.0.0.0": b"\x00garbage" * 9})],
                             "chunk 1 adopted (unreadable"),
    "verify-deleted-chunk": (lambda t: ["verify", _run_dir(t, {"ensemble.zarr/adopted/0.0.0.0.0": None})],
                             "chunk 0 adopted (missing)"),
    "verify-truncated-chunk": (lambda t: ["verify", _run_dir(t, {"ensemble.zarr/adopted/0.0.0.0.0": 12})],
                               "chunk 0 adopted (unreadable"),
    "run-resume-damaged-draws": (lambda t: ["run", _finished_run().parent / "cfg.toml", "--out",
                                            _run_dir(t, {"ensemble.zarr/draw_q/0.0": b"\xff" * 16})],
                                 "draw_q (checksum differs"),
    # -- a second sweep (issue 14): files that are not regular files, values past what can be counted
    "config-fifo": (lambda t: ["check", _fifo(t / "c.toml")], "c.toml: is not a regular file (a pipe"),
    "config-device": (lambda t: ["check", "/dev/zero"], "/dev/zero: is not a regular file"),
    "config-empty": (lambda t: ["check", _bytes(t / "c.toml", b"")], "c.toml: the [model] section is missing"),
    "config-utf16": (lambda t: ["check", _bytes(t / "c.toml", model_toml().encode("utf-16"))],
                     "c.toml: not a text file"),
    "data-fifo": (lambda t: ["check", cfg(t, calibration_toml(data="d.csv"))] if _fifo(t / "d.csv") else None,
                  "d.csv: is not a regular file"),
    "data-header-only": (lambda t: ["check", _counts(t, "site,time,population,adopters\n")],
                         "d.csv: file is empty; it has a header (line 1) but no data rows"),
    "data-duplicate-row": (lambda t: ["check", _counts(t, COUNTS + "Leeds,0.5,900,70\n")],
                           "line 10 (data row 9), column 'time', value '0.5': duplicate (site, time) = ('Leeds', 0.5)"),
    "data-cumulative-down": (lambda t: ["check", _counts(t, COUNTS.replace("Leeds,0.75,900,180", "Leeds,0.75,900,60"))],
                             "value '60': cumulative adopters of site 'Leeds' go down from 70"),
    "data-not-a-number": (lambda t: ["check", _counts(t, COUNTS.replace("Leeds,0.5,900,70", "Leeds,0.5,900,seventy"))],
                          "column 'adopters', value 'seventy': not a number"),
    "data-count-huge": (lambda t: ["check", _counts(t, COUNTS.replace("Leeds,1.0,900,330", "Leeds,1.0,900,99999999999999999999999"))],
                        "value '99999999999999999999999': too large; counts must be at most 9,007,199,254,740,992"),
    "data-population-huge": (lambda t: ["check", _counts(t, COUNTS.replace(",900,", ",90000000000000000000000,"))],
                             "column 'population', value '90000000000000000000000': too large"),
    "data-fit-until-before-data": (
        lambda t: ["check", cfg(t, calibration_toml().replace("[data]\n", "[data]\nfit_until = 0.1\n"))],
        "[data] fit_until = 0.1 is before the first observation"),
    "run-fit-until-before-data": (lambda t: ["run", cfg(t, calibration_toml() + "[run]\nfit_until = 0.1\n"), "--out", t / "out"],
                                  "[run] fit_until = 0.1 is before the first observation"),
    "population-huge": (lambda t: ["check", cfg(t, model_toml("population = [7, 1e300]"))],
                        "[parameters] population = 1e+300 at site 2: too large"),
    "network-file-fifo": (lambda t: ["check", cfg(t, model_toml(extra='[network]\nkind = "edges"\nfile = "e.csv"\n'))]
                          if _fifo(t / "e.csv") else None, "e.csv: is not a regular file"),
    "network-file-no-edges": (lambda t: ["check", cfg(t, model_toml(extra='[network]\nkind = "edges"\nfile = "e.csv"\n'))]
                              if _bytes(t / "e.csv", b"source,target,weight\n") else None, "[network] file 'e.csv' holds no edges"),
    "network-self-loop": (lambda t: ["check", cfg(t, model_toml(extra='[network]\nkind = "edges"\n'
                                                             'edges = [{ source = "Leeds", target = "Leeds" }]\n'))],
                          "[network] edges[0]: source and target are both 'Leeds'"),
    "network-edge-twice": (
        lambda t: ["check", cfg(t, model_toml(extra='[network]\nkind = "edges"\nedges = [{ source = "Ashford", target = '
                                              '"Leeds" }, { source = "Ashford", target = "Leeds", weight = 2.0 }]\n'))],
        "[network] edges[1]: edge 'Ashford' -> 'Leeds' is given twice (also edges[0])"),
    "network-dense-diagonal": (
        lambda t: ["check", cfg(t, model_toml(extra='[network]\nkind = "dense"\nweights = [[0.0, 0.5], [0.5, 1.0]]\n'))],
        "[network] weights[1][1] = 1: a site's influence on itself ('Leeds')"),
    "model-order-huge": (lambda t: ["check", cfg(t, model_toml(extra="[model.options]\nimplementation_order = 1000000\n"))],
                         "implementation_order must be 0 to 50"),
    "rtol-infinite": (lambda t: ["check", cfg(t, model_toml(simulation='solver = "adaptive"\nrtol = inf'))],
                      "[simulation] rtol = inf must be positive and finite"),
    "tree-depth-zero": (lambda t: ["check", cfg(t, calibration_toml(extra="max_tree_depth = 0"))],
                        "[calibration] max_tree_depth = 0: expected 1 to 20"),
    "learning-rate-negative": (lambda t: ["check", cfg(t, calibration_toml(extra='method = "svi"\nlearning_rate = -0.01'))],
                               "[calibration] learning_rate = -0.01"),
    "svi-steps-zero": (lambda t: ["calibrate", cfg(t, calibration_toml(extra='method = "svi"\nsvi_steps = 0')), "--out", t / "out"],
                       "[calibration] svi_steps = 0"),
    "group-scale-infinite": (
        lambda t: ["check", cfg(t, calibration_toml().replace("scale = 1.0", "scale = 1.0\nhierarchical = true\ngroup_scale = inf"))],
        "[priors.q] group_scale = inf must be a positive, finite number"),
    "ensemble-seed-too-large": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE + "seed = 9223372036854775807\n")),
                                           "--out", t / "out", "--workers", "0"],
                                "[ensemble] seed = 9223372036854775807: expected a whole number from 0 to 2,147,483,647"),
    "stochastic-seed-too-large": (
        lambda t: ["simulate", cfg(t, model_toml(extra="[stochastic]\nenabled = true\nseed = 2147483648\n")), "--out", t / "out"],
        "[stochastic] seed = 2147483648"),
    "backtest-origin-twice": (lambda t: ["backtest", cfg(t, calibration_toml() + "[backtest]\norigins = [0.5, 0.5]\n"),
                                         "--out", t / "out"], "[backtest] origins: 0.5 is given twice"),
    "backtest-bootstrap-huge": (lambda t: ["backtest", cfg(t, calibration_toml() + "[backtest]\nbootstrap = 1000000000000\n"),
                                           "--out", t / "out"], "[backtest] bootstrap = 1,000,000,000,000: at most 10,000"),
    "posterior-fifo": (lambda t: ["ensemble", cfg(t, calibration_toml()), "--out", t / "out", "--workers", "0",
                                  "--posterior", _fifo(t / "p.nc")], "p.nc: is not a regular file"),
    "posterior-for-a-design": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE)), "--out", t / "out", "--workers", "0",
                                          "--posterior", fake_posterior(t / "p.nc")],
                               "[ensemble] source = 'design' draws no posterior"),
    "config-posterior-for-a-design": (lambda t: ["check", cfg(t, model_toml(extra=ENSEMBLE + 'posterior = "p.nc"\n'))],
                                      "[ensemble] posterior = 'p.nc' but source = 'design' draws no posterior"),
    "cluster-unknown-option": (
        lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE + '[ensemble.cluster]\nkind = "slurm"\nquueue = "x"\n')),
                   "--dry-run"], "[ensemble.cluster] unknown key 'quueue'; did you mean 'queue'?"),
    # -- output folders and command lines
    "simulate-output-is-a-folder": (lambda t: ["simulate", cfg(t, model_toml()), "--out", t / "out"]
                                    if (t / "out" / "simulation.nc").mkdir(parents=True) is None else None,
                                    "simulation.nc there is a folder, where this command writes a file"),
    "report-html-is-a-folder": (lambda t: ["report", run] if (run := _run_dir(t, {"report.html": None}))
                                and (run / "report.html").mkdir() is None else None,
                                "report.html: is a folder, where a file is to be written"),
    "dry-run-out-under-file": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE)), "--out", t / "counts.csv" / "o",
                                          "--dry-run"], "counts.csv is a file, not a folder"),
    "dry-run-workers-negative": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE)), "--out", t / "out",
                                            "--workers", "-1", "--dry-run"], "--workers -1: expected a whole number"),
    "workers-not-a-number": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE)), "--out", t / "out", "--workers", "abc"],
                             "ensemble: Invalid value for '--workers'"),
    "unknown-command": (lambda t: ["simulat", cfg(t, model_toml())], "No such command 'simulat'. Did you mean 'simulate'?"),
    "unknown-option": (lambda t: ["simulate", cfg(t, model_toml()), "--outt", t / "out"], "No such option: --outt"),
    "missing-argument": (lambda t: ["check"], "check: Missing argument 'config'"),
    "scheduler-empty": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE)), "--out", t / "out", "--scheduler", ""],
                        "--scheduler '': expected the address"),
    "scheduler-not-an-address": (lambda t: ["ensemble", cfg(t, model_toml(extra=ENSEMBLE)), "--out", t / "out",
                                            "--scheduler", "not an address"],
                                 "cannot reach the dask scheduler at 'not an address'"),
    "verify-array-metadata-deleted": (
        lambda t: ["verify", _run_dir(t, {"ensemble.zarr/.zmetadata": None, "ensemble.zarr/adopted/.zarray": None})],
        "the store's metadata or checksums cannot be read (KeyError: 'adopted')"),
    "compare-fifo": (lambda t: ["compare", cfg(t, calibration_toml(), "a.toml"), _fifo(t / "b.toml"), "--out", t / "out"],
                     "b.toml: is not a regular file"),
    # -- user models: [model] file = "..." (see docs/own_model.md)
    "model-file-missing": (lambda t: ["check", cfg(t, _file_config("nope.toml"))],
                           "cfg.toml: [model] file = 'nope.toml': no such model file"),
    "model-file-and-name": (lambda t: ["check", cfg(t, _file_config("clinic.toml", 'name = "four_stage"'))],
                            "[model] give either name (a bundled model, with options) or file"),
    "model-file-unknown-key": (
        lambda t: ["simulate", _user_model(t, CLINIC.replace('source = "waiting"', 'sorce = "waiting"')), "--out", t / "out"],
        "clinic.toml: [flows.treatment] unknown key 'sorce'; did you mean 'source'?"),
    "model-file-lookup-not-increasing": (
        lambda t: ["simulate", _user_model(t, CLINIC.replace("x = [0, 0.5, 1, 2]", "x = [0, 1, 0.5, 2]")), "--out", t / "out"],
        "lookup 'effect_of_load': x must be strictly increasing, but x[2] = 0.5 follows x[1] = 1"),
    "model-file-lookup-called-wrongly": (
        lambda t: ["check", _user_model(t, CLINIC.replace("effect_of_load(waiting / capacity)", "effect_of_load"))],
        "'effect_of_load' is a lookup; call it with one argument"),
    "model-file-not-toml": (lambda t: ["check", _user_model(t, "[model\nname = 1\n")], "clinic.toml: not valid TOML"),
    # -- programme design: [design] and `spreadjax design` (docs/design.md)
    "design-unknown-key": (lambda t: ["check", cfg(t, model_toml(extra="[design]\nbudget = 1.0\nbudgte = 2\n"))],
                           "[design] unknown key 'budgte'; did you mean 'budget'?"),
    "design-objective": (lambda t: ["check", cfg(t, model_toml(extra="[design]\nbudget = 1.0\nobjective = \"max\"\n"))],
                         "[design] objective = 'max': expected one of expected_adoption"),
    "design-target-missing": (lambda t: ["check", cfg(t, model_toml(
        extra="[design]\nbudget = 1.0\nobjective = \"cvar_shortfall\"\n"))],
        "[design] objective = 'cvar_shortfall' needs target"),
    "design-budget-missing": (lambda t: ["check", cfg(t, model_toml(extra="[design]\nknots = [0.0]\n"))],
                              "[design] budget is missing"),
    "design-budget-below-floor": (lambda t: ["check", cfg(t, model_toml(
        extra="[design]\nbudget = 0.1\nintensity = [0.5, 1.0]\n"))],
        "[design] budget = 0.1 programme-years is below the floor"),
    "design-withdraw-after-horizon": (lambda t: ["check", cfg(t, model_toml(
        extra="[design]\nbudget = 1.0\nwithdraw = [0.5, 3.0]\n"))],
        "must lie after the start (0) and by the horizon (1 years)"),
    "design-min-duration-too-long": (lambda t: ["check", cfg(t, model_toml(
        extra="[design]\nbudget = 1.0\nwithdraw = [0.25, 0.5]\nmin_duration = 0.75\n"))],
        "[design] min_duration = 0.75 years ends after the latest withdrawal"),
    "design-knots-not-at-start": (lambda t: ["check", cfg(t, model_toml(extra="[design]\nbudget = 1.0\nknots = [0.25]\n"))],
                                  "[design] knots[0] = 0.25: the first piece starts at the simulation start"),
    "design-date-without-start-date": (lambda t: ["check", cfg(t, model_toml(
        extra="[design]\nbudget = 1.0\nhorizon = \"2026-01-01\"\n"))],
        "[design] horizon = '2026-01-01' is a date but [simulation] has no start_date"),
    "design-baseline-overspends": (lambda t: ["check", cfg(t, model_toml(
        extra="[design]\nbudget = 1.0\nbaseline = { intensity = 1.0 }\n"))],
        "[design] baseline spends 2 programme-years"),
    "design-draws-zero": (lambda t: ["check", cfg(t, model_toml(extra="[design]\nbudget = 1.0\ndraws = 0\n"))],
                          "[design] draws = 0: expected a whole number from 1"),
    "design-no-section": (lambda t: ["design", cfg(t, model_toml()), "--out", t / "out"],
                          "cfg.toml: has no [design] section"),
    "design-posterior-missing": (lambda t: ["design", cfg(t, model_toml(extra="[design]\nbudget = 1.0\n")), "--out",
                                            t / "out", "--posterior", t / "nope.nc"],
                                 "nope.nc: no such posterior file"),
    "design-posterior-needed": (lambda t: ["design", cfg(t, calibration_toml(extra="[design]\nbudget = 1.0\n")),
                                           "--out", t / "out"],
                                "cfg.toml: the futures are posterior draws: pass --posterior FILE"),
    "design-out-is-file": (lambda t: ["design", cfg(t, model_toml(extra="[design]\nbudget = 1.0\n")), "--out",
                                      t / "counts.csv"],
                           "exists and is not a folder"),
}

#: a user model file: a waiting list treated more slowly as the clinic fills (a lookup)
CLINIC = """
[model]
name = "clinic_backlog"
population = "population"
[parameters.population]
default = 900
positive = true
lower = 0
[parameters.capacity]
default = 300
[stocks.waiting]
init = "population"
[stocks.treated]
[flows.treatment]
rate = "waiting * effect_of_load(waiting / capacity) / 0.5"
source = "waiting"
sink = "treated"
[lookups.effect_of_load]
x = [0, 0.5, 1, 2]
y = [1, 1, 0.8, 0.3]
"""


def _file_config(file: str, extra: str = "") -> str:
    return textwrap.dedent(f"""
        title = "user model"
        [model]
        file = "{file}"
        {extra}
        [sites]
        names = ["Ashford", "Leeds"]
        [parameters]
        population = [7, 900]
        [simulation]
        end = 1.0
        steps_per_year = 12
        outputs = ["waiting"]
        """)


def _user_model(tmp: Path, text: str) -> Path:
    """A config reading the model file clinic.toml with ``text``."""
    (tmp / "clinic.toml").write_text(text)
    return cfg(tmp, _file_config("clinic.toml"))


def _pair(tmp: Path, other: str, name: str = "other.toml", counts: str | None = None) -> list:
    """argv of `spreadjax compare` on cfg.toml (calibration_toml()) and a second config ``other``
    at ``name`` (with counts2.csv holding ``counts`` when given)."""
    first = cfg(tmp, calibration_toml())
    if counts is not None:
        (tmp / "counts2.csv").write_text(counts)
    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp / name).write_text(other)
    return ["compare", first, tmp / name, "--out", tmp / "out"]


def _run_dir(tmp: Path, damaged: dict[str, bytes]) -> Path:
    """A copy of a finished run's folder (the module's own, made once) with some files damaged."""
    import shutil

    run = tmp / "run"
    shutil.copytree(_finished_run(), run)
    for name, data in damaged.items():  # bytes: overwrite; None: delete; n: keep the first n bytes
        path = run / name
        if data is None:
            path.unlink()
        else:
            path.write_bytes(path.read_bytes()[:data] if isinstance(data, int) else data)
    return run


def _finished_run(cache: dict = {}) -> Path:  # noqa: B006 - one run per test process
    if "dir" not in cache:
        import tempfile

        from spreadjax._pipeline import run_pipeline

        folder = Path(tempfile.mkdtemp(prefix="spreadjax-run-"))
        (folder / "counts.csv").write_text(COUNTS)
        (folder / "cfg.toml").write_text(calibration_toml() + ENSEMBLE_RUN)
        from spreadjax import load_config

        run_pipeline(load_config(folder / "cfg.toml"), folder / "out", say=lambda text: None)
        cache["dir"] = folder / "out"
    return cache["dir"]


ENSEMBLE_RUN = """
[run]
fit_until = 0.5
sensitivity_draws = 4
[ensemble]
draws = 10
chunk_size = 5
"""


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _fifo(path: Path) -> Path:
    """A named pipe: reading it blocks until a writer comes, so it must be refused, not read."""
    import os

    os.mkfifo(path)
    return path


def _counts(tmp: Path, text: str) -> Path:
    """A config fitting ``text`` as its counts file d.csv."""
    (tmp / "d.csv").write_text(text)
    return cfg(tmp, calibration_toml(data="d.csv"))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_with_one_line(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPREADJAX_CACHE_DIR", "off")
    monkeypatch.delenv("SPREADJAX_NO_SIZE_CHECK", raising=False)
    # the same budget on every machine: 16 GB of memory, 50 GB of disk
    monkeypatch.setattr("spreadjax._limits.available_memory", lambda: 16 * 10**9)
    monkeypatch.setattr("spreadjax._limits.free_disk", lambda path: 50 * 10**9)
    make, expected = CASES[case]
    argv = [str(a) for a in make(tmp_path)]
    before = files(tmp_path)
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, (argv, result.output, repr(result.exception))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0], lines[0]
    assert files(tmp_path) == before  # nothing written, nothing half-written


def test_the_table_covers_every_subcommand_that_takes_input(tmp_path):
    commands = set()
    for i, (make, _) in enumerate(CASES.values()):
        (tmp_path / str(i)).mkdir()
        commands.add(make(tmp_path / str(i))[0])
    assert {"check", "simulate", "calibrate", "ensemble", "run", "report", "verify", "backtest", "compare",
            "design"} <= commands
    assert len(CASES) >= 40


def test_the_size_check_can_be_overridden(tmp_path, monkeypatch):
    # the override lets the user take the risk: the same refused horizon now passes the config check
    text = model_toml().replace("end = 1.0", "end = 100000.0").replace("steps_per_year = 12", "steps_per_year = 100000")
    path = cfg(tmp_path, text)
    assert runner.invoke(app, ["check", str(path)]).exit_code == 2
    monkeypatch.setenv("SPREADJAX_NO_SIZE_CHECK", "1")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
