"""The SDXorg conformance suite: the vendored models listed as supported match their published
outputs at the suite's tolerance (``scripts/sdxorg_conformance.py`` reports every model, passing
or not, with its reason)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("sdxorg_conformance", ROOT / "scripts" / "sdxorg_conformance.py")
conformance = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conformance)

#: models that match their canonical output (every PASS of the conformance run; the script lists
#: the rest with their reasons: macros, modules, faults of the suite's own files, a few Vensim
#: functions and behaviours)
SUPPORTED = [
    "samples/SIR/SIR.mdl",
    "samples/SIR/SIR.stmx",
    "samples/SIR/SIR.xmile",
    "samples/SIR/SIR_legacy.stmx",
    "samples/SIR/SIR_reciprocal-dt.xmile",
    "samples/teacup/teacup.mdl",
    "samples/teacup/teacup.stmx",
    "samples/teacup/teacup.xmile",
    "samples/teacup/teacup_legacy.stmx",
    "samples/teacup/teacup_mdl.mdl",
    "samples/teacup/teacup_w_diagram.xmile",
    "tests/abs/test_abs.mdl",
    "tests/abs/test_abs.stmx",
    "tests/abs/test_abs.xmile",
    "tests/active_initial/test_active_initial.mdl",
    "tests/active_initial_circular/test_active_initial_circular.mdl",
    "tests/arguments/test_arguments.mdl",
    "tests/arithmetics/test_arithmetics.mdl",
    "tests/arithmetics_exp/test_arithmetics_exp.mdl",
    "tests/arithmetics_exp/test_arithmetics_exp.xmile",
    "tests/array_with_line_break/test_array_with_line_break.mdl",
    "tests/builtin_max/builtin_max.mdl",
    "tests/builtin_max/builtin_max.stmx",
    "tests/builtin_max/builtin_max.xmile",
    "tests/builtin_min/builtin_min.mdl",
    "tests/builtin_min/builtin_min.stmx",
    "tests/builtin_min/builtin_min.xmile",
    "tests/case_sensitive_extension/teacup-upper.MDL",
    "tests/chained_initialization/test_chained_initialization.mdl",
    "tests/chained_initialization/test_chained_initialization.stmx",
    "tests/chained_initialization/test_chained_initialization.xmile",
    "tests/comparisons/comparisons.stmx",
    "tests/comparisons/comparisons.xmile",
    "tests/conditional_subscripts/test_conditional_subscripts.mdl",
    "tests/constant_expressions/test_constant_expressions.mdl",
    "tests/constant_expressions/test_constant_expressions.stmx",
    "tests/constant_expressions/test_constant_expressions.xmile",
    "tests/delay_fixed/test_delay_fixed.mdl",
    "tests/delay_numeric_error/test_delay_numeric_error.mdl",
    "tests/delay_parentheses/test_delay_parentheses.mdl",
    "tests/delay_pipeline/test_pipeline_delays.mdl",
    "tests/delay_xmile/test_delay_xmile.xmile",
    "tests/delays/test_delays.mdl",
    "tests/elm_count/test_elm_count.mdl",
    "tests/euler_step_vs_saveper/test_euler_step_vs_saveper.mdl",
    "tests/eval_order/eval_order.stmx",
    "tests/eval_order/eval_order.xmile",
    "tests/except/test_except.mdl",
    "tests/except_multiple/test_except_multiple.mdl",
    "tests/except_subranges/test_except_subranges.mdl",
    "tests/exponentiation/exponentiation.mdl",
    "tests/exponentiation/exponentiation.stmx",
    "tests/exponentiation/exponentiation.xmile",
    "tests/forecast/test_forecast.mdl",
    "tests/fully_invalid_names/test_fully_invalid_names.mdl",
    "tests/function_capitalization/test_function_capitalization.mdl",
    "tests/function_capitalization/test_function_capitalization.stmx",
    "tests/function_capitalization/test_function_capitalization.xmile",
    "tests/game/test_game.stmx",
    "tests/game/test_game.xmile",
    "tests/if_stmt/if_stmt.mdl",
    "tests/if_stmt/if_stmt.stmx",
    "tests/if_stmt/if_stmt.xmile",
    "tests/initial_function/test_initial.mdl",
    "tests/initial_function/test_initial.stmx",
    "tests/initial_function/test_initial.xmile",
    "tests/input_functions/test_inputs.mdl",
    "tests/limits/test_limits.mdl",
    "tests/limits/test_limits.stmx",
    "tests/limits/test_limits.xmile",
    "tests/line_breaks/test_line_breaks.mdl",
    "tests/line_breaks/test_line_breaks.stmx",
    "tests/line_breaks/test_line_breaks.xmile",
    "tests/line_continuation/test_line_continuation.mdl",
    "tests/line_continuation/test_line_continuation.stmx",
    "tests/line_continuation/test_line_continuation.xmile",
    "tests/ln/test_ln.mdl",
    "tests/ln/test_ln.stmx",
    "tests/ln/test_ln.xmile",
    "tests/log/test_log.mdl",
    "tests/log/test_log.stmx",
    "tests/log/test_log.xmile",
    "tests/logicals/test_logicals.mdl",
    "tests/logicals/test_logicals.xmile",
    "tests/logicals/test_logicals_caseinsensitive.xmile",
    "tests/lookups/test_lookups.mdl",
    "tests/lookups/test_lookups.stmx",
    "tests/lookups/test_lookups.xmile",
    "tests/lookups/test_lookups_no-indirect.stmx",
    "tests/lookups/test_lookups_no-indirect.xmile",
    "tests/lookups/test_lookups_xpts_sep.xmile",
    "tests/lookups/test_lookups_xscale.xmile",
    "tests/lookups/test_lookups_ypts_sep.xmile",
    "tests/lookups_funcnames/test_lookups_funcnames.mdl",
    "tests/lookups_inline/test_lookups_inline.mdl",
    "tests/lookups_inline/test_lookups_inline.stmx",
    "tests/lookups_inline/test_lookups_inline.xmile",
    "tests/lookups_inline_bounded/test_lookups_inline_bounded.mdl",
    "tests/lookups_inline_spaces/test_lookups_inline_spaces.mdl",
    "tests/lookups_with_expr/test_lookups_with_expr.mdl",
    "tests/lookups_without_range/test_lookups_without_range.mdl",
    "tests/min_max_1arg/test_min_max_1arg.xmile",
    "tests/model_doc/model_doc.mdl",
    "tests/model_doc/model_doc.stmx",
    "tests/model_doc/model_doc.xmile",
    "tests/multiple_lines_def/test_multiple_lines_def.mdl",
    "tests/nested_functions/test_nested_functions.mdl",
    "tests/non_negative_all/test_non_negative_all1.xmile",
    "tests/non_negative_all/test_non_negative_all2.xmile",
    "tests/non_negative_stocks/test_non_negative_stocks.xmile",
    "tests/non_negative_stocks/test_non_negative_stocks_behavior.xmile",
    "tests/number_handling/test_number_handling.mdl",
    "tests/number_handling/test_number_handling.stmx",
    "tests/number_handling/test_number_handling.xmile",
    "tests/odd_number_quotes/teacup_3quotes.mdl",
    "tests/parentheses/test_parens.mdl",
    "tests/parentheses/test_parens.stmx",
    "tests/parentheses/test_parens.xmile",
    "tests/pi/test_pi.xmile",
    "tests/power/power.mdl",
    "tests/reference_capitalization/test_reference_capitalization.mdl",
    "tests/reference_capitalization/test_reference_capitalization.stmx",
    "tests/reference_capitalization/test_reference_capitalization.xmile",
    "tests/repeated_subscript/test_repeated_subscript.mdl",
    "tests/rounding/test_rounding.mdl",
    "tests/rounding/test_rounding.xmile",
    "tests/smaller_range/test_smaller_range.mdl",
    "tests/smooth/test_smooth.mdl",
    "tests/smooth_and_stock/test_smooth_and_stock.mdl",
    "tests/smooth_and_stock/test_smooth_and_stock.stmx",
    "tests/smooth_and_stock/test_smooth_and_stock.xmile",
    "tests/special_characters/test_special_variable_names.mdl",
    "tests/special_characters_xmile/test_special_variable_names.stmx",
    "tests/special_characters_xmile/test_special_variable_names.xmile",
    "tests/sqrt/test_sqrt.mdl",
    "tests/sqrt/test_sqrt.stmx",
    "tests/sqrt/test_sqrt.xmile",
    "tests/subrange_merge/test_subrange_merge.mdl",
    "tests/subscript_1d_arrays/test_subscript_1d_arrays.mdl",
    "tests/subscript_2d_arrays/test_subscript_2d_arrays.mdl",
    "tests/subscript_3d_arrays/test_subscript_3d_arrays.mdl",
    "tests/subscript_3d_arrays_lengthwise/test_subscript_3d_arrays_lengthwise.mdl",
    "tests/subscript_3d_arrays_widthwise/test_subscript_3d_arrays_widthwise.mdl",
    "tests/subscript_aggregation/test_subscript_aggregation.mdl",
    "tests/subscript_constant_call/test_subscript_constant_call.mdl",
    "tests/subscript_copy/test_subscript_copy.mdl",
    "tests/subscript_copy/test_subscript_copy2.mdl",
    "tests/subscript_definition/test_subscript_definition.mdl",
    "tests/subscript_docs/subscript_docs.mdl",
    "tests/subscript_element_name/test_subscript_element_name.mdl",
    "tests/subscript_individually_defined_1_of_2d_arrays/subscript_individually_defined_1_of_2d_arrays.mdl",
    "tests/subscript_individually_defined_1_of_2d_arrays_from_floats/subscript_individually_defined_1_of_2d_arrays_from_floats.mdl",
    "tests/subscript_individually_defined_1d_arrays/subscript_individually_defined_1d_arrays.mdl",
    "tests/subscript_individually_defined_1d_arrays/subscript_individually_defined_1d_arrays.stmx",
    "tests/subscript_individually_defined_1d_arrays/subscript_individually_defined_1d_arrays.xmile",
    "tests/subscript_individually_defined_stocks/test_subscript_individually_defined_stocks.mdl",
    "tests/subscript_logicals/test_subscript_logicals.mdl",
    "tests/subscript_mapping_simple/test_subscript_mapping_simple.mdl",
    "tests/subscript_mapping_vensim/test_subscript_mapping_vensim.mdl",
    "tests/subscript_mixed_assembly/test_subscript_mixed_assembly.mdl",
    "tests/subscript_multiples/test_multiple_subscripts.mdl",
    "tests/subscript_numeric_range/test_subscript_numeric_range.mdl",
    "tests/subscript_selection/subscript_selection.mdl",
    "tests/subscript_subranges/test_subscript_subrange.mdl",
    "tests/subscript_subranges_equal/test_subscript_subrange_equal.mdl",
    "tests/subscript_switching/subscript_switching.mdl",
    "tests/subscript_transposition/test_subscript_transposition.mdl",
    "tests/subscript_updimensioning/test_subscript_updimensioning.mdl",
    "tests/subscripted_flows/test_subscripted_flows.mdl",
    "tests/subscripted_if_then_else/test_subscripted_if_then_else.mdl",
    "tests/subscripted_logicals/test_subscripted_logicals.mdl",
    "tests/subscripted_lookups/test_subscripted_lookups.mdl",
    "tests/subscripted_ramp_step/test_subscripted_ramp_step.mdl",
    "tests/subscripted_round/test_subscripted_round.mdl",
    "tests/subscripted_smooth/test_subscripted_smooth.mdl",
    "tests/subscripted_trend/test_subscripted_trend.mdl",
    "tests/subscripted_trig/test_subscripted_trig.mdl",
    "tests/subscripted_trig/test_subscripted_trig.xmile",
    "tests/subscripted_xidz/test_subscripted_xidz.mdl",
    "tests/subset_duplicated_coord/test_subset_duplicated_coord.mdl",
    "tests/tabbed_arrays/tabbed_arrays.mdl",
    "tests/time/test_time.mdl",
    "tests/trend/test_trend.mdl",
    "tests/trig/test_trig.mdl",
    "tests/trig/test_trig.stmx",
    "tests/trig/test_trig.xmile",
    "tests/unchangeable_constant/test_unchangeable_constant.mdl",
    "tests/unicode_characters/unicode_test_model.mdl",
    "tests/xidz_zidz/xidz_zidz.mdl",
    "tests/xidz_zidz/xidz_zidz.stmx",
    "tests/xidz_zidz/xidz_zidz.xmile",
    "tests/zeroled_decimals/test_zeroled_decimals.mdl",
]

#: one or two per construct and format, fast enough for every run
QUICK = [
    "samples/teacup/teacup.xmile",
    "samples/teacup/teacup.mdl",
    "samples/SIR/SIR_reciprocal-dt.xmile",
    "tests/lookups/test_lookups_xscale.xmile",
    "tests/lookups/test_lookups.mdl",
    "tests/smooth_and_stock/test_smooth_and_stock.xmile",
    "tests/smooth_and_stock/test_smooth_and_stock.mdl",
    "tests/if_stmt/if_stmt.xmile",
    "tests/builtin_max/builtin_max.stmx",
    "tests/initial_function/test_initial.xmile",
    "tests/subscript_individually_defined_1d_arrays/subscript_individually_defined_1d_arrays.xmile",
    "tests/subscript_2d_arrays/test_subscript_2d_arrays.mdl",
    "tests/xidz_zidz/xidz_zidz.xmile",
    "tests/arithmetics_exp/test_arithmetics_exp.xmile",
    "tests/exponentiation/exponentiation.xmile",
    "tests/non_negative_stocks/test_non_negative_stocks.xmile",
    "tests/input_functions/test_inputs.mdl",
    "tests/trig/test_trig.xmile",
    "tests/trend/test_trend.mdl",
    "tests/delays/test_delays.mdl",  # DELAY N with a delay time that changes
    "tests/rounding/test_rounding.mdl",  # INTEGER(Time / 10 - 10) at whole values
]


def check(model: str) -> dict:
    record = conformance.check_model(conformance.SUITE / model)
    assert record["status"] == "PASS", f"{model}: {record['status']} {record['reason']}"
    assert record["compared"], model
    return record


@pytest.mark.parametrize("model", QUICK)
def test_quick_models_match_published_output(model):
    assert model in SUPPORTED
    check(model)


def _distinct(models: list[str]) -> list[str]:
    """Drop byte-identical copies (many folders ship the same file as .xmile and .stmx)."""
    import hashlib

    seen, out = set(), []
    for m in models:
        digest = hashlib.sha256((conformance.SUITE / m).read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(m)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model", [m for m in _distinct(QUICK + SUPPORTED) if m not in QUICK])
def test_supported_models_match_published_output(model):
    check(model)


def test_every_vendored_model_is_reported():
    """The runner finds every model that has a canonical output; unsupported ones come back
    with a reason naming the construct, not dropped."""
    found = {p.relative_to(conformance.SUITE).as_posix() for p in conformance.models()}
    assert set(SUPPORTED) <= found and len(found) == 243
    record = conformance.check_model(conformance.SUITE / "samples/bpowers-hares_and_lynxes_modules/model.xmile")
    assert record["status"] == "ERROR" and "modules" in record["reason"] and "model.xmile:65" in record["reason"]


def test_the_suite_rule_rejects_what_it_should():
    ref = np.array([1.0, 100.0, 0.0, 5e-7, np.nan])
    assert conformance.matches(ref, ref * (1 + 0.9e-4)).all()
    assert not conformance.matches(ref, ref * (1 + 1.1e-4))[:2].any()  # just over 1e-4 relative
    assert conformance.matches(np.array([5e-7]), np.array([-9e-7])).all()  # both within 1e-6 of 0
    assert not conformance.matches(np.array([0.0]), np.array([2e-6])).any()


def test_printed_precision_slack_and_suite_faults():
    """A cell printed as 0.04523 matches anything that rounds to it (half a unit of its last digit);
    10.0 or 0.5 get no slack. Known faults of the suite's files are named beside the failure."""
    ref, slack = np.array([0.04523, 9.1e-05, 10.0]), np.array([5e-6, 5e-7, 0.0])
    assert conformance.matches(ref, np.array([0.0452252, 9.09732e-05, 10.0]), slack).all()
    assert not conformance.matches(ref, np.array([0.0452252, 9.09732e-05, 10.0])).all()  # without slack
    assert not conformance.matches(ref, np.array([0.045224, 9.16e-05, 10.01]), slack).any()
    times, columns, slacks = conformance.read_output(
        conformance.SUITE / "tests/lookups_with_expr/output.csv", with_slack=True)
    assert slacks["lookup expr"][5] == 5e-6 and columns["lookup expr"][5] == 0.04523
    assert "???" in conformance.suite_issue("tests/subscripted_flows/test_subscripted_flows.xmile")
    assert conformance.suite_issue("tests/subscripted_flows/test_subscripted_flows.mdl") == ""


