"""Observed data for calibration: aggregate counts, individual adoption times and networks.

Every loader validates the whole file before returning and raises :class:`DataError` with a
one-line message naming the file, the row, the column and the value, for example::

    counts.csv, line 4 (data row 3), column 'adopters', value '-2': counts must be >= 0

Row convention: ``line N`` counts physical lines of the file from 1, header included, as an
editor shows them (so the first data row is usually line 2); ``data row N`` counts data records
from 1, skipping the header and blank lines. Blank cells in an optional column take that
column's default; blank cells in a required column are errors.

Time is model time in **years** (float). Numbers in a file are read in ``time_unit`` and
converted; ISO dates (``2024-03-01``) become years since the earliest date, at 365.25 days per
year, and the dates are kept in a ``date`` coordinate.

Edge direction: an edge list is kept as written, ``source -> target``. :func:`adjacency` returns
``A[source_node=i, target_node=j]`` = weight of the edge ``i -> j``. For nomination data, where
the respondent ``i`` names the advisor ``j`` (as in Medical Innovation), information flows
``j -> i``, so ``A`` is exactly the influence matrix of ``spreadjax.core.DenseNetwork``
(``weight[i, j]`` = influence of ``j`` on ``i``) and of netdiffuseR's default exposure; for
``spreadjax.core.sparse_network`` pass ``source=target_index, target=source_index``.

This module imports only numpy, xarray and the standard library.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from .._errors import DataError, check_regular_file

__all__ = [
    "adjacency",
    "load_counts",
    "load_edges",
    "load_individuals",
    "medical_innovation_counts",
    "medical_innovation_individuals",
    "medical_innovation_path",
]

DAYS_PER_YEAR = 365.25
#: How many of each ``time_unit`` make a year: a number ``x`` in a file is ``x / TIME_UNITS[unit]`` years.
TIME_UNITS = {"year": 1.0, "month": 12.0, "week": DAYS_PER_YEAR / 7.0, "day": DAYS_PER_YEAR}
_INT_RE = re.compile(r"[+-]?\d+")
#: The largest count read: 2**53, below which every whole number is exact in float64 (and fits int64).
MAX_COUNT = 2**53


# --------------------------------------------------------------------------- reading


class _Row(NamedTuple):
    line: int  # physical line where the record starts (header = line 1)
    row: int  # data row, from 1
    values: dict[str, str]


class _Table(NamedTuple):
    path: str
    columns: tuple[str, ...]
    rows: list[_Row]

    def error(self, row: _Row, column: str, problem: str, value: str | None = None) -> DataError:
        value = row.values.get(column, "") if value is None else value
        return DataError(
            f"{self.path}, line {row.line} (data row {row.row}), column {column!r}, "
            f"value {value!r}: {problem}"
        )


def _read_table(
    path: str | os.PathLike[str], required: Sequence[str], *, allow_no_rows: bool = False
) -> _Table:
    """Read a CSV with a header; check the required columns are present."""
    name = os.fspath(path)
    check_regular_file(name, "a CSV file", DataError)
    try:
        with open(name, newline="", encoding="utf-8-sig") as fh:
            records = [(reader_line, rec) for reader_line, rec in _records(fh)]
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{name}: is a directory, expected a CSV file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise DataError(f"{name}: not a valid CSV file ({exc})") from None
    records = [(line, rec) for line, rec in records if any(v.strip() for v in rec)]
    if not records:
        raise DataError(f"{name}: file is empty; expected a header line with columns {', '.join(required)}")
    header_line, header = records[0]
    columns = tuple(h.strip() for h in header)
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise DataError(f"{name}, line {header_line} (header), column {col!r}: column name appears twice")
        seen.add(col)
    missing = [c for c in required if c not in seen]
    if missing:
        raise DataError(
            f"{name}, line {header_line} (header): missing column(s) {', '.join(map(repr, missing))}; "
            f"found {', '.join(map(repr, columns))}"
        )
    rows = []
    for i, (line, rec) in enumerate(records[1:], start=1):
        if len(rec) != len(columns):
            raise DataError(
                f"{name}, line {line} (data row {i}): expected {len(columns)} fields as in the header, "
                f"found {len(rec)}"
            )
        rows.append(_Row(line, i, {c: v.strip() for c, v in zip(columns, rec, strict=True)}))
    if not rows and not allow_no_rows:
        raise DataError(f"{name}: file is empty; it has a header (line {header_line}) but no data rows")
    return _Table(name, columns, rows)


def _records(fh: Any) -> Iterable[tuple[int, list[str]]]:
    reader = csv.reader(fh)
    prev = 0
    for rec in reader:
        yield prev + 1, rec
        prev = reader.line_num


def _required(tab: _Table, row: _Row, col: str) -> str:
    value = row.values[col]
    if value == "":
        raise tab.error(row, col, "missing value; this column is required in every row")
    return value


def _count(tab: _Table, row: _Row, col: str, what: str = "counts") -> int:
    """A required non-negative integer (``3`` or ``3.0``)."""
    text = _required(tab, row, col)
    if _INT_RE.fullmatch(text):
        value = int(text)
    else:
        try:
            number = float(text)
        except ValueError:
            raise tab.error(row, col, f"not a number; {what} must be whole numbers >= 0") from None
        if not math.isfinite(number) or not number.is_integer():
            raise tab.error(row, col, f"not an integer; {what} must be whole numbers >= 0")
        value = int(number)
    if value < 0:
        raise tab.error(row, col, f"negative; {what} must be whole numbers >= 0")
    if value > MAX_COUNT:
        raise tab.error(row, col, f"too large; {what} must be at most {MAX_COUNT:,} (counted exactly in float64)")
    return value


def _number(tab: _Table, row: _Row, col: str, *, non_negative: bool = False) -> float:
    text = _required(tab, row, col)
    try:
        value = float(text)
    except ValueError:
        raise tab.error(row, col, "not a number") from None
    if not math.isfinite(value):
        raise tab.error(row, col, "not a finite number")
    if non_negative and value < 0:
        raise tab.error(row, col, "negative; times must be >= 0")
    return value


def _per_year(time_unit: str) -> float:
    try:
        return TIME_UNITS[time_unit]
    except KeyError:
        raise DataError(
            f"time_unit={time_unit!r}: unknown unit; use one of {', '.join(map(repr, TIME_UNITS))}"
        ) from None


def _check_sites(sites: Sequence[str] | None) -> list[str] | None:
    if sites is None:
        return None
    if isinstance(sites, str):
        raise DataError(f"sites={sites!r}: expected a list of site names, got one string")
    out = [str(s) for s in sites]
    for i, s in enumerate(out):
        if s in out[:i]:
            raise DataError(f"sites=: site {s!r} is listed twice")
    return out


def _site(tab: _Table, row: _Row, col: str, sites: list[str] | None, label: Callable[[str], str]) -> str:
    site = label(_required(tab, row, col))
    if sites is not None and site not in sites:
        raise tab.error(row, col, f"unknown site {site!r}; expected one of {', '.join(map(repr, sites))}")
    return site


# --------------------------------------------------------------------------- counts


def load_counts(
    path: str | os.PathLike[str], *, sites: Sequence[str] | None = None, time_unit: str = "year"
) -> xr.Dataset:
    """Load aggregate adoption counts: one CSV row per site and time.

    Columns: ``site``; ``time`` (ISO dates such as ``2024-03-01``, or numbers in ``time_unit``);
    exactly one of ``adopters`` (cumulative count) or ``new_adopters`` (count in the period that
    ends at ``time``); ``population`` (constant within a site); optional ``aware`` (survey count
    of people aware of the practice; blank = not surveyed). Other columns are ignored. Rows may
    come in any order, but every site needs a row for every time present in the file.

    Cumulative and new counts are linked by ``adopters[t_k] = sum_{l <= k} new_adopters[t_l]``:
    nobody had adopted before the first time in the file.

    Returns a Dataset with dims ``(time, site)``: ``adopters`` and ``new_adopters`` (int64,
    people), ``population`` ``(site,)`` (int64, people) and, if present, ``aware`` (float64,
    NaN where blank). ``time`` is float64 years; with dates it is years since the earliest date
    (``attrs['time_origin']``), and a ``date`` coordinate keeps the dates. ``sites`` fixes the
    site order; a site in the file but not in ``sites``, or vice versa, is an error.
    """
    per_year = _per_year(time_unit)
    sites = _check_sites(sites)
    tab = _read_table(path, ("site", "time", "population"))
    has = [c for c in ("adopters", "new_adopters") if c in tab.columns]
    if len(has) != 1:
        problem = "has both" if has else "has neither"
        raise DataError(
            f"{tab.path}, line 1 (header): {problem} 'adopters' and 'new_adopters'; give exactly one "
            f"(adopters = cumulative count, new_adopters = count in each period)"
        )
    return _counts_from_table(
        tab,
        {"site": "site", "time": "time", "population": "population", "count": has[0]},
        cumulative=has[0] == "adopters",
        aware="aware" if "aware" in tab.columns else None,
        sites=sites,
        per_year=per_year,
        time_unit=time_unit,
    )


def _parse_time(tab: _Table, row: _Row, col: str) -> float | datetime:
    text = _required(tab, row, col)
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise tab.error(row, col, "not a finite number")
        return value
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise tab.error(row, col, "not a number or an ISO date like 2024-03-01") from None
    if when.tzinfo is not None:
        raise tab.error(row, col, "dates with a time zone are not supported; drop the offset")
    return when


def _counts_from_table(
    tab: _Table,
    cols: dict[str, str],
    *,
    cumulative: bool,
    aware: str | None,
    sites: list[str] | None,
    per_year: float,
    time_unit: str,
    site_label: Callable[[str], str] = str,
    keep: Callable[[_Row], bool] = lambda row: True,
) -> xr.Dataset:
    c_site, c_time, c_pop, c_count = cols["site"], cols["time"], cols["population"], cols["count"]
    parsed: dict[tuple[str, float | datetime], tuple[_Row, int, int, float]] = {}
    order: list[str] = []
    first_kind: tuple[_Row, type] | None = None
    for row in tab.rows:
        if not keep(row):
            continue
        site = _site(tab, row, c_site, sites, site_label)
        when = _parse_time(tab, row, c_time)
        kind = float if isinstance(when, float) else datetime
        if first_kind is None:
            first_kind = (row, kind)
        elif kind is not first_kind[1]:
            names = {float: "a number", datetime: "a date"}
            raise tab.error(
                row, c_time, f"is {names[kind]} but line {first_kind[0].line} has {names[first_kind[1]]}; "
                "use dates or numbers throughout"
            )
        count = _count(tab, row, c_count)
        pop = _count(tab, row, c_pop, "populations")
        if pop == 0:
            raise tab.error(row, c_pop, "population must be >= 1")
        n_aware = math.nan
        if aware is not None and row.values[aware] != "":
            n_aware = _count(tab, row, aware)
            if n_aware > pop:
                raise tab.error(row, aware, f"aware count above the population {pop}")
        key = (site, when)
        if key in parsed:
            raise tab.error(
                row, c_time, f"duplicate (site, time) = ({site!r}, {row.values[c_time]}); "
                f"line {parsed[key][0].line} has the same"
            )
        parsed[key] = (row, count, pop, n_aware)
        if site not in order:
            order.append(site)
    if not parsed:
        raise DataError(f"{tab.path}: no data rows")
    if sites is not None:
        absent = [s for s in sites if s not in order]
        if absent:
            raise DataError(f"{tab.path}: site(s) {', '.join(map(repr, absent))} given in sites= have no rows")
        order = list(sites)
    times = sorted({when for _, when in parsed})
    for site in order:
        for when in times:
            if (site, when) not in parsed:
                shown = when.isoformat() if isinstance(when, datetime) else f"{when:g}"
                raise DataError(
                    f"{tab.path}: column {c_time!r}: site {site!r} has no row for time {shown!r}, which other "
                    f"sites have; every site needs a row for every time (add it, or drop that time)"
                )
    n_t, n_s = len(times), len(order)
    cum = np.zeros((n_t, n_s), np.int64)
    new = np.zeros((n_t, n_s), np.int64)
    n_aware_arr = np.full((n_t, n_s), np.nan)
    pops = np.zeros(n_s, np.int64)
    for j, site in enumerate(order):
        first_row, _, pop0, _ = parsed[(site, times[0])]
        total, prev_row = 0, None
        for i, when in enumerate(times):
            row, count, pop, n_aware = parsed[(site, when)]
            if pop != pop0:
                raise tab.error(
                    row, c_pop, f"population of site {site!r} changes over time (line {first_row.line} has "
                    f"{pop0}); it must be constant within a site"
                )
            if cumulative:
                if count < total:
                    raise tab.error(
                        row, c_count, f"cumulative adopters of site {site!r} go down from {total} "
                        f"(line {prev_row.line}) to {count}; use new_adopters for per-period counts"
                    )
                new[i, j], total = count - total, count
            else:
                new[i, j], total = count, total + count
            if total > pop:
                what = "adopters" if cumulative else f"cumulative adopters ({total})"
                raise tab.error(row, c_count, f"{what} above the population {pop} of site {site!r}")
            cum[i, j], n_aware_arr[i, j], prev_row = total, n_aware, row
        pops[j] = pop0
    is_date = isinstance(times[0], datetime)
    attrs: dict[str, Any] = {"file": tab.path, "time_unit": "year", "counts_column": c_count}
    coords: dict[str, Any] = {"site": ("site", np.array(order, dtype=str))}
    if is_date:
        origin = times[0]
        t = np.array([(w - origin).total_seconds() / 86400.0 / DAYS_PER_YEAR for w in times])
        coords["date"] = ("time", np.array(times, dtype="datetime64[ns]"))
        attrs["time_origin"] = origin.date().isoformat() if origin.time() == datetime.min.time() else origin.isoformat()
        attrs["days_per_year"] = DAYS_PER_YEAR
        attrs["input_time_unit"] = "date"
    else:
        t = np.array(times, dtype=float) / per_year
        attrs["input_time_unit"] = time_unit
    coords["time"] = ("time", t, {"units": "years"})
    data = {
        "adopters": (("time", "site"), cum, {"units": "people", "long_name": "cumulative adopters"}),
        "new_adopters": (
            ("time", "site"), new, {"units": "people", "long_name": "adopters in the period ending at time"}
        ),
        "population": (("site",), pops, {"units": "people"}),
    }
    if aware is not None:
        long_name = "surveyed count of aware people; NaN = not surveyed"
        data["aware"] = (("time", "site"), n_aware_arr, {"units": "people", "long_name": long_name})
    return xr.Dataset(data, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------- individuals


def load_individuals(
    path: str | os.PathLike[str],
    *,
    sites: Sequence[str] | None = None,
    end_time: float | None = None,
    time_unit: str = "year",
) -> xr.Dataset:
    """Load individual adoption times: one CSV row per person or organisation.

    Columns: ``id`` (unique), ``site``, ``adoption_time`` (number >= 0 in ``time_unit``; blank =
    had not adopted by the end of observation, i.e. right-censored) and optional ``end_time``
    (end of observation for that row). The ``end_time`` argument (also in ``time_unit``) applies
    where the column is absent or blank; with neither, ``end_time`` is NaN (unknown).

    Returns a Dataset with dim ``node`` and coordinates ``id`` (int64 when every id is an
    integer, else str) and ``site``; variables ``adoption_time`` (float64 years, NaN when
    censored), ``adopted`` (bool) and ``end_time`` (float64 years).
    """
    tab = _read_table(path, ("id", "site", "adoption_time"))
    return _individuals_from_table(
        tab,
        {"id": "id", "site": "site", "adoption_time": "adoption_time"},
        end_col="end_time" if "end_time" in tab.columns else None,
        end_time=end_time,
        sites=_check_sites(sites),
        per_year=_per_year(time_unit),
        time_unit=time_unit,
    )


def _individuals_from_table(
    tab: _Table,
    cols: dict[str, str],
    *,
    end_col: str | None,
    end_time: float | None,
    sites: list[str] | None,
    per_year: float,
    time_unit: str,
    site_label: Callable[[str], str] = str,
) -> xr.Dataset:
    c_id, c_site, c_t = cols["id"], cols["site"], cols["adoption_time"]
    if end_time is not None:
        end_time = float(end_time)
        if not math.isfinite(end_time) or end_time < 0:
            raise DataError(f"end_time={end_time!r}: must be a finite time >= 0 (in {time_unit}s)")
    seen: dict[str, _Row] = {}
    ids, site_of, t_of, end_of = [], [], [], []
    for row in tab.rows:
        node = _required(tab, row, c_id)
        if node in seen:
            raise tab.error(row, c_id, f"duplicate id; line {seen[node].line} has the same id")
        seen[node] = row
        site = _site(tab, row, c_site, sites, site_label)
        t = math.nan if row.values[c_t] == "" else _number(tab, row, c_t, non_negative=True)
        end = end_time if end_time is not None else math.nan
        if end_col is not None and row.values[end_col] != "":
            end = _number(tab, row, end_col, non_negative=True)
        if t > end:  # False when either is NaN
            source = f"column {end_col!r}" if end_col is not None and row.values[end_col] != "" else "end_time="
            raise tab.error(row, c_t, f"adoption after the end of observation {end:g} ({source})")
        ids.append(node)
        site_of.append(site)
        t_of.append(t)
        end_of.append(end)
    t_arr = np.array(t_of, dtype=float)
    return xr.Dataset(
        {
            "adoption_time": (
                "node", t_arr / per_year, {"units": "years", "long_name": "adoption time; NaN = censored"}
            ),
            "adopted": ("node", ~np.isnan(t_arr)),
            "end_time": (
                "node", np.array(end_of, dtype=float) / per_year, {"units": "years", "long_name": "end of observation"}
            ),
        },
        coords={"id": ("node", _id_array(ids)), "site": ("node", np.array(site_of, dtype=str))},
        attrs={"file": tab.path, "time_unit": "year", "input_time_unit": time_unit},
    )


def _id_array(ids: Sequence[str]) -> np.ndarray:
    if ids and all(_INT_RE.fullmatch(s) for s in ids):
        return np.array([int(s) for s in ids], dtype=np.int64)
    return np.array(ids, dtype=str)


# --------------------------------------------------------------------------- edges


def load_edges(
    path: str | os.PathLike[str], ids: Any, *, default_network: str = "default"
) -> xr.Dataset:
    """Load a directed edge list between known individuals.

    Columns: ``source``, ``target`` (ids from the individuals file), optional ``weight`` (>= 0,
    default 1) and ``network`` (name, default ``default_network``). ``ids`` is the individuals
    Dataset from :func:`load_individuals` or a sequence of ids. Edges are kept as written,
    ``source -> target``; see the module docstring for what that means for influence.

    Returns a Dataset with dim ``edge``: ``source``, ``target`` (ids), ``source_index``,
    ``target_index`` (int64 positions along ``node``), ``weight`` (float64) and ``network``
    (str), plus the ``id`` coordinate along ``node`` so :func:`adjacency` can build matrices.
    """
    tab = _read_table(path, ("source", "target"), allow_no_rows=True)
    return _edges_from_table(tab, ids, default_network=default_network)


def _edges_from_table(tab: _Table, ids: Any, *, default_network: str) -> xr.Dataset:
    if isinstance(ids, (xr.Dataset, xr.DataArray)):
        ids = ids["id"].values
    id_arr = np.asarray(ids)
    if id_arr.ndim != 1:
        raise DataError(f"load_edges: ids must be 1-D, got shape {id_arr.shape}")
    int_ids = np.issubdtype(id_arr.dtype, np.integer)
    index = {str(v): i for i, v in enumerate(id_arr.tolist())}
    if len(index) != id_arr.size:
        raise DataError("load_edges: ids contain duplicates")
    has_w, has_net = "weight" in tab.columns, "network" in tab.columns
    src, tgt, w, net = [], [], [], []
    seen: dict[tuple[str, int, int], _Row] = {}
    for row in tab.rows:
        pos = []
        for col in ("source", "target"):
            text = _required(tab, row, col)
            key = str(int(text)) if int_ids and _INT_RE.fullmatch(text) else text
            if key not in index:
                raise tab.error(row, col, f"id not in the individuals ({len(index)} ids)")
            pos.append(index[key])
        if pos[0] == pos[1]:
            raise tab.error(row, "target", "self-loop: source and target are the same id")
        weight = 1.0
        if has_w and row.values["weight"] != "":
            weight = _number(tab, row, "weight")
            if weight < 0:
                raise tab.error(row, "weight", "negative; weights must be >= 0")
        name = row.values["network"] if has_net and row.values["network"] != "" else default_network
        key3 = (name, pos[0], pos[1])
        if key3 in seen:
            raise tab.error(
                row, "target", f"duplicate edge {row.values['source']} -> {row.values['target']} in network "
                f"{name!r}; line {seen[key3].line} has the same"
            )
        seen[key3] = row
        src.append(pos[0])
        tgt.append(pos[1])
        w.append(weight)
        net.append(name)
    s_idx, t_idx = np.array(src, dtype=np.int64), np.array(tgt, dtype=np.int64)
    return xr.Dataset(
        {
            "source": ("edge", id_arr[s_idx]),
            "target": ("edge", id_arr[t_idx]),
            "source_index": ("edge", s_idx),
            "target_index": ("edge", t_idx),
            "weight": ("edge", np.array(w, dtype=float)),
            "network": ("edge", np.array(net, dtype=str)),
        },
        coords={"id": ("node", id_arr)},
        attrs={"edges_file": tab.path, "edge_direction": "source -> target, as written in the file"},
    )


def adjacency(
    edges: xr.Dataset, network: str | Sequence[str] | None = None, *, binary: bool = False, per_network: bool = False
) -> xr.DataArray:
    """Dense adjacency ``A[source_node=i, target_node=j]`` = weight of the edge ``i -> j``.

    ``network``: one name, several (summed) or None for the union of all (summed weights, so
    with unit weights an entry counts the networks holding the tie). ``binary=True`` gives 1.0
    where the summed weight is > 0. ``per_network=True`` returns dims
    ``(network, source_node, target_node)`` instead of summing.
    """
    names_all = list(dict.fromkeys(edges["network"].values.tolist()))
    if network is None:
        names = names_all
    else:
        names = [network] if isinstance(network, str) else list(network)
        unknown = [n for n in names if n not in names_all]
        if unknown:
            raise DataError(
                f"adjacency: unknown network(s) {', '.join(map(repr, unknown))}; the edges have "
                f"{', '.join(map(repr, names_all)) or 'none'}"
            )
    ids = edges["id"].values
    n = ids.size
    s, t = edges["source_index"].values, edges["target_index"].values
    w, nets = edges["weight"].values, edges["network"].values
    mats = np.zeros((len(names), n, n))
    for k, name in enumerate(names):
        sel = nets == name
        np.add.at(mats[k], (s[sel], t[sel]), w[sel])
    coords = {"source_node": ids, "target_node": ids}
    attrs = {"description": "A[source_node=i, target_node=j] = weight of edge i -> j"}
    if per_network:
        dims = ("network", "source_node", "target_node")
        out = xr.DataArray(mats, dims=dims, coords={"network": names, **coords}, attrs=attrs)
    else:
        out = xr.DataArray(mats.sum(axis=0), dims=("source_node", "target_node"), coords=coords, attrs=attrs)
    if binary:
        out = (out > 0).astype(float).assign_attrs(attrs)
    return out.rename("adjacency")


# --------------------------------------------------------------------------- Medical Innovation

_MI_FILES = ("README.md", "nodes.csv", "edges.csv", "edges_union_weighted.csv", "adoption_by_month.csv")
_MI_END_MONTH = 17
_resource_stack = contextlib.ExitStack()
atexit.register(_resource_stack.close)


def medical_innovation_path(name: str) -> Path:
    """Path to a bundled Medical Innovation file (Coleman, Katz & Menzel 1966, via netdiffuseR).

    ``name`` is one of ``README.md`` (source, licence and citation), ``nodes.csv``,
    ``edges.csv``, ``edges_union_weighted.csv`` or ``adoption_by_month.csv``.
    """
    if name not in _MI_FILES:
        raise DataError(f"medical_innovation_path: unknown file {name!r}; bundled files are {', '.join(_MI_FILES)}")
    resource = resources.files("spreadjax").joinpath("data", "medical_innovation", name)
    if isinstance(resource, Path):
        return resource
    return _resource_stack.enter_context(resources.as_file(resource))  # e.g. installed as a zip


def medical_innovation_counts() -> xr.Dataset:
    """Adopters per month in the four cities as a :func:`load_counts` Dataset.

    Sites ``city1``..``city4`` (the ``all`` rows are dropped); month ``m`` (1 = November 1953,
    17 = March 1955) is time ``m / 12`` years; population = physicians surveyed in the city.
    The 16 physicians who had not adopted by month 17 are simply not counted as adopters.
    """
    tab = _read_table(
        medical_innovation_path("adoption_by_month.csv"), ("city", "month", "n_nodes", "new_adopters", "cum_adopters")
    )
    ds = _counts_from_table(
        tab,
        {"site": "city", "time": "month", "population": "n_nodes", "count": "new_adopters"},
        cumulative=False,
        aware=None,
        sites=None,
        per_year=12.0,
        time_unit="month",
        site_label=lambda city: f"city{city}",
        keep=lambda row: row.values["city"] != "all",
    )
    for row in tab.rows:  # the file also stores the cumulative count: check they agree
        if row.values["city"] != "all":
            month = float(row.values["month"]) / 12.0  # the same float as in ds.time
            got = int(ds["adopters"].sel(site=f"city{row.values['city']}", time=month).item())
            if got != _count(tab, row, "cum_adopters"):
                raise tab.error(row, "cum_adopters", f"disagrees with the running sum of new_adopters ({got})")
    ds.attrs.update(_mi_attrs("adoption_by_month.csv"))
    return ds


def medical_innovation_individuals() -> xr.Dataset:
    """Physicians, adoption times and the three nomination networks in one Dataset.

    Dim ``node`` (125 physicians): ``id`` = ``node_id`` (city*1000 + id in city), ``site`` =
    ``city1``..``city4``, ``adoption_time`` = month of first tetracycline prescription / 12
    (years; NaN for the 16 who had not adopted), ``adopted``, ``end_time`` = 17/12 years.
    Dim ``edge`` (450): the :func:`load_edges` variables from ``edges.csv``, networks
    ``advice``, ``discussion`` and ``friendship``.

    Direction: ``source`` is the respondent who named ``target`` (as advisor, discussion partner
    or friend), so influence flows target -> source. ``adjacency(ds)`` is then the influence
    matrix ``A[i, j]`` (j influences i) that netdiffuseR uses for exposure
    ``E_i = sum_j A_ij a_j / sum_j A_ij`` (on the binary union: ``binary=True``).
    """
    nodes = _read_table(medical_innovation_path("nodes.csv"), ("node_id", "city", "toa"))
    ind = _individuals_from_table(
        nodes,
        {"id": "node_id", "site": "city", "adoption_time": "toa"},
        end_col=None,
        end_time=_MI_END_MONTH,
        sites=None,
        per_year=12.0,
        time_unit="month",
        site_label=lambda city: f"city{city}",
    )
    edges = _edges_from_table(
        _read_table(medical_innovation_path("edges.csv"), ("source", "target", "network")),
        ind,
        default_network="default",
    )
    out = ind.assign({name: edges[name] for name in edges.data_vars})
    out.attrs = {
        **_mi_attrs("nodes.csv, edges.csv"),
        "time_unit": "year",
        "edge_direction": "source = respondent who names target (advisor, discussant, friend); "
        "influence flows target -> source",
    }
    return out


def _mi_attrs(files: str) -> dict[str, str]:
    return {
        "file": f"spreadjax/data/medical_innovation/{files}",
        "title": "Medical Innovation: tetracycline adoption by physicians in four Illinois cities",
        "citation": "Coleman, Katz & Menzel (1966) Medical Innovation: A Diffusion Study; data via netdiffuseR "
        "(Valente & Vega Yon 2020, Health Educ. Behav. 47(2):235-248, doi:10.1177/1090198120901497), MIT licence",
        "time_note": "month m of the study (1 = November 1953) is time m/12 years",
    }
