"""The ``spreadjax`` command line: a thin typer app over the public API.

Bad input exits with code 2 and one line naming the file, key or value; no traceback.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from ._errors import InputError

try:  # typer >= 0.24 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer on click itself
    from click import UsageError


class _OneLineUsageErrors(TyperGroup):
    """A usage mistake (``--workers abc``, an unknown option or command, a missing argument) is one
    ``error:`` line with exit code 2, like every other refusal, instead of typer's boxed panel."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            _fail(InputError(f"{where}: {exc.format_message()} (see {where} --help)"))


app = typer.Typer(
    cls=_OneLineUsageErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # square brackets in help ([data], [design]) are text, not rich markup
    help="Model the spread and adoption of good practice across health and care systems.",
)
err = Console(stderr=True)
out = Console()

ConfigArg = Annotated[Path, typer.Argument(help="TOML config file.", show_default=False)]


def _error_line(exc: Exception) -> Text:
    return Text("error: ", style="bold red") + Text(str(exc))


def _fail(exc: Exception) -> None:
    err.print(_error_line(exc), highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _check_out(path: Path, writes: tuple[str, ...] = ()) -> None:
    """Refuse an ``--out`` that is a file, lies under a file, or cannot be written, or where one of the
    files the command ``writes`` is a folder, before any work (writes nothing: a probe file is made
    and removed in the nearest existing folder)."""
    import tempfile

    if path.exists() and not path.is_dir():
        raise InputError(f"--out {path}: exists and is not a folder; choose a folder")
    for name in writes:
        if (path / name).is_dir():
            raise InputError(f"--out {path}: {name} there is a folder, where this command writes a file; "
                             "remove or rename it, or choose another --out")
    parent = path.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"--out {path}: {parent} is a file, not a folder; choose another --out")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write in {parent} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def _work(on_interrupt: str) -> Iterator[None]:
    """Long work: bad input found on the way is one line and exit 2; Ctrl-C exits 130 saying
    ``on_interrupt`` (what is kept, and how to resume)."""
    try:
        yield
    except InputError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print(f"interrupted: {on_interrupt}")
        raise typer.Exit(130) from None


def _locked(out_dir: Path, command: str) -> contextlib.ExitStack:
    """The write lock of ``out_dir`` for a ``with`` block; another writer exits 2 naming the holder."""
    from ._lock import output_lock

    stack = contextlib.ExitStack()
    try:
        stack.enter_context(output_lock(out_dir, f"spreadjax {command}"))
    except InputError as exc:
        _fail(exc)
    return stack


@app.command()
def check(config: ConfigArg) -> None:
    """Validate a config without running anything."""
    from ._config import load_config

    try:
        cfg = load_config(config)
        if cfg.is_hazard:
            from .calibrate._hazard_job import describe, load_hazard_inputs

            text = describe(load_hazard_inputs(cfg.calibration), cfg.calibration)
        else:
            from .core import compile_model

            cm = compile_model(cfg.build_model())
    except InputError as exc:
        _fail(exc)
    if cfg.is_hazard:
        out.print(Text("ok", style="green") + Text(f": {config}: {text}"), highlight=False)
        return
    out.print(
        f"[green]ok[/]: {config}: model {cfg.model!r} ({len(cm.states)} states, {len(cm.flows)} flows), "
        f"{cfg.n_sites} site(s), {len(cfg.simulation.times)} output times, solver {cfg.simulation.solver}"
        + (f", stochastic x{cfg.stochastic.replicates}" if cfg.stochastic.enabled else ""),
        highlight=False,
    )


