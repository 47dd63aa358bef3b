"""The one-page HTML report, built from a fake run folder of small synthetic files.

The folder holds what `spreadjax run` leaves: summary.json/summary.nc (from the real
``summarize_ensemble`` on a hand-built ensemble of logistic curves), posterior.nc (the real
``write_posterior`` on tiny groups), diagnostics.csv/.txt (the real summary and flags), the
calibration PNGs, sensitivity.json, observed.json and run.json. Headline numbers are checked
against numbers computed here from summary.json, and the page is opened in headless Chromium
(required: the test fails, never skips, when /usr/bin/chromium is missing).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from spreadjax import InputError
from spreadjax._io import write_netcdf
from spreadjax.calibrate._diagnostics import diagnostic_flags, format_table, summarize
from spreadjax.calibrate._run import write_posterior
from spreadjax.ensemble._summary import summarize_ensemble
from spreadjax.report import build_report, headline
from spreadjax.report._calibration_figures import plot_calibration
from spreadjax.report._sensitivity import write_sensitivity

SCENARIOS = ["status_quo", "programme_sustained"]
SITES = ["north", "south"]
START = np.datetime64("2025-04-01")
TIMES = np.round(np.arange(0, 5 * 12 + 1) / 12.0, 12)  # monthly, 5 years
FIT_UNTIL = 2.0
TARGET = {"fraction": 0.5, "date": "2028-03-31", "label": "50% adopted by 2028-03-31"}
SECTIONS = ("headline", "backtest", "futures", "pace", "levers", "calibration", "model", "reproducibility")
CHROMIUM = "/usr/bin/chromium"


def _dates(t: np.ndarray) -> np.ndarray:
    return START + np.round(t * 365.25).astype("timedelta64[D]")


def _ensemble(n_draw: int = 60, n_rep: int = 2, seed: int = 3) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    shape = (n_draw, len(SCENARIOS), n_rep)
    rate = rng.uniform(0.9, 2.2, (n_draw, 1, n_rep)) * np.array([1.0, 1.25])[None, :, None]
    mid = rng.uniform(1.5, 3.6, (n_draw, 1, n_rep)) - np.array([0.0, 0.35])[None, :, None]
    mid = np.broadcast_to(mid, shape) + rng.normal(0, 0.2, shape)
    cap = rng.uniform(0.62, 0.98, (*shape, len(SITES)))
    frac = cap[..., None, :] / (1 + np.exp(-rate[..., None, None] * (TIMES[:, None] - mid[..., None, None])))
    pop = np.array([120.0, 80.0])
    coords = {"draw": np.arange(n_draw), "scenario": SCENARIOS, "replicate": np.arange(n_rep), "time": TIMES,
              "site": SITES, "date": ("time", _dates(TIMES))}
    return xr.Dataset({"adopted": (("draw", "scenario", "replicate", "time", "site"), frac * pop),
                       "population": (("site",), pop)}, coords=coords)


def _groups(chains: int = 2, draws: int = 40, seed: int = 0) -> dict[str, xr.Dataset]:
    rng = np.random.default_rng(seed)
    t_fit = TIMES[(TIMES > 0) & (TIMES <= FIT_UNTIL + 1e-9)][::3]
    nt = t_fit.size
    pop = np.array([120.0, 80.0])
    new = rng.poisson(2.5, (nt, 2))
    cum = np.cumsum(new, axis=0) + 1

    def params(c: int, d: int) -> dict:
        return {"p": (("chain", "draw"), rng.lognormal(-3.5, 0.3, (c, d))),
                "q": (("chain", "draw"), rng.normal(0.4, 0.05, (c, d))),
                "expected_adopters": (("chain", "draw", "time", "site"),
                                      cum[None, None] * rng.lognormal(0, 0.1, (c, d, nt, 2)))}

    def coords(c: int, d: int) -> dict:
        return {"chain": np.arange(c), "draw": np.arange(d), "time": t_fit, "site": SITES}

    def predictive(c: int, d: int) -> xr.Dataset:
        return xr.Dataset({"new_adopters": (("chain", "draw", "time", "site"), rng.poisson(2.5, (c, d, nt, 2)))},
                          coords=coords(c, d))

    div = np.zeros((chains, draws), bool)
    div[1, 3] = True
    return {
        "posterior": xr.Dataset(params(chains, draws), coords=coords(chains, draws),
                                attrs={"method": "nuts", "fit_until": FIT_UNTIL, "config_sha256": "ab" * 32}),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), div),
                                    "energy": (("chain", "draw"), rng.normal(size=(chains, draws)))},
                                   coords={"chain": np.arange(chains), "draw": np.arange(draws)}),
        "observed_data": xr.Dataset({"new_adopters": (("time", "site"), new), "adopters": (("time", "site"), cum),
                                     "population": (("site",), pop)}, coords={"time": t_fit, "site": SITES}),
        "prior": xr.Dataset({k: v for k, v in params(1, 100).items() if k != "expected_adopters"},
                            coords={"chain": [0], "draw": np.arange(100)}),
        "prior_predictive": predictive(1, 100),
        "posterior_predictive": predictive(chains, draws),
    }


def _write_json(path: Path, doc) -> None:
    path.write_text(json.dumps(doc, indent=1, allow_nan=False))


LEVERS = ["push_strength", "peer_influence", "implementation_support", "barriers"]
ELASTICITY = {  # lever: ((extent mean, q05, q95), (pace mean, q05, q95))
    "push_strength": ((0.21, 0.1, 0.35), (-0.15, -0.3, -0.05)),
    "peer_influence": ((0.48, 0.3, 0.7), (-0.4, -0.6, -0.2)),
    "implementation_support": ((0.12, 0.02, 0.25), (-0.2, -0.35, math.nan)),
    "barriers": ((-0.3, -0.5, -0.12), (0.25, 0.1, 0.4)),
}
SOBOL = {"extent": {"p": {"S1": 0.18, "lo": 0.1, "hi": 0.26}, "q": {"S1": 0.55, "lo": 0.45, "hi": 0.66}},
         "pace": {"p": {"S1": 0.3, "lo": 0.2, "hi": 0.4}, "q": {"S1": 0.4, "lo": math.nan, "hi": math.nan}},
         "n_members": 120}


def _write_sensitivity(path: Path) -> None:
    """sensitivity.json through the real writer, from hand-set elasticities and Sobol indices."""
    values = np.asarray([ELASTICITY[lv] for lv in LEVERS])  # (lever, metric, stat)
    e = xr.Dataset({k: (("lever", "metric"), values[..., i]) for i, k in enumerate(("mean", "q05", "q95"))},
                   coords={"lever": LEVERS, "metric": ["extent", "pace"]},
                   attrs={"threshold": 0.5, "n_draws": 50, "pace_never": 3})
    write_sensitivity(path, e, SOBOL)


def _run_json() -> dict:
    return {
        "title": "Medical innovation (synthetic)",
        "config_path": "configs/medical_innovation.toml",
        "config_sha256": "cd" * 32,
        "config_text": '# docs: https://example.org/spread\n[simulation]\nend = 5.0\nstart_date = "2025-04-01"\n'
                       '[ensemble]\nscheduler = "tcp://10.0.0.1:8786"\n',
        "data_files": {"adoption_by_month.csv": "ef" * 32},
        "seed": {"calibration": 1, "ensemble": 2},
        "versions": {"spreadjax": "0.1.0", "jax": "0.4.35"},
        "devices": ["cpu:0"],
        "started": "2025-06-01T10:00:00+00:00",
        "finished": "2025-06-01T10:07:00+00:00",
        "model": {"name": "four_stage", "options": {"awareness_stage": True, "implementation_order": 3},
                  "levers": {"push_strength": "enhancer: intensity of the central programme's push",
                             "peer_influence": "enhancer: strength of word of mouth and peer networks (pull)",
                             "implementation_support": "enhancer: speeds the implementation pipeline",
                             "barriers": "inhibitor of recognition"}},
        "scenarios": {"status_quo": "support ends in 2027", "programme_sustained": "support continues"},
        "assumptions": ["Regions report adoption monthly and completely."],
        "fit_until": FIT_UNTIL,
        "horizon_date": "2030-04-01",
    }


def _observed(summary: dict) -> dict:
    t = TIMES[1:49:2]
    band = summary["scenarios"]["status_quo"]["adoption"]
    obs = {site: [float(np.interp(x, TIMES, band[site]["q50"])) * (1.0 + 0.03 * math.sin(7 * x)) for x in t]
           for site in ["all", *SITES]}
    return {"time": [float(x) for x in t], "date": [str(d) for d in _dates(t)], "adopted_fraction": obs,
            "fit_until": FIT_UNTIL}


def make_run_dir(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    summary, as_json = summarize_ensemble(_ensemble(), targets=[TARGET], baseline="status_quo")
    write_netcdf(summary, d / "summary.nc")
    _write_json(d / "summary.json", as_json)
    groups = _groups()
    write_posterior(groups, d / "posterior.nc")
    summ = summarize(groups["posterior"], groups["sample_stats"], var_names=["p", "q"])
    flags = diagnostic_flags(summ)
    flags_text = "\n".join(f"- {f}" for f in flags) or "- all diagnostics pass"
    (d / "diagnostics.txt").write_text(f"{format_table(summ)}\n\nFlags:\n{flags_text}\n")
    summ.drop_vars("ebfmi", errors="ignore").to_dataframe().to_csv(d / "diagnostics.csv")
    plot_calibration(groups, d)
    _write_sensitivity(d / "sensitivity.json")
    _write_json(d / "observed.json", _observed(as_json))
    _write_json(d / "run.json", _run_json())
    return d


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = make_run_dir(tmp_path_factory.mktemp("run"))
    build_report(d)
    return d


@pytest.fixture(scope="module")
def page(run_dir) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


# ----------------------------------------------------------------------- independent wording
def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _tenths(p: float) -> str:
    assert 0.05 < p < 0.95, f"the synthetic data should give an intermediate probability, got {p}"
    return f"{_half_up(10 * p)} of 10"


def _pct(x: float) -> str:
    assert 0.1 <= x < 0.99
    return f"{5 * _half_up(20 * x)}%"


def _season(iso: str) -> str:
    d = dt.date.fromisoformat(iso)
    return f"early {d.year}" if d.month <= 4 else f"mid-{d.year}" if d.month <= 8 else f"late {d.year}"


# ---------------------------------------------------------------------------------- tests
def test_headline_numbers_match_summary_json(run_dir):
    s = json.loads((run_dir / "summary.json").read_text())
    lines = headline(s)
    text = " ".join(lines)
    label = s["targets"][0]["label"]
    base, alt = s["scenarios"]["status_quo"], s["scenarios"]["programme_sustained"]
    p_base, p_alt = base["targets"][label]["all"], alt["targets"][label]["all"]
    assert (f"In {_tenths(p_base)} simulated futures at least half of the organisations have adopted by "
            f"March 2028 under 'status quo'") in lines[0]
    assert f"under 'programme sustained', in {_tenths(p_alt)}." in lines[0]
    half = base["time_to_threshold"]["0.5"]["all"]
    assert f"have adopted by {_season(half['date']['q50'])}" in text
    assert f"(90% range: {_season(half['date']['q5'])} to {_season(half['date']['q95'])})" in text
    final = base["extent"]["all"]["final"]
    lo, hi = _pct(final["q5"]), _pct(final["q95"])
    assert lo != hi
    assert f"By April 2030, about {_pct(final['q50'])} of the organisations" in text
    assert f"anywhere from {lo} to {hi} (the 90% range" in text
    assert f"based on {s['members']['members']} simulated futures" in text
    vs = alt["vs_baseline"]["all"]["final_fraction"]
    n = _half_up(100 * abs(vs["mean"]))
    assert vs["mean"] > 0 and n > 1
    assert f"about {n} percentage points more adoption at the horizon than 'status quo'" in text
    assert f"more adoption in {_tenths(vs['prob_better'])} paired futures" in text
    page = (run_dir / "report.html").read_text()
    for line in lines:
        assert line.replace("'", "&#x27;") in page


def test_headline_rounding_edges():
    s = {"time": [0.0, 1.0], "baseline": None, "scenarios": {"only": {
        "adoption": {"all": {"q50": [0.0, 0.5]}},
        "time_to_threshold": {"0.5": {"all": {"q5": None, "q50": None, "q95": None, "share_never": 0.97}}},
        "extent": {"all": {"final": {"q5": 0.004, "q50": 0.062, "q95": 0.9953}}}}}}
    text = " ".join(headline(s))
    assert "In fewer than 1 in 10 simulated futures at least half" in text  # p = 0.03
    assert "by year 1" in text and "about 6% of the organisations" in text
    assert "anywhere from under 1% to over 99%" in text
    assert "not adopted by year 1" in text and "under '" not in text


def test_every_section_present(run_dir, page):
    for sid in SECTIONS:
        assert re.search(rf'<section id="{sid}"><h2>', page), sid
    assert page.count("<img ") >= 7  # fan, sites, pace, elasticities, Sobol, predictive, 2 more
    assert 'class="stockflow"' in page and "<svg" in page
    for stock in ("unaware", "aware", "implementing", "adopted", "discontinued", "evidence", "recognition"):
        assert f">{stock}</text>" in page, stock
    for lever in ("push_strength", "peer_influence", "implementation_support", "barriers", "evidence_sharing",
                  "innovation_conditions"):
        assert f">{lever}</text>" in page, lever
    assert "could not be drawn" not in page
    assert "Not available" not in page.split('id="calibration"')[1].split("</section>")[0]
    # lever sentence, flags (tiny chains: low ESS and one divergence), out-of-sample check
    sens = json.loads((run_dir / "sensitivity.json").read_text())
    top = max(((lv, m, v["mean"]) for m, block in sens["elasticities"].items() for lv, v in block.items()),
              key=lambda x: abs(x[2]))
    assert sens["ranking"][0]["kind"] == "parameter"  # a Sobol index ranks first: not a lever
    assert f"The lever that matters most is <strong>{top[0].replace('_', ' ')}</strong>" in page
    assert f"(elasticity {top[2]:+.2f})" in page
    assert "Of the uncertain inputs, <strong>q</strong> explains most" in page
    assert 'class="flag bad"' in page and "1 divergent transitions" in page
    assert "Out-of-sample check" in page and "calibration used only the data up to <strong>April 2027" in page
    assert "Regions report adoption monthly and completely." in page
    table = page.split("<h3>Calibrated parameters</h3>")[1].split("</table>")[0]
    assert table.count("<code>p</code>") == 1 and table.count("<code>q</code>") == 1  # once each, not per chain
    assert "<details><summary>The config used" in page and "cd" * 32 in page and "ef" * 32 in page
    assert "Chance of half adopted by March 2028" in page


def test_self_contained_no_network_addresses(page):
    assert "http://" not in page and "https://" not in page
    assert "://" not in page  # the config's URLs are shown as text (&#58;//), never as addresses
    assert "example.org/spread" in page  # ... but they are still shown
    srcs = re.findall(r"""\bsrc\s*=\s*["']?([^"' >]*)""", page, flags=re.I)
    assert srcs and all(s.startswith("data:") for s in srcs)
    hrefs = re.findall(r"""\bhref\s*=\s*["']?([^"' >]*)""", page, flags=re.I)
    assert all(h.startswith("#") for h in hrefs)
    assert re.findall(r"url\(([^)]*)\)", page) and all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", page))
    assert "<link" not in page and "@import" not in page and "@font-face" not in page
    assert "@media print" in page


def test_green_box_when_no_flags(tmp_path, run_dir):
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    (d / "diagnostics.txt").write_text("table\n\nFlags:\n- all diagnostics pass\n")
    text = (d / "diagnostics.csv").read_text().splitlines()
    (d / "diagnostics.csv").write_text("\n".join(text) + "\n")
    page = build_report(d).read_text()
    assert 'class="flag good"' in page and 'class="flag bad"' not in page


def test_missing_optional_files(tmp_path, run_dir):
    d = tmp_path / "bare"
    d.mkdir()
    shutil.copy(run_dir / "summary.json", d)
    page = build_report(d).read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page
    assert "posterior.nc</code> not found" in page
    assert "sensitivity.json</code> not found" in page
    assert "observed.json</code> not found" in page
    assert "run.json</code> not found" in page
    assert "://" not in page


def test_corrupt_or_missing_summary_names_the_file(tmp_path, run_dir):
    d = tmp_path / "bad"
    d.mkdir()
    with pytest.raises(InputError, match=re.escape(str(d / "summary.json"))):
        build_report(d)
    (d / "summary.json").write_text('{"schema": "spreadjax.ensemble.summary/1", "scenarios": ')
    with pytest.raises(InputError, match=re.escape(str(d / "summary.json"))):
        build_report(d)
    (d / "summary.json").write_text('{"schema": "spreadjax.ensemble.summary/1", "time": [0, 1], "scenarios": {}}')
    with pytest.raises(InputError, match=re.escape(str(d / "summary.json"))):
        build_report(d)
    assert not (d / "report.html").exists()
    shutil.copy(run_dir / "summary.json", d)
    (d / "sensitivity.json").write_text("{oops")
    with pytest.raises(InputError, match="sensitivity.json"):
        build_report(d)


def _chromium(url: str, tmp: Path, height: int = 4000) -> tuple[Path, list[str], subprocess.CompletedProcess]:
    """Screenshot ``url`` in headless Chromium with every host name unresolvable; returns the PNG,
    the URLs of the requests the *page* started (initiator: the page's origin, 'null' for a file)
    and the process. The browser's own background requests (initiator 'not an origin') are left
    out: they are not the report's, and the resolver rule keeps them off the network anyway."""
    shot, netlog = tmp / "shot.png", tmp / "netlog.json"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--log-net-log={netlog}", "--hide-scrollbars", f"--screenshot={shot}", f"--window-size=1280,{height}",
           url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert shot.exists(), f"no screenshot; chromium said:\n{proc.stdout}\n{proc.stderr}"
    assert netlog.exists(), "chromium wrote no net log"
    log = _read_netlog(netlog)
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    page_requests = []
    for ev in log.get("events", []):
        params = ev.get("params") or {}
        if names.get(ev.get("type")) == "URL_REQUEST_START_JOB" and "url" in params:
            if params.get("initiator") != "not an origin":
                page_requests.append(params["url"])
    return shot, page_requests, proc


def _read_netlog(path: Path) -> dict:
    """The net log as JSON; one whose writer was cut short lacks its closing brackets."""
    text = path.read_text().rstrip().rstrip(",")
    for tail in ("", "]}", "}]}"):
        try:
            return json.loads(text + tail)
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"unreadable net log {path}")


