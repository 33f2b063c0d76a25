"""``distill run ... --nproc K``: the torchrun command line it builds (the same arguments less --nproc, the thread
count per process), its refusals, and that importing the CLI does not import torch's launcher."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from distill_core.cli import _usable_cores, main, torchrun_command


def test_command_is_torchrun_with_the_same_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    argv = ["-v", "run", "dm", "--nproc", "2", "--dataset", "digits", "--np=2", "--ipc", "1", "--set", "steps=3"]
    command, env = torchrun_command(argv, 2)
    assert command[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert command[5:] == ["-m", "distill_core.cli", "-v", "run", "dm", "--dataset", "digits", "--ipc", "1", "--set",
                           "steps=3"]
    assert env["OMP_NUM_THREADS"] == str(max(1, _usable_cores() // 2))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice is kept
    assert torchrun_command(argv, 2)[1]["OMP_NUM_THREADS"] == "3"


def test_nproc_below_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "dm", "--dataset", "digits", "--ipc", "1", "--nproc", "0"])
    assert exc.value.code == 2
    assert "--nproc: must be >= 1, got 0" in capsys.readouterr().err


def test_nproc_under_torchrun_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets for its workers: no second launch from inside
    assert main(["run", "dm", "--dataset", "digits", "--ipc", "1", "--nproc", "2"]) == 2
    assert "--nproc starts torchrun itself" in capsys.readouterr().err


def test_cli_import_does_not_import_the_launcher() -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import distill_core.cli"], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "distill_core.cli" in imported
    assert not {name for name in imported if name.startswith(("torch.distributed.run", "torch.distributed.elastic"))}
