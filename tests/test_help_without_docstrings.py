"""The analysis verbs' help does not come from docstrings: `python -OO` strips them, and every
verb must still print its description and exit 0."""
import argparse
import subprocess
import sys

import pytest

from bench.cli import COMMANDS, build_parser

ANALYSIS_VERBS = [verb for verb, cmd in COMMANDS.items() if cmd.module.startswith("analysis.")]


def description_of(verb) -> str:
    parser = build_parser(verb)
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[verb].description


@pytest.mark.timeout(60)
@pytest.mark.parametrize("verb", ANALYSIS_VERBS)
def test_help_survives_python_OO(verb):
    words = description_of(verb).split()[:6]
    assert words, verb
    r = subprocess.run([sys.executable, "-OO", "-m", "bench.cli", verb, "--help"],
                       capture_output=True, text=True, timeout=50)
    assert r.returncode == 0, r.stderr
    assert " ".join(words) in " ".join(r.stdout.split()), (verb, words, r.stdout[:400])
