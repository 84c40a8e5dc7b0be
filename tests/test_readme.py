"""The README's usage example runs as written."""

import re
import runpy
from pathlib import Path

import pytest
import sklearn
from sklearn.utils.fixes import parse_version

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.skipif(
    parse_version(sklearn.__version__) < parse_version("1.8"),
    reason="the example compares with temperature scaling (sklearn >= 1.8)",
)
def test_readme_example_runs(tmp_path, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    runpy.run_path(str(script))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8  # 4 models x (test, shifted)
    smallest = {line[:25]: float(line.split("smallest p")[1]) for line in lines}
    # bounded by n: no probability below about 1/(9 n) for n = 1347
    assert smallest["gaussian softmax shifted "] > 1e-5
    assert smallest["sigmoid          shifted "] < 1e-5
