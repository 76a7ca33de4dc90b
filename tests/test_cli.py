"""The command line entry point."""

from __future__ import annotations

import subprocess
import sys


def test_help_lists_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
