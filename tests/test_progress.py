"""The progress bar appears on a terminal, and nowhere else."""

from __future__ import annotations

import os
import select
import subprocess
import sys


def run_with_tty_stderr(args: list[str]) -> tuple[int, str, str]:
    master, slave = os.openpty()
    p = subprocess.Popen(
        [sys.executable, "-m", "imagestore.cli.main", *args],
        stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks = []
    while True:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif p.poll() is not None:
            break
    out = p.stdout.read().decode()
    p.wait()
    os.close(master)
    return p.returncode, out, b"".join(chunks).decode(errors="replace")


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
