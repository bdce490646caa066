"""The README's test command is the one CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / '.ci' / 'run').read_text().splitlines()
    command = ci[ci.index('# README test command (tests/test_readme.py checks that the two stay the same):') + 1]
    assert command in (ROOT / 'README.md').read_text()
