"""Observed-data loaders: every error names file, line and column; bundled Medical Innovation data
reproduces the numbers published in its README (netdiffuseR summaries)."""

import csv
import textwrap

import numpy as np
import pytest
import xarray as xr

from spreadjax._errors import DataError
from spreadjax.calibrate import (
    adjacency,
    load_counts,
    load_edges,
    load_individuals,
    medical_innovation_counts,
    medical_innovation_individuals,
    medical_innovation_path,
)


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def check_error(excinfo, path, line, column, *fragments):
    """One line naming the file, the line (header = line 1) and the column."""
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert str(path) in msg
    if line is not None:
        assert f"line {line} " in msg, msg
    if column is not None:
        assert repr(column) in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg


# --------------------------------------------------------------------------- counts: errors

COUNT_ERRORS = {
    "missing column": ("site,time,adopters\nA,1,2\n", 1, "population", "missing column"),
    "negative": ("site,time,adopters,population\nA,1,2,10\nA,2,-1,10\n", 3, "adopters", "negative"),
    "non-integer": ("site,time,adopters,population\nA,1,2.5,10\n", 2, "adopters", "not an integer"),
    "not a number": ("site,time,new_adopters,population\nA,1,two,10\n", 2, "new_adopters", "not a number"),
    "blank count": ("site,time,adopters,population\nA,1,,10\n", 2, "adopters", "missing value"),
    "above population": ("site,time,adopters,population\nA,1,2,10\nA,2,11,10\n", 3, "adopters", "above the population"),
    "new above population": ("site,time,new_adopters,population\nA,1,6,10\nA,2,5,10\n", 3, "new_adopters", "(11)"),
    "goes down": ("site,time,adopters,population\nA,1,5,10\nA,2,4,10\n", 3, "adopters", "go down from 5 (line 2)"),
    "bad time": ("site,time,adopters,population\nA,soon,5,10\n", 2, "time", "'soon'"),
    "bad date": ("site,time,adopters,population\nA,2024-13-01,5,10\n", 2, "time", "ISO date"),
    "infinite time": ("site,time,adopters,population\nA,inf,5,10\n", 2, "time", "finite"),
    "mixed time": ("site,time,adopters,population\nA,2024-01-01,5,10\nA,1,6,10\n", 3, "time", "line 2 has a date"),
    "duplicate": ("site,time,adopters,population\nA,1,5,10\nB,1,5,10\nA,1.0,6,10\n", 4, "time", "line 2 has the same"),
    "population changes": ("site,time,adopters,population\nA,1,5,10\nA,2,6,11\n", 3, "population", "constant"),
    "zero population": ("site,time,adopters,population\nA,1,0,0\n", 2, "population", ">= 1"),
    "aware above population": ("site,time,adopters,population,aware\nA,1,5,10,12\n", 2, "aware", "above"),
    "both": ("site,time,adopters,new_adopters,population\nA,1,5,5,10\n", 1, "new_adopters", "both"),
    "neither": ("site,time,population\nA,1,10\n", 1, "adopters", "neither"),
    "field count": ("site,time,adopters,population\nA,1,5\n", 2, None, "expected 4 fields"),
    "blank line counted": ("site,time,adopters,population\nA,1,5,10\n\nA,2,x,10\n", 4, "adopters", "(data row 2)"),
}


@pytest.mark.parametrize("case", COUNT_ERRORS, ids=list(COUNT_ERRORS))
def test_counts_errors(tmp_path, case):
    text, line, column, fragment = COUNT_ERRORS[case]
    path = write(tmp_path, text)
    with pytest.raises(DataError) as excinfo:
        load_counts(path)
    check_error(excinfo, path, line, column, fragment)


def test_counts_unknown_site(tmp_path):
    path = write(tmp_path, "site,time,adopters,population\nA,1,1,10\nZ,1,1,10\n")
    with pytest.raises(DataError) as excinfo:
        load_counts(path, sites=["A", "B"])
    check_error(excinfo, path, 3, "site", "unknown site 'Z'")


