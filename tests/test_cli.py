"""The console command lists only subcommands that exist and parse their own arguments."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from kvloop.cli import SUBCOMMANDS, main


def test_help_lists_every_subcommand(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_module_is_real(name):
    module = importlib.import_module(SUBCOMMANDS[name][0])
    assert callable(module.add_arguments) and callable(module.run)


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_help_runs_in_a_new_process(name):
    proc = subprocess.run([sys.executable, "-m", "kvloop.cli", name, "--help"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"kvloop {name}" in proc.stdout


def test_unknown_subcommand_fails():
    with pytest.raises(SystemExit):
        main(["no-such-command"])


def test_python_dash_m_kvloop_is_the_console_command():
    proc = subprocess.run([sys.executable, "-m", "kvloop", "--help"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: kvloop ")
    for name in SUBCOMMANDS:
        assert name in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "kvloop", "no-such-command"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "invalid choice: 'no-such-command'" in proc.stderr


def test_a_spawned_worker_importing_kvloop_main_does_not_run_the_command():
    # multiprocessing's spawn (the OCR pool) re-imports the main module as __mp_main__.
    import runpy

    assert callable(runpy.run_module("kvloop", run_name="__mp_main__")["main"])
