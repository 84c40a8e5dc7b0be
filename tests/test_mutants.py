"""The hand-written semantic mutants (``tests/mutants``, see MUTATION.md)
stay plantable: a patch that no longer applies measures nothing, and the
runner only finds out when it is next run."""

import shutil
import subprocess
from pathlib import Path

import pytest

MUTANTS = Path(__file__).parent / "mutants"
ROOT = Path(__file__).parent.parent


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git apply")
@pytest.mark.parametrize(
    "patch", sorted(MUTANTS.glob("*.patch")), ids=lambda path: path.stem
)
def test_semantic_mutant_applies_to_the_code(patch):
    result = subprocess.run(
        ["git", "apply", "--check", str(patch)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        f"{patch.name} no longer applies; rewrite it against the current "
        f"module (same mutation):\n{result.stderr}"
    )
