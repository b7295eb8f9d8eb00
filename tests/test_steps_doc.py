"""docs/steps.md is generated from the step definitions and must match them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from steps import docs

ROOT = Path(__file__).resolve().parent.parent


def test_steps_page_is_current() -> None:
    assert docs.PAGE.read_text(encoding="utf-8") == docs.render(), (
        "docs/steps.md is stale: run `tox -e docs` (python -m steps.docs)"
    )


def test_every_step_and_fault_word_is_on_the_page() -> None:
    page = docs.render()
    collected = docs.collect()
    assert len(collected) >= 20
    for step in collected:
        assert f"### {step.keyword.capitalize()} {step.text}" in page
        assert step.doc, f"step {step.text!r} has no docstring to document it"
    for word in docs.REGISTRY:
        assert f"| `{word}` |" in page


def test_check_mode_fails_on_a_stale_page(tmp_path: Path) -> None:
    stale = tmp_path / "steps.md"
    stale.write_text("# old\n", encoding="utf-8")
    code = (
        "import sys; from pathlib import Path; from steps import docs; "
        f"docs.PAGE = Path({str(stale)!r}); sys.exit(docs.main(['--check']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "is stale" in result.stderr