def assert_renders_offline(report: Path, work: Path) -> None:
    """The report renders in headless Chromium to a non-blank page and requests nothing remote."""
    from PIL import Image

    shot, seen, _ = _chromium(report.resolve().as_uri(), work)
    network = [u for u in seen if not u.startswith(("file:", "data:"))]
    assert not network, f"the report made network requests: {network}"
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (4000, 1280)
    assert img.var() > 100.0  # not blank
    assert (img < 128).mean() > 0.005  # dark text and figures
    assert (img[:600] < 128).mean() > 0.002  # the headline is at the top


def test_opens_in_headless_chromium(run_dir, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package `chromium` (.ci/run does)")
    # the check can see a page's requests: a page with an external image and style sheet is caught
    control = tmp_path / "control"
    control.mkdir()
    (control / "page.html").write_text('<!DOCTYPE html><p>control</p><img src="http://example.invalid/a.png">'
                                       '<link rel="stylesheet" href="https://example.invalid/a.css">')
    _, seen, _ = _chromium((control / "page.html").as_uri(), control, height=300)
    assert {"http://example.invalid/a.png", "https://example.invalid/a.css"} <= set(seen)

    work = tmp_path / "report"
    work.mkdir()
    assert_renders_offline(run_dir / "report.html", work)


def _backtest_json(coverage90: float, calibrated: bool) -> dict:
    row = lambda c50, c90, crps: {"covered50": c50, "covered90": c90, "crps": crps, "relative_crps": 1.0,  # noqa: E731
                                  "bias": -0.26}
    return {"origins": [0.5, 1.0, 1.5, 2.0], "points": 44,
            "pooled": {"model": row(0.21, coverage90, 0.081), "bass": row(0.4, 0.83, 0.057),
                       "no_change": row(0.05, 0.05, 0.2)},
            "calibrated": calibrated, "verdict": f"the 90% bands held {coverage90:.0%} of what happened"}


def test_backtest_section_before_the_forecast(tmp_path, run_dir):
    d = tmp_path / "bt"
    shutil.copytree(run_dir, d)
    _write_json(d / "backtest.json", _backtest_json(0.42, calibrated=False))
    page = build_report(d).read_text()
    section = page.split('<section id="backtest">')[1].split("</section>")[0]
    assert page.index('id="backtest"') < page.index('id="futures"')  # trust first, then the forecast
    assert 'class="flag bad"' in section and "held 42% of what happened" in section
    assert "of 4 past dates" in section and "44 later observations" in section
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", section)
    assert ("this model", "21%", "42%", "0.081") in rows and ("a Bass curve fitted to each site", "40%", "83%", "0.057") in rows
    _write_json(d / "backtest.json", _backtest_json(0.9, calibrated=True))
    section = build_report(d).read_text().split('<section id="backtest">')[1].split("</section>")[0]
    assert 'class="flag good"' in section
    (d / "backtest.json").write_text('{"pooled": 3}')
    with pytest.raises(InputError, match="backtest.json: not a backtest summary"):
        build_report(d)


def _compare_json(ours: str) -> dict:
    row = lambda name, sha, crps, k: {"name": name, "config": f"{name}.toml", "config_sha256": sha,  # noqa: E731
                                      "rank": 0, "crps": crps, "covered50": 0.5, "covered90": 0.875,
                                      "elpd_lfo": -31.25, "elpd_loo": -140.5, "loo_se": 6.5, "loo_dse": 0.0,
                                      "loo_weight": 0.8, "pareto_k_high": k}
    return {"origins": [0.5, 1.0, 1.5], "points": 36,
            "rows": [row("ceiling", "0" * 64, 0.021, 0), row("baseline", ours, 0.034, 3)],
            "loo_note": "PSIS-LOO is shown beside; the ranking uses leave-future-out."}


def test_compare_section_when_a_comparison_is_there(tmp_path, run_dir, page):
    assert 'id="compare"' not in page  # no compare.json: no section
    d = tmp_path / "cmp"
    shutil.copytree(run_dir, d)
    ours = json.loads((d / "run.json").read_text())["config_sha256"]
    _write_json(d / "compare.json", _compare_json(ours))
    page = build_report(d).read_text()
    assert page.index('id="backtest"') < page.index('id="compare"') < page.index('id="futures"')
    section = page.split('<section id="compare">')[1].split("</section>")[0]
    assert "Which model structure forecasts best?" in page
    rows = re.findall(r"<tr><td>(\d)</td><td>(.*?)</td><td>(.*?)</td>", section)
    # best first, the config being reported marked, CRPS as written
    assert rows == [("1", "<code>ceiling</code>", "0.021"), ("2", "<code>baseline</code> <strong>(this report)</strong>",
                                                            "0.034")]
    assert "<strong><code>ceiling</code></strong> forecast best" in section and "36 later observations" in section
    assert "the ranking uses leave-future-out" in section
    (d / "compare.json").write_text('{"rows": []}')
    with pytest.raises(InputError, match="compare.json: not a comparison"):
        build_report(d)
