"""Auto-load nbops in every IPython kernel of an environment: one marked block in a kernel config file.

Where: by default ``{sys.prefix}/etc/ipython/ipython_kernel_config.py`` -- the *environment's* kernel config,
which IPython reads for every kernel started from this environment (after the profile, which takes
precedence) and which no other environment sees, so a kernel elsewhere never tries to load an nbops it does
not have. ``profile="default"`` writes into that IPython profile instead (``$IPYTHONDIR/profile_default``),
which every environment using that profile reads; ``path=`` names any file.

What: an appended block, never an edit of what is there::

    # >>> nbops auto-load >>>
    # nbops-install: created-file=no, created-dirs=, added-newline=no
    c.InteractiveShellApp.extensions.append("nbops")
    # <<< nbops auto-load <<<

``append`` keeps the extensions already configured in the file or in lower-priority files. The second line
records what the install changed besides the block, so :func:`remove` restores the file byte for byte (and
deletes the file and folders it created). One limit, from IPython's config merging: a higher-priority file
(the profile's ``ipython_config.py`` / ``ipython_kernel_config.py``) that *assigns*
``c.InteractiveShellApp.extensions = [...]`` replaces the list; :func:`install` warns when it sees that.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger("nbops")

FILENAME = "ipython_kernel_config.py"
BEGIN = "# >>> nbops auto-load >>>"
END = "# <<< nbops auto-load <<<"
LINE = 'c.InteractiveShellApp.extensions.append("nbops")'
_FLAGS = re.compile(r"^# nbops-install: created-file=(yes|no), created-dirs=(.*), added-newline=(yes|no)$")
_ASSIGN = re.compile(r"^\s*c\.(InteractiveShellApp|IPKernelApp)\.extensions\s*=(?!=)", re.M)


@dataclass
class KernelExtResult:
    action: str                 # "installed", "already installed", "removed", "not installed"
    path: Path
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        what = {"installed": "kernels that read this file now run `%load_ext nbops` at start",
                "already installed": "nothing to do",
                "removed": "kernels no longer load nbops at start",
                "not installed": "nothing to remove"}[self.action]
        lines = [f"nbops kernel extension {self.action}: {self.path} ({what})"]
        return "\n".join(lines + [f"warning: {w}" for w in self.warnings])


def config_path(profile: str | None = None, path: str | os.PathLike | None = None) -> Path:
    """The kernel config file to edit: ``path``; else the ``profile``'s; else the environment's."""
    if path is not None and profile is not None:
        raise ConfigError("Give either a config file or a profile, not both.")
    if path is not None:
        p = Path(path).expanduser()
        if p.suffix != ".py":
            raise ConfigError(f"{p} is not a Python config file: nbops edits ipython_kernel_config.py files "
                              "(name one ending in .py).")
        return p.absolute()
    if profile is not None:
        from IPython.paths import get_ipython_dir
        if not re.fullmatch(r"[\w.-]+", profile):
            raise ConfigError(f"{profile!r} is not a profile name: use letters, digits, '_', '-' or '.'.")
        return Path(get_ipython_dir()) / f"profile_{profile}" / FILENAME
    return Path(sys.prefix) / "etc" / "ipython" / FILENAME


def _read(p: Path) -> str:
    try:
        if not p.exists():
            return ""
        with open(p, encoding="utf-8", newline="") as f:  # keep \r\n as it is: remove() restores bytes
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {p}: {exc}. Fix its permissions or encoding, or pass another file "
                          "with --config.") from exc


def _write(p: Path, text: str) -> None:
    """Atomic replace, keeping the file's permissions."""
    mode = p.stat().st_mode & 0o7777 if p.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _find_block(text: str, p: Path) -> tuple[int, int, re.Match] | None:
    lines = text.splitlines(keepends=True)
    starts = [i for i, ln in enumerate(lines) if ln.rstrip("\r\n") == BEGIN]
    if not starts:
        return None
    if len(starts) > 1:
        raise ConfigError(f"{p} holds {len(starts)} nbops auto-load blocks: delete all but one by hand (the lines "
                          f"from {BEGIN!r} to {END!r}), then run the command again.")
    i = starts[0]
    ends = [j for j in range(i + 1, len(lines)) if lines[j].rstrip("\r\n") == END]
    flags = _FLAGS.match(lines[i + 1].rstrip("\r\n")) if i + 1 < len(lines) else None
    if not ends or not flags:
        raise ConfigError(f"The nbops auto-load block in {p} (line {i + 1}) was edited by hand and cannot be removed "
                          f"safely: delete the lines from {BEGIN!r} to {END!r} yourself.")
    return sum(map(len, lines[:i])), sum(map(len, lines[:ends[0] + 1])), flags


