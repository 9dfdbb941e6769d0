"""The LLM showcase notebook (notebooks/llm.ipynb), executed for real with `nbops run` against the local llama.cpp
server, on an embedded store of its own; what it recorded is read back with MlflowClient."""
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
NBOPS = str(Path(sys.executable).with_name("nbops"))


@pytest.mark.llm
def test_llm_showcase(tmp_path, llm_server):
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    shutil.copy(ROOT / "notebooks" / "llm.ipynb", root / "llm.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_", "OPENAI_"))}
    key = "sk-test-" + secrets.token_hex(16)
    r = subprocess.run([NBOPS, "run", "llm.ipynb", "-o", "llm.out.ipynb", "-p", "base_url", llm_server,
                        "-p", "api_key", key], cwd=root, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    c = MlflowClient(f"sqlite:///{root / '.nbops' / 'mlflow.db'}")
    assert [int(p.version) for p in c.search_prompt_versions("qa")] == [2, 1]
    exp = c.get_experiment_by_name("llm-showcase")
    runs = c.search_runs([exp.experiment_id])
    ask = [x for x in runs if x.info.run_name == "ask"][0]
    assert ask.data.tags["nbops.prompts"] == "qa/2"
    evals = {x.data.tags.get("nbops.evaluation.prompt"): x for x in runs if x.data.tags.get("nbops.kind") == "evaluation"}
    assert set(evals) == {"qa/1", "qa/2"}
    for e in evals.values():
        assert e.data.metrics["llm_calls"] == 12 and {"eval_contains", "eval_grounded", "eval_max_chars"} <= \
            set(e.data.metrics)
    production = c.get_prompt_version_by_alias("qa", "production")
    m = {v: evals[f"qa/{v}"].data.metrics for v in (1, 2)}
    best = max((1, 2), key=lambda v: (m[v]["eval_contains"], m[v]["eval_grounded"], v))
    assert int(production.version) == best
    assert production.tags["nbops.promote.status"] == "promoted"
    for p in root.rglob("*"):                                          # the key is stored nowhere
        if p.is_file():
            assert key.encode() not in p.read_bytes(), p
    nb = json.loads((root / "llm.out.ipynb").read_text())
    text = "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for cell in nb["cells"] for o in cell.get("outputs", []))
    assert "Not promoted" in text and "Promoted prompt qa" in text
    stored = next(root.glob(".nbops/artifacts/**/notebook/llm.out.ipynb")).read_text()  # masked, not garbled
    assert "eval_contains" in stored and "eval_grounded" in stored
