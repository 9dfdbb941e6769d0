"""`nbops install-kernel-ext [--remove]` on real config files, and a real kernel that auto-loads nbops."""
from __future__ import annotations

import sys

import nbformat
import pytest

from nbops.cli import main
from nbops.errors import ConfigError
from nbops.server import kernelconfig as kc

USER_CONFIG = '''# my kernel settings
c.InteractiveShellApp.exec_lines = ["import math"]
c.InteractiveShellApp.extensions = ["autoreload"]
c.IPKernelApp.matplotlib = "inline"'''


@pytest.mark.parametrize("original", [USER_CONFIG + "\n", USER_CONFIG, USER_CONFIG.replace("\n", "\r\n") + "\r\n", ""])
def test_install_keeps_what_is_there_and_remove_restores_it_byte_for_byte(tmp_path, original, capsys):
    cfg = tmp_path / "ipython_kernel_config.py"
    cfg.write_bytes(original.encode())
    cfg.chmod(0o600)
    assert main(["install-kernel-ext", "--config", str(cfg)]) == 0
    text = cfg.read_bytes().decode()
    assert text.startswith(original)                               # nothing clobbered
    assert text.count(kc.LINE) == 1 and "installed" in capsys.readouterr().out
    compile(text, str(cfg), "exec")                                 # still valid Python
    assert cfg.stat().st_mode & 0o777 == 0o600
    assert main(["install-kernel-ext", "--config", str(cfg)]) == 0     # twice: still one block
    assert cfg.read_bytes().decode().count(kc.LINE) == 1
    assert "already installed" in capsys.readouterr().out
    assert main(["install-kernel-ext", "--remove", "--config", str(cfg)]) == 0
    assert cfg.read_bytes() == original.encode()
    assert main(["install-kernel-ext", "--remove", "--config", str(cfg)]) == 0
    assert "not installed" in capsys.readouterr().out
    assert cfg.read_bytes() == original.encode()


def test_the_block_appends_to_the_extensions_the_file_already_lists(tmp_path):
    from traitlets.config.loader import PyFileConfigLoader

    cfg = tmp_path / "ipython_kernel_config.py"
    cfg.write_text(USER_CONFIG + "\n")
    kc.install(path=cfg)
    loaded = PyFileConfigLoader(cfg.name, str(tmp_path)).load_config()
    assert list(loaded.InteractiveShellApp.extensions) == ["autoreload", "nbops"]
    assert loaded.InteractiveShellApp.exec_lines == ["import math"]


def test_default_target_is_this_environment_and_remove_deletes_what_install_created(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    assert main(["install-kernel-ext"]) == 0
    cfg = tmp_path / "env" / "etc" / "ipython" / "ipython_kernel_config.py"
    assert cfg.read_text().count(kc.LINE) == 1
    (tmp_path / "env" / "etc" / "other").mkdir()                     # something else moved into etc/
    assert main(["install-kernel-ext", "--remove"]) == 0
    assert not cfg.exists() and not cfg.parent.exists()
    assert sorted(p.name for p in (tmp_path / "env" / "etc").iterdir()) == ["other"]


def test_a_hand_edited_block_is_left_alone_with_a_message(tmp_path, capsys):
    cfg = tmp_path / "ipython_kernel_config.py"
    kc.install(path=cfg)
    cfg.write_text(cfg.read_text().replace(kc.END, "# someone removed the end marker"))
    before = cfg.read_text()
    assert main(["install-kernel-ext", "--remove", "--config", str(cfg)]) == 2
    assert "edited by hand" in capsys.readouterr().err
    assert cfg.read_text() == before


def test_bad_targets_are_refused(tmp_path, capsys):
    assert main(["install-kernel-ext", "--config", str(tmp_path / "x.json")]) == 2
    assert "not a Python config file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["install-kernel-ext", "--config", "a.py", "--profile", "default"])
    with pytest.raises(ConfigError, match="not a profile name"):
        kc.config_path(profile="../evil")


def test_warns_when_the_profile_assigns_the_extension_list(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    prof = tmp_path / "ipython" / "profile_default"
    prof.mkdir(parents=True)
    (prof / "ipython_config.py").write_text('c.InteractiveShellApp.extensions = ["autoreload"]\n')
    result = kc.install(path=tmp_path / "env" / "ipython_kernel_config.py")
    assert result.warnings and "takes precedence" in result.warnings[0]
    assert str(prof / "ipython_config.py") in result.warnings[0]


def _loaded_extensions(tmp_path, monkeypatch, name):
    """Run a one-cell notebook in a real kernel (papermill) and return the extensions it had loaded."""
    from nbops_testing import run_notebook, write_notebook

    nb = write_notebook(tmp_path / f"{name}.ipynb", [
        "ip = get_ipython()\n"
        "loaded = {e.rsplit('.', 1)[-1] for e in ip.extension_manager.loaded}\n"
        "print('autoreload' in loaded, 'nbops' in loaded, 'track' in ip.magics_manager.magics['cell'])"])
    out = run_notebook(nb, tmp_path, env={"IPYTHONDIR": str(tmp_path / "ipython")})
    cell = nbformat.read(str(out), as_version=4).cells[0]
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout").strip()


@pytest.mark.slow
def test_a_real_kernel_loads_nbops_after_install_and_not_after_remove(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    prof = tmp_path / "ipython" / "profile_default"
    prof.mkdir(parents=True)
    cfg = prof / "ipython_kernel_config.py"
    cfg.write_text('c.InteractiveShellApp.extensions.append("autoreload")\n')
    assert main(["install-kernel-ext", "--profile", "default"]) == 0
    assert cfg.read_text().count(kc.LINE) == 1
    out = _loaded_extensions(tmp_path, monkeypatch, "with")
    assert out == "True True True", out                              # both: nothing clobbered
    assert main(["install-kernel-ext", "--profile", "default", "--remove"]) == 0
    assert cfg.read_text() == 'c.InteractiveShellApp.extensions.append("autoreload")\n'
    out = _loaded_extensions(tmp_path, monkeypatch, "without")
    assert out == "True False False", out
