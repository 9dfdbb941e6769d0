"""``nbops install-kernel-ext [--remove] [--profile NAME | --config FILE]``: auto-load nbops in kernels."""
from __future__ import annotations


def add_cli(sub) -> None:
    p = sub.add_parser(
        "install-kernel-ext",
        help="Make every IPython kernel of this environment run `%%load_ext nbops` at start "
             "(--remove undoes it).",
        description="Appends a marked block to {sys.prefix}/etc/ipython/ipython_kernel_config.py (this environment "
                    "only) that adds nbops to InteractiveShellApp.extensions, keeping what is there; --remove takes "
                    "exactly that block out again.")
    p.add_argument("--remove", action="store_true", help="Undo a previous install-kernel-ext.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--profile", metavar="NAME",
                       help="Write into this IPython profile's kernel config instead (e.g. default; read by every "
                            "environment using the profile).")
    where.add_argument("--config", metavar="FILE", help="Write into this kernel config file instead.")
    p.set_defaults(func=_run)


def _run(a) -> int:
    from .kernelconfig import install, remove

    result = (remove if a.remove else install)(profile=a.profile, path=a.config)
    print(repr(result))
    return 0
