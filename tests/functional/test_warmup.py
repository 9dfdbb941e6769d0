"""The import warm-up after %load_ext: it runs after the loading cell, waits while a cell runs, and is undone by
%unload_ext (in a fresh interpreter each, so earlier imports cannot hide anything)."""
import subprocess
import sys
import textwrap

SHELL = textwrap.dedent("""
    import os, sys, threading
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core import events
    ip = InteractiveShell.instance()
    def live():
        return [t for t in threading.enumerate() if t.name == "nbops-warmup"]
""")


def _run(code: str, env_extra=None) -> list[str]:
    import os

    env = {**os.environ, **(env_extra or {})}
    out = subprocess.run([sys.executable, "-c", SHELL + textwrap.dedent(code)], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()


def test_mlflow_is_imported_after_the_loading_cell_not_during_it():
    out = _run("""
        ip.run_cell("%load_ext nbops")
        print("mlflow" in sys.modules)           # the loading cell itself stays instant
        for t in live():
            t.join()
        print("mlflow" in sys.modules, len(ip.events.callbacks["post_run_cell"]))
        print(sys.modules["nbops.tracking.redact"]._PLUGINS is not None)   # the redactor's rules are loaded too
    """)
    assert out[0] == "False"
    assert out[1] == "True"
    assert out[3] == "True"


def test_the_warmup_waits_while_a_cell_runs():
    out = _run("""
        ip.run_line_magic("load_ext", "nbops")    # as inside a running cell: no post_run_cell yet
        from nbops import warmup
        w = warmup._ACTIVE[id(ip)]
        w.waiting.wait()                          # held back before its first module
        print("mlflow" in sys.modules, w.thread.is_alive())
        w.post()                                  # the cell ends: it goes on
        w.thread.join()
        print("mlflow" in sys.modules, id(ip) in warmup._ACTIVE)
    """)
    assert out == ["False", "True", "True", "False"]


def test_switched_off_and_unloaded_leave_no_hooks():
    out = _run("""
        before = {k: list(v) for k, v in ip.events.callbacks.items()}
        ip.run_cell("%load_ext nbops")
        ip.run_cell("%unload_ext nbops")
        print(all(ip.events.callbacks[k] == v for k, v in before.items()))
        ip.run_cell("x = 1")
        print("mlflow" in sys.modules)
    """, {"NBOPS_WARM_IMPORTS": "0"})
    assert out == ["True", "False"]


def test_a_cell_that_starts_during_an_import_waits_for_it(tmp_path):
    """Two threads importing at once can hand one a partially initialised module (Python breaks the lock cycle
    that way): the cell's pre_run_cell waits for the warm-up's import in flight, and no import starts after it."""
    (tmp_path / "slowmod.py").write_text(textwrap.dedent("""
        import builtins
        builtins.slowmod_started.set()
        builtins.slowmod_release.wait()
        builtins.slowmod_done = True
    """))
    out = _run(f"""
        import builtins
        sys.path.insert(0, {str(tmp_path)!r})
        builtins.slowmod_started, builtins.slowmod_release = threading.Event(), threading.Event()
        from nbops import warmup
        warmup.MODULES = ("slowmod", "json")
        ip.run_line_magic("load_ext", "nbops")
        w = warmup._ACTIVE[id(ip)]
        w.post()                                    # the loading cell ended: the thread imports slowmod
        builtins.slowmod_started.wait()
        seen = []
        cell = threading.Thread(target=lambda: (w.pre(), seen.append(getattr(builtins, "slowmod_done", False))))
        cell.start()                                # a cell starts while slowmod is half imported
        builtins.slowmod_release.set()
        cell.join()
        w.waiting.wait()                            # then held back before "json" until the cell ends
        print(seen[0], "json" in sys.modules and sys.modules["json"] is not None)
        w.post()
        w.thread.join()
    """, {"NBOPS_WARM_IMPORTS": "1"})
    assert out[0] == "True"  # the cell's code ran only after the import in flight had finished


def test_the_warmup_never_imports_beside_the_background_writer(tmp_path):
    """The background writer pushes a run holding importhook.BACKGROUND_IMPORTS; the warm-up imports only under
    it, so the two never import at once (they met in mlflow.entities: a tracked run stayed in the spool)."""
    (tmp_path / "slowmod.py").write_text("import builtins\nbuiltins.slowmod_done = True\n")
    out = _run(f"""
        import builtins
        sys.path.insert(0, {str(tmp_path)!r})
        from nbops import importhook, warmup
        warmup.MODULES = ("slowmod",)
        importhook.BACKGROUND_IMPORTS.acquire()     # a push in progress
        ip.run_line_magic("load_ext", "nbops")
        w = warmup._ACTIVE[id(ip)]
        w.post()
        print(getattr(builtins, "slowmod_done", False))   # waits for the lock: slowmod not imported yet
        importhook.BACKGROUND_IMPORTS.release()     # the push ends
        w.thread.join()
        print(getattr(builtins, "slowmod_done", False))
    """, {"NBOPS_WARM_IMPORTS": "1"})
    assert out == ["False", "True"]