@app.command()
def simulate(
    config: ConfigArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out"),
    plot: Annotated[bool, typer.Option(help="Also save a PNG plot.")] = True,
) -> None:
    """Run a config's simulation: writes OUT/simulation.nc and OUT/simulation.png."""
    import time

    from ._config import load_config
    from ._io import write_netcdf

    try:
        cfg = load_config(config)
        cfg.require_model("`spreadjax simulate`")
        _check_out(out_dir, ("simulation.nc", "simulation.png"))
    except InputError as exc:
        _fail(exc)
    from ._jobs import simulate_config

    started = time.perf_counter()
    with _locked(out_dir, "simulate"):
        with err.status(f"simulating {cfg.title} ({cfg.n_sites} site(s))", spinner="dots"):
            try:
                ds = simulate_config(cfg)
            except InputError as exc:
                _fail(exc)
        elapsed = time.perf_counter() - started
        nc = write_netcdf(ds, out_dir / "simulation.nc")
        out.print(f"wrote {nc} ({elapsed:.1f} s, compile included)", highlight=False)
        if plot:
            from .report._figures import plot_simulation

            png = plot_simulation(ds, out_dir / "simulation.png")
            out.print(f"wrote {png}", highlight=False)
    _print_headline(ds)


@app.command()
def calibrate(
    config: ConfigArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out"),
    plots: Annotated[bool, typer.Option(help="Also save PNG plots.")] = True,
) -> None:
    """Fit a config's priors to its [data]: writes OUT/posterior.nc, diagnostics and plots."""
    from ._config import load_config

    try:
        cfg = load_config(config)
        if cfg.calibration is None:
            raise InputError(f"{config}: has no [data] section: nothing to calibrate")
        _check_out(out_dir, ("posterior.nc", "diagnostics.txt", "diagnostics.csv"))
        _chains_on_cores(cfg)
        summary, fit = _calibration_job(cfg)
    except InputError as exc:
        _fail(exc)
    from ._jobs import config_hash
    from .calibrate._run import write_posterior

    s = cfg.calibration.settings
    what = (f"NUTS, {s.chains} chains x ({s.warmup} warm-up + {s.samples} draws)" if s.method == "nuts"
            else f"{s.method}, {s.svi_steps} optimisation steps")
    lock = _locked(out_dir, "calibrate")  # held from here to the last file written
    err.print(f"calibrating {cfg.title}: {summary}; {what}", highlight=False, markup=False)
    from .calibrate._identity import calibration_identity

    attrs = {"config": str(config), "config_sha256": config_hash(cfg), "seed": s.seed}
    if not cfg.is_hazard:
        attrs.update(calibration_identity(cfg))
    with lock:
        bar = s.method == "nuts" and sys.stderr.isatty()  # numpyro's own bar needs a terminal
        with contextlib.nullcontext() if bar else err.status(f"compiling and fitting ({what})", spinner="dots"):
            result = fit(progress_bar=bar, attrs=attrs)
        path = write_posterior(result.groups, out_dir / "posterior.nc")
        table = result.table()
        flags_text = "\n".join(f"- {f}" for f in result.flags) or "- all diagnostics pass"
        from ._io import write_atomic

        write_atomic(out_dir / "diagnostics.txt", lambda tmp: tmp.write_text(f"{table}\n\nFlags:\n{flags_text}\n"))
        frame = result.summary.drop_vars(["ebfmi", "chain"], errors="ignore").to_dataframe()
        write_atomic(out_dir / "diagnostics.csv", lambda tmp: frame.to_csv(tmp))
        out.print(table, highlight=False, markup=False)
        shown = result.flags[:5]
        for f in shown:
            out.print(Text("warning: ", style="bold yellow") + Text(f))
        if len(result.flags) > len(shown):
            out.print(f"... and {len(result.flags) - len(shown)} more warnings in {out_dir / 'diagnostics.txt'}")
        if not result.flags:
            out.print(Text("diagnostics: all pass (R-hat <= 1.01, ESS, no divergences, E-BFMI)", style="green"))
        out.print(f"wrote {path}, {out_dir / 'diagnostics.txt'}", highlight=False)
        if plots:
            from .report._calibration_figures import plot_calibration

            for png in plot_calibration(result.groups, out_dir):
                out.print(f"wrote {png}", highlight=False)
        if cfg.is_hazard:
            from .calibrate._hazard_job import peer_effect_line

            err.print(peer_effect_line(result), highlight=False, markup=False, soft_wrap=True)


