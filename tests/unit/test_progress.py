"""Progress bars appear where a person watches, never in logs: a script whose stderr is a pipe (cron, CI) gets no
bar, as papermill-run notebooks get none (tests/integration/test_notebooks.py reads their saved outputs)."""
import subprocess
import sys

SCRIPT = """
from nbops.display.progress import tqdm
for _ in tqdm(range(3), delay=0, desc="long work"):
    pass
print("done")
"""


def test_no_bar_when_stderr_is_not_a_terminal():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr
    assert "long work" not in r.stderr and "%|" not in r.stderr, r.stderr