def test_counts_site_without_rows(tmp_path):
    path = write(tmp_path, "site,time,adopters,population\nA,1,1,10\n")
    with pytest.raises(DataError) as excinfo:
        load_counts(path, sites=["A", "B"])
    check_error(excinfo, path, None, None, "'B'", "no rows")


def test_counts_missing_combination(tmp_path):
    path = write(tmp_path, "site,time,adopters,population\nA,1,1,10\nA,2,2,10\nB,1,1,5\n")
    with pytest.raises(DataError) as excinfo:
        load_counts(path)
    check_error(excinfo, path, None, "time", "site 'B' has no row for time '2'")


@pytest.mark.parametrize("text", ["", "\n\n", "site,time,adopters,population\n"], ids=["empty", "blank", "header only"])
def test_counts_empty_file(tmp_path, text):
    path = write(tmp_path, text) if text.strip() else tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(DataError) as excinfo:
        load_counts(path)
    check_error(excinfo, path, None, None, "empty")


def test_file_not_found(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_counts(tmp_path / "nope.csv")


def test_bad_time_unit(tmp_path):
    path = write(tmp_path, "site,time,adopters,population\nA,1,1,10\n")
    with pytest.raises(DataError, match="time_unit='fortnight'"):
        load_counts(path, time_unit="fortnight")


# --------------------------------------------------------------------------- counts: happy paths


def test_counts_dates(tmp_path):
    # Rows out of order, a second site, BOM and padding: all accepted.
    path = write(
        tmp_path,
        """
        site, time, adopters, population, aware
        north,2025-03-01,7,20,
        north,2024-03-01,1,20,4
        south,2024-03-01,0,8,1
        north,2024-09-01,3,20,
        south,2024-09-01,2,8,5
        south,2025-03-01,8,8,8
        """,
    )
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    ds = load_counts(path)
    assert ds["adopters"].dims == ("time", "site")
    assert ds["site"].values.tolist() == ["north", "south"]  # order of first appearance
    # Days since 2024-03-01: 184 (to 1 Sep) and 365 (to 1 Mar 2025; no 29 Feb in between).
    np.testing.assert_array_equal(ds["time"].values, np.array([0.0, 184.0, 365.0]) / 365.25)
    assert ds.attrs["time_origin"] == "2024-03-01"
    assert ds["date"].values[0] == np.datetime64("2024-03-01")
    assert ds["adopters"].sel(site="north").values.tolist() == [1, 3, 7]
    assert ds["new_adopters"].sel(site="north").values.tolist() == [1, 2, 4]
    assert ds["population"].values.tolist() == [20, 8]
    assert ds["adopters"].dtype == np.int64
    aware = ds["aware"].sel(site="north").values
    assert aware[0] == 4 and np.isnan(aware[1:]).all()


def test_counts_numbers_and_units(tmp_path):
    path = write(tmp_path, "site,time,new_adopters,population\nB,3,1,5\nB,6,2,5\nA,3,0,4\nA,6,4,4\n")
    ds = load_counts(path, sites=["A", "B"], time_unit="month")
    assert ds["site"].values.tolist() == ["A", "B"]
    np.testing.assert_array_equal(ds["time"].values, [3 / 12, 6 / 12])
    assert "date" not in ds.coords and ds.attrs["input_time_unit"] == "month"
    assert ds["adopters"].values.tolist() == [[0, 1], [4, 3]]
    assert "aware" not in ds


def test_counts_cumulative_and_new_agree(tmp_path):
    rng = np.random.default_rng(0)
    new = rng.integers(0, 4, size=(6, 3))
    cum = new.cumsum(axis=0)
    rows_new, rows_cum = [], []
    for i in range(6):
        for j in range(3):
            rows_new.append(f"s{j},{i * 0.5},{new[i, j]},30")
            rows_cum.append(f"s{j},{i * 0.5},{cum[i, j]},30")
    a = load_counts(write(tmp_path, "site,time,new_adopters,population\n" + "\n".join(rows_new), "new.csv"))
    # Reversed row order: sites= fixes the site order, times are sorted.
    b = load_counts(
        write(tmp_path, "site,time,adopters,population\n" + "\n".join(rows_cum[::-1]), "cum.csv"),
        sites=["s0", "s1", "s2"],
    )
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    np.testing.assert_array_equal(a["adopters"].values, cum)
    np.testing.assert_array_equal(b["new_adopters"].values, new)
    xr.testing.assert_equal(b["new_adopters"].cumsum("time"), b["adopters"])


def test_counts_accepts_integral_floats(tmp_path):
    ds = load_counts(write(tmp_path, "site,time,adopters,population\nA,0,3.0,10\n"))
    assert ds["adopters"].values.tolist() == [[3]]


# --------------------------------------------------------------------------- individuals

INDIVIDUAL_ERRORS = {
    "missing column": ("id,site\n1,A\n", 1, "adoption_time", "missing column"),
    "duplicate id": ("id,site,adoption_time\n1,A,0.5\n2,A,\n1,B,1\n", 4, "id", "line 2 has the same id"),
    "bad time": ("id,site,adoption_time\n1,A,early\n", 2, "adoption_time", "not a number"),
    "negative time": ("id,site,adoption_time\n1,A,0.5\n2,A,-1\n", 3, "adoption_time", "negative"),
    "after end column": (
        "id,site,adoption_time,end_time\n1,A,0.5,2\n2,A,3,2\n", 3, "adoption_time", "end of observation 2"
    ),
    "bad end": ("id,site,adoption_time,end_time\n1,A,0.5,x\n", 2, "end_time", "not a number"),
    "blank id": ("id,site,adoption_time\n,A,0.5\n", 2, "id", "missing value"),
}


@pytest.mark.parametrize("case", INDIVIDUAL_ERRORS, ids=list(INDIVIDUAL_ERRORS))
def test_individuals_errors(tmp_path, case):
    text, line, column, fragment = INDIVIDUAL_ERRORS[case]
    path = write(tmp_path, text)
    with pytest.raises(DataError) as excinfo:
        load_individuals(path)
    check_error(excinfo, path, line, column, fragment)


def test_individuals_after_end_keyword_and_unknown_site(tmp_path):
    path = write(tmp_path, "id,site,adoption_time\n1,A,0.5\n2,B,1.5\n")
    with pytest.raises(DataError) as excinfo:
        load_individuals(path, end_time=1.0)
    check_error(excinfo, path, 3, "adoption_time", "end_time=")
    with pytest.raises(DataError) as excinfo:
        load_individuals(path, sites=["A"])
    check_error(excinfo, path, 3, "site", "unknown site 'B'")


def test_individuals_happy(tmp_path):
    path = write(tmp_path, "id,site,adoption_time,end_time\n10,A,6,\n11,A,,24\n12,B,12,\n13,B,,\n")
    ds = load_individuals(path, end_time=12, time_unit="month")  # blank end_time cells take end_time=12
    assert ds["id"].values.tolist() == [10, 11, 12, 13] and ds["id"].dtype == np.int64
    assert ds["site"].values.tolist() == ["A", "A", "B", "B"]
    np.testing.assert_array_equal(ds["adoption_time"].values, [0.5, np.nan, 1.0, np.nan])  # adopting at the end is fine
    assert ds["adopted"].values.tolist() == [True, False, True, False]
    np.testing.assert_array_equal(ds["end_time"].values, [1.0, 2.0, 1.0, 1.0])
    assert ds["adopted"].dims == ("node",)


def test_individuals_string_ids_and_no_end(tmp_path):
    ds = load_individuals(write(tmp_path, "id,site,adoption_time\nalice,A,0.5\nbob,A,\n"))
    assert ds["id"].values.tolist() == ["alice", "bob"]
    assert np.isnan(ds["end_time"].values).all()


# --------------------------------------------------------------------------- edges

IDS = [1, 2, 3]
EDGE_ERRORS = {
    "missing column": ("source,weight\n1,1\n", 1, "target", "missing column"),
    "unknown target": ("source,target\n1,2\n1,9\n", 3, "target", "not in the individuals"),
    "unknown source": ("source,target\nx,2\n", 2, "source", "not in the individuals"),
    "self-loop": ("source,target\n1,2\n3,3\n", 3, "target", "self-loop"),
    "negative weight": ("source,target,weight\n1,2,-0.5\n", 2, "weight", "negative"),
    "bad weight": ("source,target,weight\n1,2,heavy\n", 2, "weight", "not a number"),
    "duplicate": ("source,target,network\n1,2,a\n2,1,a\n1,2,b\n1,2,a\n", 5, "target", "line 2 has the same"),
    "duplicate default": ("source,target\n1,2\n1,2\n", 3, "target", "'default'"),
}


@pytest.mark.parametrize("case", EDGE_ERRORS, ids=list(EDGE_ERRORS))
def test_edges_errors(tmp_path, case):
    text, line, column, fragment = EDGE_ERRORS[case]
    path = write(tmp_path, text)
    with pytest.raises(DataError) as excinfo:
        load_edges(path, IDS)
    check_error(excinfo, path, line, column, fragment)


def test_edges_and_adjacency(tmp_path):
    nodes = load_individuals(write(tmp_path, "id,site,adoption_time\n1,A,\n2,A,\n3,A,\n", "nodes.csv"))
    path = write(tmp_path, "source,target,network,weight\n1,2,a,\n2,1,a,2.5\n1,2,b,0.5\n3,1,,\n", "edges.csv")
    edges = load_edges(path, nodes)
    assert edges["network"].values.tolist() == ["a", "a", "b", "default"]
    np.testing.assert_array_equal(edges["weight"].values, [1.0, 2.5, 0.5, 1.0])
    assert edges["source_index"].values.tolist() == [0, 1, 0, 2]
    a = adjacency(edges)
    assert a.dims == ("source_node", "target_node")
    np.testing.assert_array_equal(a.values, [[0, 1.5, 0], [2.5, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(adjacency(edges, "b").values, [[0, 0.5, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(adjacency(edges, ["a", "b"], binary=True).values, [[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    stacked = adjacency(edges, per_network=True)
    assert stacked["network"].values.tolist() == ["a", "b", "default"]
    xr.testing.assert_equal(stacked.sum("network"), a.drop_attrs())
    assert float(a.sel(source_node=2, target_node=1)) == 2.5
    with pytest.raises(DataError, match="unknown network"):
        adjacency(edges, "c")


def test_edges_header_only_is_empty_graph(tmp_path):
    edges = load_edges(write(tmp_path, "source,target\n"), IDS)
    assert edges.sizes["edge"] == 0
    assert adjacency(edges).shape == (3, 3) and float(adjacency(edges).sum()) == 0


# --------------------------------------------------------------------------- Medical Innovation

PUBLISHED_NEW = [11, 9, 9, 11, 11, 11, 13, 7, 4, 1, 5, 3, 3, 4, 4, 2, 1]  # months 1..17, all cities


def test_mi_counts_match_published():
    ds = medical_innovation_counts()
    assert ds["site"].values.tolist() == ["city1", "city2", "city3", "city4"]
    np.testing.assert_array_equal(ds["time"].values, np.arange(1, 18) / 12)
    assert ds["new_adopters"].sum("site").values.tolist() == PUBLISHED_NEW
    assert ds["adopters"].sum("site").values.tolist() == np.cumsum(PUBLISHED_NEW).tolist()
    assert ds["adopters"].isel(time=-1).values.tolist() == [55, 21, 17, 16]
    assert ds["population"].values.tolist() == [62, 24, 21, 18]


def test_mi_individuals_match_published():
    ds = medical_innovation_individuals()
    assert ds.sizes == {"node": 125, "edge": 450}
    assert int(ds["adopted"].sum()) == 109 and int((~ds["adopted"]).sum()) == 16
    assert np.isnan(ds["adoption_time"].where(~ds["adopted"])).all()
    np.testing.assert_array_equal(ds["end_time"].values, 17 / 12)
    sizes = ds["site"].to_series().value_counts().sort_index()
    assert sizes.tolist() == [62, 24, 21, 18]
    adopters = ds["adopted"].groupby("site").sum()
    assert adopters.values.tolist() == [55, 21, 17, 16]
    nets = ds["network"].to_series().value_counts()
    assert nets.to_dict() == {"discussion": 165, "advice": 161, "friendship": 124}
    # Edges per network and city (README table); all ties are within one city.
    site = ds["site"].values
    assert (site[ds["source_index"].values] == site[ds["target_index"].values]).all()
    city = site[ds["source_index"].values]
    network = ds["network"].values
    table = {n: [int(np.sum((network == n) & (city == f"city{c}"))) for c in range(1, 5)] for n in nets.index}
    assert table == {"advice": [94, 29, 19, 19], "discussion": [88, 35, 21, 21], "friendship": [55, 25, 23, 21]}


def test_mi_individuals_agree_with_counts():
    ind, counts = medical_innovation_individuals(), medical_innovation_counts()
    for s in counts["site"].values:
        times = ind["adoption_time"].values[ind["site"].values == s]
        expected = [int(np.sum(times <= t)) for t in counts["time"].values]  # NaN compares False
        assert counts["adopters"].sel(site=s).values.tolist() == expected


def test_mi_union_matches_bundled_weighted_file():
    ind = medical_innovation_individuals()
    union = adjacency(ind)
    weighted = load_edges(medical_innovation_path("edges_union_weighted.csv"), ind)
    assert weighted.sizes["edge"] == 294
    assert np.bincount(weighted["weight"].values.astype(int)).tolist() == [0, 174, 84, 36]
    np.testing.assert_array_equal(union.values, adjacency(weighted).values)
    assert int((union > 0).sum()) == 294


def test_mi_edge_direction_reproduces_netdiffuser_thresholds():
    # netdiffuseR's threshold is the exposure at adoption, sum_j A_ij a_j / sum_j A_ij on the binary
    # union of outgoing ties (i names j). README: it equals nodes.csv's `thresh` for 103 of 109
    # adopters. With the transpose (wrong direction) only 43 agree, so this pins the orientation.
    ind = medical_innovation_individuals()
    a = adjacency(ind, binary=True).values
    t = ind["adoption_time"].values
    with open(medical_innovation_path("nodes.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["node_id"]) for r in rows] == ind["id"].values.tolist()
    thresh = np.array([float(r["thresh"]) for r in rows if r["toa"]])
    adopted_by = (t[None, :] <= t[:, None]).astype(float)  # [i, j]: j had adopted when i did
    deg = a.sum(axis=1)
    exposure = np.where(deg > 0, (a * adopted_by).sum(axis=1) / np.maximum(deg, 1), 0.0)[~np.isnan(t)]
    assert int(np.sum(np.abs(exposure - thresh) < 1e-4)) == 103  # thresh has 5 decimals


def test_mi_path_and_readme():
    readme = medical_innovation_path("README.md").read_text()
    assert "## Citation" in readme and "Coleman" in readme and "10.1177/1090198120901497" in readme
    with pytest.raises(DataError, match="unknown file"):
        medical_innovation_path("nominations_all.csv")


def test_datasets_write_to_netcdf(tmp_path):
    pytest.importorskip("h5netcdf")
    for ds in (medical_innovation_counts(), medical_innovation_individuals()):
        ds.to_netcdf(tmp_path / "x.nc", engine="h5netcdf")
        with xr.open_dataset(tmp_path / "x.nc", engine="h5netcdf") as back:
            np.testing.assert_array_equal(back["time" if "time" in ds else "adoption_time"].values,
                                          ds["time" if "time" in ds else "adoption_time"].values)