def _chains_on_cores(cfg) -> None:
    """NUTS chains in parallel over the CPU's cores (one JAX CPU device per chain), before JAX starts."""
    from ._jobs import cpu_devices_for_chains

    s = cfg.calibration.settings if cfg.calibration is not None else None
    if s is not None and s.method == "nuts":
        cpu_devices_for_chains(s.chains)


def _calibration_job(cfg):
    """``(one line on the data, fit(progress_bar=, attrs=) -> CalibrationResult)``; reads the data."""
    from functools import partial

    if cfg.is_hazard:
        from .calibrate import _hazard_job as job

        inputs = job.load_hazard_inputs(cfg.calibration)
        return job.describe(inputs, cfg.calibration), partial(job.calibrate_hazard, inputs, cfg.calibration)
    from .calibrate._run import build_problem
    from .calibrate._run import calibrate as run_calibration

    from .calibrate._run import check_fit_fits

    problem = build_problem(cfg)
    check_fit_fits(problem, cfg.calibration.settings)  # before anything is printed or sampled
    summary = f"{len(problem.priors)} free parameter(s), {problem.data.new.size} observations"
    return summary, partial(run_calibration, problem, cfg.calibration.settings)


@app.command()
def ensemble(
    config: ConfigArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out"),
    posterior: Annotated[Path | None, typer.Option(help="posterior.nc to draw parameters from.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Address of a running dask scheduler.")] = None,
    workers: Annotated[int | None, typer.Option(help="Local dask workers (0: run in this process).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan (and job script) only.")] = False,
    summaries_only: Annotated[bool, typer.Option(
        "--summaries-only", help="Reduce each chunk to the summaries on the device; store no trajectories "
                                 "(memory flat in the number of draws; runs in this process).")] = False,
) -> None:
    """Run draws x scenarios x seeds: writes OUT/ensemble.zarr, OUT/summary.json, OUT/summary.nc."""
    from ._config import load_config

    if scheduler is not None and workers is not None:
        _fail(InputError("give --scheduler or --workers, not both"))
    if scheduler is not None and not scheduler.strip():
        _fail(InputError("--scheduler '': expected the address of a running dask scheduler, such as "
                         "tcp://10.0.0.5:8786"))
    try:
        cfg = load_config(config)
        cfg.require_model("`spreadjax ensemble`")
        if posterior is not None and not posterior.exists():
            raise InputError(f"{posterior}: no such posterior file")
        if posterior is not None and cfg.ensemble.source != "posterior":
            raise InputError(f"--posterior {posterior}: [ensemble] source = {cfg.ensemble.source!r} draws no "
                             "posterior; set source = \"posterior\" or drop --posterior")
        # a dry run too: it would not show a plan the real run refuses
        _check_out(out_dir, ("summary.json", "summary.nc"))
        from .ensemble._run import check_workers, plan_for

        plan = plan_for(cfg)
        check_workers(cfg, workers, scheduler)
    except InputError as exc:
        _fail(exc)
    store = out_dir / "ensemble.zarr"
    s = cfg.ensemble
    out.print(f"{cfg.title}: {plan.n_draws} draws ({s.source}) x {len(plan.scenarios)} scenario(s) "
              f"[{', '.join(plan.scenarios)}] x {plan.n_replicates} replicate(s) = "
              f"{plan.n_members * len(plan.scenarios)} runs in {plan.n_chunks} chunk(s) of {plan.chunk_size} draws",
              highlight=False, markup=False)
    if dry_run:
        _dry_run(cfg, store, plan, scheduler, workers)
        return
    if summaries_only:
        if scheduler is not None or workers:
            _fail(InputError("--summaries-only runs in this process: drop --scheduler/--workers"))
        with _locked(out_dir, "ensemble --summaries-only"):
            _stream(cfg, out_dir, None if posterior is None else str(posterior))
        return
    from .ensemble._run import run_ensemble

    with _locked(out_dir, "ensemble"):
        with _work(f"finished chunks are kept in {store}; run the same command again to resume"):
            with _chunk_progress("chunks") as progress:
                report = run_ensemble(cfg, store, posterior=None if posterior is None else str(posterior),
                                      scheduler=scheduler, workers=workers, progress=progress)
        out.print(f"wrote {store}: {len(report.computed)} chunk(s) computed, {report.skipped} already done",
                  highlight=False)
        if report.repaired:
            err.print(Text("repaired: ", style="bold yellow") + Text(report.repaired_text()), soft_wrap=True)
        _write_summaries(cfg, store, out_dir)


