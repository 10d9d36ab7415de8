"""The command line router."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tinlab.__main__ import main


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "tinlab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("equivalence", "complexity"):
        assert command in out.stdout


def test_unknown_command_fails_with_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train-everything"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
