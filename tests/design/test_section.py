"""The report's "What to do" section when design.json is absent or damaged: a note, never a crash."""

from __future__ import annotations

from spreadjax.report._design_section import design_section


def test_absent_design_says_how_to_get_one(tmp_path):
    text = design_section(tmp_path)
    assert "No programme design in this run" in text and "[design]" in text


def test_damaged_design_json_is_a_note(tmp_path):
    (tmp_path / "design.json").write_text('{"objective": {"name": "expected_adoption"}}')
    text = design_section(tmp_path)
    assert "design.json could not be read (KeyError" in text
    (tmp_path / "design.json").write_text("not json")
    assert "No programme design" in design_section(tmp_path)