def _dry_run(cfg, store: Path, plan, scheduler: str | None, workers: int | None) -> None:
    import numpy as np

    from .ensemble._run import default_workers, jobqueue_cluster

    n_times = len(cfg.simulation.times)
    size = plan.n_members * len(plan.scenarios) * n_times * cfg.n_sites * len(cfg.ensemble.outputs)
    size *= np.dtype(cfg.simulation.dtype).itemsize
    out.print(f"store: {store} ({'exists: finished chunks will be skipped' if store.exists() else 'new'}), "
              f"about {size / 1e6:.1f} MB for outputs {', '.join(cfg.ensemble.outputs)}", highlight=False, markup=False)
    c = cfg.ensemble.cluster
    if scheduler:
        out.print(f"would connect to the dask scheduler at {scheduler}", highlight=False)
    elif c.kind == "local":
        n = workers if workers is not None else (cfg.ensemble.workers or default_workers())
        out.print("would run in this process, without dask" if n == 0 else
                  f"would start a LocalCluster with {n} single-threaded worker process(es)", highlight=False)
    else:
        try:
            cluster = jobqueue_cluster(cfg)
        except InputError as exc:
            _fail(exc)
        out.print(f"would submit {c.jobs} {c.kind.upper()} job(s) with this script:", highlight=False)
        out.print(cluster.job_script(), highlight=False, markup=False, soft_wrap=True)  # verbatim, unwrapped
        cluster.close()