def _overriding_files(target: Path) -> list[str]:
    """Higher-priority config files that assign the extensions list (which would drop our append)."""
    from IPython.paths import get_ipython_dir

    prof = Path(get_ipython_dir()) / "profile_default"
    out = []
    for name in ("ipython_config.py", FILENAME):
        f = prof / name
        if f.resolve() == target.resolve() or not f.exists():
            continue
        try:
            if _ASSIGN.search(f.read_text(encoding="utf-8", errors="replace")):
                out.append(str(f))
        except OSError:
            continue
    json_twin = target.with_suffix(".json")
    if json_twin.exists() and "extensions" in json_twin.read_text(encoding="utf-8", errors="replace"):
        out.append(str(json_twin))
    return out


def install(profile: str | None = None, path: str | os.PathLike | None = None) -> KernelExtResult:
    """Add the auto-load block to the kernel config (idempotent)."""
    p = config_path(profile, path)
    text = _read(p)
    if _find_block(text, p) is not None:
        return KernelExtResult("already installed", p)
    created_dirs = []
    d = p.parent
    while not d.exists():
        created_dirs.append(d)
        d = d.parent
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create {p.parent}: {exc}. Run with permission to write there, or use "
                          "--profile / --config to pick a file you own.") from exc
    newline = bool(text) and not text.endswith("\n")
    eol = "\r\n" if "\r\n" in text else "\n"
    flags = (f"# nbops-install: created-file={'no' if p.exists() else 'yes'}, "
             f"created-dirs={os.pathsep.join(str(x) for x in reversed(created_dirs))}, "
             f"added-newline={'yes' if newline else 'no'}")
    block = (eol if newline else "") + eol.join([BEGIN, flags, LINE, END]) + eol
    try:
        _write(p, text + block)
    except OSError as exc:
        raise ConfigError(f"Cannot write {p}: {exc}. Run with permission to write there, or use --profile / "
                          "--config to pick a file you own.") from exc
    warnings = [f"{f} assigns InteractiveShellApp.extensions and takes precedence over {p}: add 'nbops' to the "
                f"list there, or install with --profile default." for f in _overriding_files(p)]
    for w in warnings:
        log.warning("nbops: %s", w)
    return KernelExtResult("installed", p, warnings)


def remove(profile: str | None = None, path: str | os.PathLike | None = None) -> KernelExtResult:
    """Take the block out again, restoring the file (and folders) exactly as :func:`install` found them."""
    p = config_path(profile, path)
    text = _read(p)
    found = _find_block(text, p)
    if found is None:
        return KernelExtResult("not installed", p)
    start, end, flags = found
    created_file, created_dirs, added_newline = flags.group(1) == "yes", flags.group(2), flags.group(3) == "yes"
    if added_newline:
        for eol in ("\r\n", "\n"):
            if text[:start].endswith(eol):
                start -= len(eol)
                break
    rest = text[:start] + text[end:]
    try:
        if created_file and not rest:
            p.unlink()
            for d in reversed([Path(x) for x in created_dirs.split(os.pathsep) if x]):
                try:
                    d.rmdir()  # only if empty: something else may have moved in since
                except OSError:
                    break
        else:
            _write(p, rest)
    except OSError as exc:
        raise ConfigError(f"Cannot write {p}: {exc}. Run with permission to write there.") from exc
    return KernelExtResult("removed", p)
