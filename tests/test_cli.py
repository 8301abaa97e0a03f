"""Each entry point as the shell starts it, in a new interpreter: a mistake on the command line is one line on
stderr and exit status 2, never a traceback. (Everything else runs the entry points in the test process:
helpers.run_entry; tests/test_infer_cli.py checks that the two agree.)"""

from pathlib import Path

import pytest

from tests.helpers import run_cli


@pytest.mark.parametrize(
    ("entry", "argument", "message"),
    [
        ("train", "steps=many", "steps: Value 'many' of type 'str' could not be converted to Integer"),
        ("infer", "strength=lots", "strength: Value 'lots' of type 'str' could not be converted to Float"),
        ("evaluate", "image_size=big", "image_size: Value 'big' of type 'str' could not be converted to Integer"),
        ("optimize", "iterations=lots", "iterations: Value 'lots' of type 'str' could not be converted to Integer"),
        ("precompute", "batch_size=many", "batch_size: Value 'many' of type 'str' could not be converted to Integer"),
        ("export", "opset=new", "opset: Value 'new' of type 'str' could not be converted to Integer"),
        ("score", "size=large", "size: Value 'large' of type 'str' could not be converted to Integer"),
        ("get_weights", "--bogus", "python -m stylenet.get_weights: error: unrecognized arguments: --bogus"),
    ],
)
def test_a_mistake_on_the_command_line_is_one_line_and_exit_status_2(
    entry: str, argument: str, message: str, tmp_path: Path
) -> None:
    result = run_cli(entry, argument, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == (message if entry == "get_weights" else f"error: {message}")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no run folder, nothing written