@contextlib.contextmanager
def _chunk_progress(label: str):
    """Yields ``progress(done, total)``, which draws a bar on stderr from its first call (once the
    inputs are checked); the bar stops when the block ends, however it ends."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False)
    tasks: list = []

    def progress(done: int, total: int) -> None:
        if not tasks:
            bar.start()
            tasks.append(bar.add_task(label, total=total))
        bar.update(tasks[0], completed=done)

    try:
        yield progress
    finally:
        if tasks:
            bar.stop()


def _stream(cfg, out_dir: Path, posterior: str | None) -> None:
    """``ensemble --summaries-only``: streamed summaries, written atomically."""
    from ._io import write_atomic, write_netcdf
    from .ensemble._stream import stream_summaries

    with _work("nothing was written (streamed summaries keep no partial results)"):
        with _chunk_progress("chunks (summaries on the device)") as progress:
            summary, as_json = stream_summaries(cfg, posterior, progress=progress)
    from ._pipeline import with_model

    as_json = with_model(as_json, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_netcdf(summary, out_dir / "summary.nc")
    write_atomic(out_dir / "summary.json", lambda tmp: tmp.write_text(json.dumps(as_json, indent=2, allow_nan=False)))
    out.print(f"wrote {out_dir / 'summary.json'}, {out_dir / 'summary.nc'} (no trajectories stored)", highlight=False)


def _write_summaries(cfg, store: Path, out_dir: Path) -> None:
    from ._pipeline import write_summaries

    with err.status("summarising", spinner="dots"):
        write_summaries(cfg, store, out_dir)
    out.print(f"wrote {out_dir / 'summary.json'}, {out_dir / 'summary.nc'}", highlight=False)


@app.command()
def run(
    config: Annotated[Path | None, typer.Argument(help="TOML config (default: the bundled Medical Innovation example).",
                                                  show_default=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out"),
    workers: Annotated[int | None, typer.Option(help="Local dask workers (0: run in this process).")] = None,
    backtest: Annotated[bool, typer.Option("--backtest", help="Also backtest the forecast on the data's past "
                                                              "([backtest] origins) and report it.")] = False,
) -> None:
    """The whole job: calibrate, ensemble over the scenarios, summaries, sensitivities and OUT/report.html."""
    import time

    from ._config import load_config
    from ._pipeline import default_config_path, run_pipeline

    path = config or default_config_path()
    try:
        cfg = load_config(path)
        cfg.require_model("`spreadjax run` (the forecasting pipeline)")
        _check_out(out_dir, ("posterior.nc", "summary.json", "summary.nc", "report.html"))
    except InputError as exc:
        _fail(exc)
    _chains_on_cores(cfg)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    started = time.perf_counter()
    out.print(f"spreadjax run: {cfg.title}", highlight=False, markup=False)
    bar = Progress("  chunks", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True)
    task = bar.add_task("chunks", total=None, visible=False)

    def chunk_progress(done: int, total: int) -> None:
        bar.start()  # from the first chunk on: an input refused earlier leaves one clean line
        bar.update(task, completed=done, total=total, visible=True)

    def say(text: str) -> None:
        bar.update(task, visible=False)
        out.print(text, highlight=False, markup=False)

    with _work(f"finished stages and chunks are kept in {out_dir}; run the same command to resume"):
        try:
            report = run_pipeline(cfg, out_dir, say=say, progress_bar=False, workers=workers,
                                  chunk_progress=chunk_progress, backtest=backtest)
        finally:
            if bar.live.is_started:
                bar.stop()
    from .report import headline

    summary = _read_json(out_dir / "summary.json")
    for line in headline(summary):
        out.print(line, highlight=False, markup=False)
    out.print(f"wrote {report} ({time.perf_counter() - started:.0f} s)", highlight=False, markup=False)



@app.command()
def design(
    config: ConfigArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out"),
    posterior: Annotated[Path | None, typer.Option(help="posterior.nc to draw the futures from.")] = None,
) -> None:
    """Optimise the central programme of [design] (how hard to push, where, when to withdraw) over the
    posterior's futures, by gradient and by differential evolution: writes OUT/design.json, OUT/design.nc."""
    from ._config import load_config

    try:
        cfg = load_config(config)
        cfg.require_model("`spreadjax design`")
        if cfg.design is None:
            raise InputError(f"{config}: has no [design] section: add one with the budget to spend (docs/design.md)")
        if posterior is not None and not posterior.is_file():
            raise InputError(f"{posterior}: no such posterior file")
        if posterior is not None and cfg.ensemble.source != "posterior":
            raise InputError(f"--posterior {posterior}: [ensemble] source = {cfg.ensemble.source!r} draws no "
                             "posterior; set source = \"posterior\" or drop --posterior")
        if posterior is None and cfg.ensemble.source == "posterior" and cfg.ensemble.posterior is None:
            raise InputError(f"{config}: the futures are posterior draws: pass --posterior FILE (run `spreadjax "
                             "calibrate` to make one) or set [ensemble] posterior = \"...\"")
        _check_out(out_dir, ("design.json", "design.nc"))
    except InputError as exc:
        _fail(exc)
    from .design import run_design
    from .design._result import design_json, design_lines

    d = cfg.design
    out.print(f"design for {cfg.title}: {d.objective.replace('_', ' ')} over {d.draws} future(s), budget "
              f"{d.budget:g} programme-years", highlight=False, markup=False)
    with _locked(out_dir, "design"):
        with _work("nothing was written (design.json and design.nc are written whole at the end)"):
            with _chunk_progress("objective evaluations") as progress:
                result = run_design(cfg, out_dir, None if posterior is None else str(posterior), progress)
    for line in design_lines(design_json(result, cfg)):
        out.print(line, highlight=False, markup=False)
    out.print(f"wrote {out_dir / 'design.json'}, {out_dir / 'design.nc'}", highlight=False)