def test_output_columns_map_to_imported_names():
    assert conformance.spreadjax_name("Stock A[Entry 1, Column 2]") == "stock_a__entry_1__column_2"
    assert conformance.spreadjax_name("Teacup Temperature") == "teacup_temperature"
    times, columns = conformance.read_output(conformance.SUITE / "tests/subscript_1d_arrays/output.csv")
    assert times[:3].tolist() == [0.0, 1.0, 2.0]  # old Mac line endings (CR only) read fine
    assert columns["Stock A[Entry 3]"][:3].tolist() == [0.0, 0.03, 0.06]


def test_the_oscillators_mismatch_is_the_suites_single_precision():
    """samples/simple_harmonic_oscillator fails at one point near a zero crossing: spreadjax is the
    float64 Euler sum (an independent numpy loop) to round-off, and the published output strays
    from that sum by more than its printed digits there (the suite's float32 levels)."""
    model = "samples/simple_harmonic_oscillator/simple_harmonic_oscillator.mdl"
    assert "single-precision" in conformance.suite_issue(model)
    from spreadjax.sdimport import import_model

    times, columns, slacks = conformance.read_output(conformance.output_file(conformance.SUITE / model), with_slack=True)
    result, _, _ = conformance.simulate_imported(import_model(conformance.SUITE / model), times, ["position", "speed"])
    x, v, path = 50.0, 0.0, []  # position'' = -(0.5 / 10) position, dt 0.01, saved every 0.1
    for k in range(5001):
        if k % 10 == 0:
            path.append((x, v))
        x, v = x + 0.01 * v, v + 0.01 * (-0.5 / 10 * x)
    path = np.array(path)
    # 5000 float64 steps in another order of operations: round-off ~1e-14
    np.testing.assert_allclose(result["position"], path[:, 0], rtol=0, atol=1e-11)
    np.testing.assert_allclose(result["speed"], path[:, 1], rtol=0, atol=1e-11)
    i = int(np.argmin(np.abs(times - 28.1)))
    # the published -0.00174626 (printed to 1e-8) is 1.6e-6 from the float64 sum
    assert abs(columns["speed"][i] - path[i, 1]) > 1e-6 > 100 * max(slacks["speed"][i], 5e-12)
