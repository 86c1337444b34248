"""Every command explains itself, and the shell completion answers (no portal needed)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [[], ["login"], ["logout"], ["whoami"], ["connect"], ["teams"], ["create", "vcluster"],
            ["list", "vclusters"], ["get", "vcluster"], ["delete", "vcluster"], ["retry", "vcluster"],
            ["quota", "get"], ["quota", "set"]]


def vcp(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vcp", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env})


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command):
    result = vcp(*command, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"Usage: vcp {' '.join(command)}".rstrip())


def test_the_top_level_help_documents_the_exit_codes():
    assert "Exit codes: 0 success; 1 any other error" in " ".join(vcp("--help").stdout.split())


def test_completion_offers_commands_and_output_formats():
    def complete(words: str) -> list[str]:
        result = vcp(_VCP_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1
                                                                                    + words.endswith(" ")))
        return result.stdout.split()

    assert complete("vcp cre") == ["create"]
    assert complete("vcp list vclusters -o ") == ["table", "json", "yaml"]
    assert "--install-completion" in vcp("--help").stdout