@app.command()
def backtest(
    config: ConfigArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out"),
    plot: Annotated[bool, typer.Option(help="Also save OUT/backtest.png.")] = True,
) -> None:
    """Rolling-origin backtest: fit on the data up to each origin, forecast the rest, score it
    against a per-site Bass fit and "no change": writes OUT/backtest.nc, backtest.json, backtest.png."""
    from ._config import load_config

    try:
        cfg = load_config(config)
        cfg.require_model("`spreadjax backtest`")
        from .backtest._run import backtest_origins

        times, origins = backtest_origins(cfg)
        _check_out(out_dir, ("backtest.nc", "backtest.json", "backtest.png"))
    except InputError as exc:
        _fail(exc)
    _chains_on_cores(cfg)
    from .backtest import run_backtest

    out.print(f"backtest of {cfg.title}: {len(origins)} origin(s) at "
              f"{', '.join(f'{times[k]:g}' for k in origins)} years", highlight=False, markup=False)
    with _work(f"scored origins are kept in {out_dir / 'backtest'}; run the same command to resume"):
        result = run_backtest(cfg, out_dir, say=lambda text: out.print(text, highlight=False, markup=False))
    summary = _read_json(out_dir / "backtest.json")
    for f, row in summary["pooled"].items():
        out.print(f"  {f:10s} 50% band {row['covered50']:.0%}, 90% band {row['covered90']:.0%}, "
                  f"mean CRPS {row['crps']:.4f}, bias {row['bias']:+.3f}", highlight=False, markup=False)
    style = "green" if summary["calibrated"] else "bold red"
    out.print(Text(summary["verdict"], style=style))
    if plot:
        from .report._backtest_figures import plot_backtest

        out.print(f"wrote {plot_backtest(result, out_dir / 'backtest.png')}", highlight=False)
    out.print(f"wrote {out_dir / 'backtest.nc'}, {out_dir / 'backtest.json'}", highlight=False)


@app.command()
def identify(
    config: ConfigArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out"),
    posterior: Annotated[Path | None, typer.Option(help="posterior.nc of `spreadjax calibrate` on this config.")] = None,
    sbc: Annotated[int | None, typer.Option("--sbc", help="Simulation-based calibration with N fits (>= 10).")] = None,
) -> None:
    """Can the data tell push from pull? Contraction and correlation of the posterior's push and pull,
    and simulation-based calibration of the config's structure: writes OUT/identify.json and figures."""
    from ._config import load_config
    from .report._identify_job import IDENTIFY_FILES, check_identify_request, run_identify

    try:
        cfg = load_config(config)
        check_identify_request(cfg, posterior, sbc)
        _check_out(out_dir, IDENTIFY_FILES)
    except InputError as exc:
        _fail(exc)
    with _locked(out_dir, "identify"):
        with _work("nothing was written (identify.json and its figures are written whole at the end)"):
            run_identify(cfg, out_dir, posterior, sbc, say=lambda text: out.print(text, highlight=False, markup=False))
    out.print(f"wrote {out_dir / 'identify.json'}", highlight=False)


