"""Running the `pampam` command-line client (cli/) as a pipeline would: a separate process, its
configuration in PAMPAM_URL and PAMPAM_TOKEN, its exit code and output."""

import os
import subprocess
import sys
from pathlib import Path

CLI_SOURCE = Path(__file__).resolve().parents[2] / "cli"


def environment(url: str, token: str, **extra) -> dict:
    # The portal's own settings must not leak into what stands for another machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAMPAM_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update(PAMPAM_URL=url, PAMPAM_TOKEN=token, PYTHONPATH=str(CLI_SOURCE), PYTHONUNBUFFERED="1", **extra)
    return env


def command(*args) -> list[str]:
    return [sys.executable, "-m", "pampam_cli", *args]


def run(url: str, token: str, *args, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args), env=environment(url, token), capture_output=True, text=True, timeout=timeout, check=False
    )


def start(url: str, token: str, *args) -> subprocess.Popen:
    """Start `pampam …`; its stderr goes to its stdout, so one buffered reader sees every line."""
    return subprocess.Popen(
        command(*args), env=environment(url, token), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def output_of(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    """The rest of its output and its exit code. Read through the same buffered reader as any
    readline() before (communicate() would read the pipe underneath and lose buffered lines);
    the command's own --timeout bounds the wait."""
    out = process.stdout.read()
    return process.wait(timeout=timeout), out


def shim(directory: Path) -> Path:
    """A `pampam` executable in `directory`, as `pip install ./cli` would put on PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "pampam"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{CLI_SOURCE}" exec "{sys.executable}" -m pampam_cli "$@"\n')
    script.chmod(0o755)
    return directory
