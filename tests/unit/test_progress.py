"""Progress bars appear where a person watches: a caller that did not ask (progress=None) gets a bar in a terminal,
none in a log (a script whose stderr is a file or a pipe: cron, CI); progress=True always shows one, False never.
Real processes with real stderr; saved notebook outputs are in tests/functional/test_progress_kernel.py."""
import os
import subprocess
import sys
import termios

UNASKED = """
from nbops.display.progress import tqdm
for _ in tqdm(range(3), delay=0, desc="unasked work"):
    pass
print("done")
"""

FINGERPRINT = """
import numpy as np, pandas as pd
import nbops
df = pd.DataFrame({"x": np.arange(100_000, dtype=float)})
nbops.fingerprint(df, "asked", progress={progress})
print("done")
"""


def _to_file(code, tmp_path):
    log = tmp_path / "job.log"
    with log.open("w") as err:
        r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=err, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "done", log.read_text()
    return log.read_text()


def test_unasked_bar_stays_out_of_a_log_file_and_a_pipe(tmp_path):
    assert "unasked work" not in _to_file(UNASKED, tmp_path)
    r = subprocess.run([sys.executable, "-c", UNASKED], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr
    assert "unasked work" not in r.stderr and "%|" not in r.stderr, r.stderr


def test_asked_bar_shows_in_a_log_file_and_false_never(tmp_path):
    assert "fingerprint asked" in _to_file(FINGERPRINT.replace("{progress}", "True"), tmp_path)
    assert "fingerprint asked" not in _to_file(FINGERPRINT.replace("{progress}", "False"), tmp_path)


def test_unasked_bar_shows_in_a_terminal():
    main, child = os.openpty()   # stderr is a real terminal, as in an interactive shell
    termios.tcsetwinsize(child, (24, 100))  # a new pty is 0 columns wide: a bar would be cut to nothing
    try:
        r = subprocess.run([sys.executable, "-c", UNASKED], stdout=subprocess.PIPE, stderr=child, text=True)
    finally:
        os.close(child)
    seen = b""
    try:
        while chunk := os.read(main, 65536):
            seen += chunk
    except OSError:  # EIO: the terminal's other end is closed, everything was read
        pass
    finally:
        os.close(main)
    assert r.returncode == 0 and r.stdout.strip() == "done", seen
    assert b"unasked work" in seen and b"3/3" in seen, seen