@app.command()
def compare(
    configs: Annotated[list[Path], typer.Argument(help="Two or more TOML configs fitted to the same data.",
                                                  show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out"),
    plot: Annotated[bool, typer.Option(help="Also save OUT/compare.png.")] = True,
) -> None:
    """Rank model structures by out-of-sample score: backtest and calibrate each config into
    OUT/NAME/, then rank by leave-future-out CRPS with PSIS-LOO beside it: writes OUT/compare.json,
    compare.nc, compare.png."""
    from ._config import load_config

    try:
        cfgs = [load_config(c) for c in configs]
        for c in cfgs:
            c.require_model("`spreadjax compare`")
        from .backtest._compare import check_comparable

        check_comparable(cfgs)
        _check_out(out_dir)
    except InputError as exc:
        _fail(exc)
    from ._jobs import cpu_devices_for_chains

    cpu_devices_for_chains(max(c.calibration.settings.chains if c.calibration.settings.method == "nuts" else 1
                               for c in cfgs))
    from .backtest._compare import run_compare

    out.print(f"comparing {len(cfgs)} configs: {', '.join(str(c) for c in configs)}", highlight=False, markup=False)
    say = lambda text: out.print(text, highlight=False, markup=False)  # noqa: E731
    with _work(f"scored origins and posteriors are kept in {out_dir}; run the same command to resume"):
        with _locked(out_dir, "compare"):
            result = run_compare(cfgs, out_dir, say=say)
            if plot:
                from .report._compare_figures import plot_compare

                plot_compare(result, out_dir / "compare.png")
    doc = _read_json(out_dir / "compare.json")
    for r in doc["rows"]:
        out.print(f"  {r['rank']}. {r['name']:24s} CRPS {r['crps']:.4f}  90% band {r['covered90']:.0%}  "
                  f"50% band {r['covered50']:.0%}  elpd_lfo {r['elpd_lfo']:.1f}  elpd_loo {r['elpd_loo']:.1f} "
                  f"(se {r['loo_se']:.1f}, dse {r['loo_dse']:.1f}, weight {r['loo_weight']:.2f})",
                  highlight=False, markup=False)
    for w in doc["loo_warnings"]:
        out.print(Text("warning: ", style="bold yellow") + Text(w), highlight=False)
    out.print(doc["loo_note"], highlight=False, markup=False)
    out.print(f"wrote {out_dir / 'compare.json'}, {out_dir / 'compare.nc'}"
              + (f", {out_dir / 'compare.png'}" if plot else ""), highlight=False)


@app.command()
def verify(folder: Annotated[Path, typer.Argument(help="An ensemble store, or the folder holding ensemble.zarr.",
                                                show_default=False)]) -> None:
    """Reread every finished chunk of an ensemble store against the checksum written with it."""
    from .ensemble._store import verify_store

    store = folder / "ensemble.zarr" if (folder / "ensemble.zarr").is_dir() else folder
    try:
        if not store.is_dir():
            raise InputError(f"{folder}: {'is not a folder' if folder.exists() else 'no such folder'}; give an "
                             "ensemble store or the --out folder of `spreadjax ensemble`/`run`")
        with err.status(f"verifying {store}", spinner="dots"):
            found = verify_store(store)
        if found.damaged or found.bad_draws:
            raise InputError(f"{found.describe()}; run the same `spreadjax ensemble`/`run` command again to "
                             "recompute the damaged chunks")
    except InputError as exc:
        _fail(exc)
    left = found.n_chunks - len(found.checked)
    out.print(Text("ok", style="green") + Text(f": {store}: {len(found.checked)} chunk(s) match their checksums"
                                               + (f"; {left} not yet computed" if left else "")), highlight=False)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="Folder a `spreadjax run` left.", show_default=False)]) -> None:
    """Rebuild OUT/report.html from the files a run left, without recomputing."""
    from .report import build_report

    try:
        if not run_dir.is_dir():
            raise InputError(f"{run_dir}: {'is not a folder' if run_dir.exists() else 'no such folder'}; give the "
                             "folder a `spreadjax run` wrote")
        path = build_report(run_dir)
    except InputError as exc:
        _fail(exc)
    out.print(f"wrote {path}", highlight=False, markup=False)


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


def _print_headline(ds) -> None:
    if "adopted" not in ds or "population" not in ds:
        return
    frac = ds["adopted"].isel(time=-1).sum("site") / ds["population"].sum("site")
    horizon = (str(ds["date"].values[-1])[:10] if "date" in ds.coords
               else f"year {float(ds['time'][-1]):g}")
    if "replicate" in frac.dims:
        lo, mid, hi = (float(frac.quantile(q, "replicate")) for q in (0.05, 0.5, 0.95))
        out.print(f"adopted by {horizon}: {mid:.0%} of organisations (90% of runs between {lo:.0%} and {hi:.0%})")
    else:
        out.print(f"adopted by {horizon}: {float(frac):.0%} of organisations")


