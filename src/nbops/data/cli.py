"""``nbops data``: history of a dataset name, runs that used a digest, the version of a file or folder."""
from __future__ import annotations


def add_cli(sub) -> None:
    p = sub.add_parser("data", help="Data versions: history NAME, runs DIGEST, fingerprint PATH.")
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    h = dsub.add_parser("history", help="Every version recorded under a dataset name, newest first.")
    h.add_argument("name", help="Dataset name (the --data variable, the %%dataversion --name, or a file name).")
    from ..argtypes import number

    h.add_argument("-n", type=number(int, 1), default=50, help="At most this many records (1 or more; default 50).")
    h.set_defaults(func=_history)
    r = dsub.add_parser("runs", help="Runs that logged a dataset with this digest (32 hex digits, or a prefix).")
    r.add_argument("digest")
    r.set_defaults(func=_runs)
    f = dsub.add_parser("fingerprint", help="Version a file or folder: xxh3-128 digest, size, profile.")
    f.add_argument("path")
    f.set_defaults(func=_fingerprint)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _print_lineage(lin, n: int | None = None) -> int:
    if not len(lin):
        print(repr(lin))
        return 1
    if n is not None:
        lin.rows = lin.rows[:n]
    print(repr(lin))
    return 0


def _history(a) -> int:
    from .lineage import history

    return _print_lineage(history(a.name), a.n)


def _runs(a) -> int:
    from .lineage import runs_using

    return _print_lineage(runs_using(a.digest))


def _fingerprint(a) -> int:
    from .fingerprinting import fingerprint

    print(repr(fingerprint(a.path)))
    return 0
