"""The progress bar appears on a terminal, and nowhere else."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import run_with_tty_stderr


def test_progress_on_terminal_only(tmp_path):
    src = tmp_path / "d.raw"
    with open(src, "wb") as f:
        f.write(os.urandom(8 << 20))
    store = str(tmp_path / "s")
    rc, out, err = run_with_tty_stderr(["--store", store, "store", "ingest", str(src)])
    assert rc == 0
    assert "ingest [" in err and "100.0%" in err and "8.0 MiB/8.0 MiB" in err and "/s" in err
    # explicit -o json on a terminal: quiet
    rc, out, err = run_with_tty_stderr(["--store", store, "-o", "json", "store", "ingest", str(src)])
    assert rc == 0 and err == ""
    # not a terminal: quiet
    p = subprocess.run(
        [sys.executable, "-m", "imagestore.cli.main", "--store", store, "store", "ingest", str(src)],
        capture_output=True, text=True,
    )
    assert p.returncode == 0 and p.stderr == ""
    digest = __import__("json").loads(p.stdout)["digest"]
    rc, out, err = run_with_tty_stderr(
        ["--store", store, "store", "materialize", digest, "--path", str(tmp_path / "o.raw")]
    )
    assert rc == 0 and "materialize [" in err and "100.0%" in err
