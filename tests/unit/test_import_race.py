"""nbops asks whether the user could hold a pandas / polars object by looking in ``sys.modules`` (it never imports
them to ask). A module another thread is still importing is there half-made -- the Lab test met
"partially initialized module 'polars' has no attribute 'Series'" when a background import of polars overlapped
a tracked cell. Such a module counts as not imported."""
import subprocess
import sys
import textwrap


def test_a_module_being_imported_by_another_thread_is_not_used_half_made(tmp_path):
    # a stand-in for a slow third-party import: "polars" that stays half-initialised until told to finish
    (tmp_path / "polars.py").write_text(textwrap.dedent("""
        import threading
        started, finish = threading.Event(), threading.Event()
        import builtins
        builtins._polars_started, builtins._polars_finish = started, finish
        started.set()
        finish.wait()
        class DataFrame: ...
        class Series: ...
    """))
    script = textwrap.dedent("""
        import builtins, threading, time
        import nbops
        t = threading.Thread(target=__import__, args=("polars",))
        t.start()
        while not hasattr(builtins, "_polars_started"):
            time.sleep(0.01)
        builtins._polars_started.wait()
        try:   # while "polars" is half-imported by the other thread: a list is no frame (one line says so)
            nbops.fingerprint([1, 2, 3])
        except nbops.NbopsError as e:
            print("said:", e)
        finally:
            builtins._polars_finish.set()
            t.join()
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env={**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{__import__('os').environ.get('PYTHONPATH', '')}"})
    assert r.returncode == 0 and "said: Cannot version a builtins.list" in r.stdout, r.stderr[-1500:]