@app.command("import")
def import_(
    model: Annotated[Path, typer.Argument(help="Vensim .mdl or XMILE .xmile/.stmx model file.", show_default=False)],
    out_file: Annotated[Path, typer.Option("--out", help="Config to write (CONFIG.toml; the model goes to CONFIG_model.toml beside it).",
                                           show_default=False)],
    sites: Annotated[str | None, typer.Option("--sites", help="Subscript dimension whose elements become sites.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config and model file.")] = False,
) -> None:
    """Import a Vensim or XMILE model: writes a config (OUT) and a TOML model file beside it that the
    other commands run; add priors to the config to calibrate (docs/own_model.md)."""
    from ._config import load_config
    from .sdimport import import_model
    from .sdimport._write import model_path_for, write_import

    try:
        if out_file.suffix.lower() != ".toml":
            raise InputError(f"--out {out_file}: a config is a .toml file; name it like {out_file.stem or 'model'}.toml")
        if out_file.is_dir():
            raise InputError(f"--out {out_file}: is a folder; give the config file to write, like {out_file / 'model.toml'}")
        folder = out_file.parent if str(out_file.parent) else Path(".")
        _check_out(folder)
        imported = import_model(model, sites=sites)
        config, model_file = write_import(imported, out_file, force=force)
        try:
            cfg = load_config(config)
        except InputError:
            for path in (config, model_file):  # nothing half-written: both go, or neither is left
                path.unlink(missing_ok=True)
            raise
    except InputError as exc:
        _fail(exc)
    m = imported.model
    out.print(f"imported {model}: {len(m.stocks)} stocks, {len(m.flows)} flows, {len(m.auxiliaries)} auxiliaries, "
              f"{len(m.delays)} delays, {len(m.smooths)} smooths, {len(m.parameters)} parameters, "
              f"{cfg.n_sites} site(s), solver {imported.solver}", highlight=False, markup=False)
    out.print(f"wrote {config} and {model_path_for(config)}", highlight=False, markup=False)


@app.command()
def info() -> None:
    """Print versions and the JAX devices in use."""
    from importlib.metadata import PackageNotFoundError, version

    import jax

    for pkg in ("spreadjax", "jax", "jaxlib", "numpy", "xarray", "diffrax", "numpyro"):
        try:
            out.print(f"{pkg:10s} {version(pkg)}")
        except PackageNotFoundError:
            out.print(f"{pkg:10s} not installed")
    out.print(f"python     {sys.version.split()[0]}")
    out.print(f"backend    {jax.default_backend()}  (float64 {'on' if jax.config.jax_enable_x64 else 'off'}; "
              "simulations run in the config's [simulation] dtype, float32 by default)", markup=False)
    for d in jax.devices():
        stats = d.memory_stats() or {}
        memory = f", {stats['bytes_limit'] / 2**30:.1f} GiB" if "bytes_limit" in stats else ""
        out.print(f"device     {d.platform}:{d.id} {getattr(d, 'device_kind', '')}{memory}", highlight=False)
    n = jax.local_device_count()
    out.print(f"ensembles  each chunk's draws are sharded over {n} local device(s)", highlight=False)
    if jax.default_backend() == "cpu":
        out.print("hints      GPUs: pip install 'spreadjax[gpu]' (a CUDA build of JAX); several CPU devices "
                  "in one process: JAX_NUM_CPU_DEVICES=N", highlight=False, markup=False)


def _compilation_cache() -> None:
    """Keep XLA's compiled programs on disk between runs (``$SPREADJAX_CACHE_DIR``, default
    ``~/.cache/spreadjax/jax``; ``SPREADJAX_CACHE_DIR=off`` disables it): a second
    ``spreadjax`` command on the same config skips most compilation."""
    import os

    where = os.environ.get("SPREADJAX_CACHE_DIR", str(Path.home() / ".cache" / "spreadjax" / "jax"))
    if where.lower() in ("off", "0", "none", ""):
        return
    try:
        Path(where).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only home: run without the cache
    from ._jobs import set_compile_cache

    set_compile_cache(where)


def main() -> None:
    """Entry point of the console script."""
    import os

    # This process and its local GPU workers share the GPUs: allocate GPU memory on demand instead
    # of JAX's default of 75% of every GPU at start (a user's own setting wins).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    _compilation_cache()
    try:
        app()
    except InputError as exc:  # a last guard: bad input never shows a traceback
        err.print(_error_line(exc), highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # a file or folder the checks could not foresee (a full disk, a lost mount)
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(_error_line(InputError(f"{where}{exc.strerror or exc}")), highlight=False, soft_wrap=True)
        sys.exit(2)
    except MemoryError:
        err.print(_error_line(InputError("out of memory; lower the draws, replicates or outputs, or use a "
                                         "larger machine")), highlight=False, soft_wrap=True)
        sys.exit(2)
