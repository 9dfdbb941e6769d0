"""%validate, %%track --validate and `nbops data contract` on a real MLflow store, read back with MlflowClient."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbops.cli import main as cli


def people(n, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n) + seed * n, "age": rng.integers(18, 90, n),
                         "income": rng.lognormal(10, 1, n), "city": rng.choice(["Oslo", "Lima", "Pune"], n)})


def runs_of(client, kind):
    exps = [e.experiment_id for e in client.search_experiments()]
    return [r for r in client.search_runs(exps) if r.data.tags.get("nbops.kind") == kind]


def test_a_data_version_carries_its_contract_and_validate_uses_it(ip, client):
    ip.user_ns.update(ref=people(3000, 1), same=people(3000, 2), bad=people(3000, 3).assign(city="Atlantis"))
    assert ip.run_cell("%dataversion ref --name people").success
    dv = runs_of(client, "dataversion")[0]
    assert dv.data.tags["nbops.contract.people"] == "contracts/people.yaml"
    assert ip.run_cell("%validate same --against people -o res").success
    assert ip.user_ns["res"].ok
    r = ip.run_cell("%validate bad --against people -o res2")
    assert r.success and not ip.user_ns["res2"].ok
    assert ip.user_ns["res2"].to_frame().set_index("column").loc["city", "count"] == 3000
    val = {r.data.tags["nbops.validation.status"]: r for r in runs_of(client, "validation")}
    assert set(val) == {"passed", "failed"}
    assert val["failed"].data.metrics["validation.bad.violations"] == 1
    assert val["failed"].data.tags["nbops.validation.bad"].startswith("failed")
    r = ip.run_cell("%validate bad --against people --fail")
    assert not r.success and type(r.error_in_exec).__name__ == "ValidationFailed"


def test_contract_cli_writes_yaml_a_hand_edit_is_accepted(ip, client, tmp_path, capsys):
    ip.user_ns.update(ref=people(2000, 4))
    assert ip.run_cell("%dataversion ref --name crm").success
    capsys.readouterr()
    assert cli(["data", "contract", "crm"]) == 0
    text = capsys.readouterr().out
    assert "nbops_categories" in text and "Oslo" in text
    path = tmp_path / "contract.yaml"
    path.write_text("\n".join(ln for ln in text.splitlines() if ln.strip() != "- Oslo"))
    batch = people(2000, 5)
    batch.to_csv(tmp_path / "batch.csv", index=False)
    assert cli(["validate", str(tmp_path / "batch.csv"), "--against", "crm", "--fail"]) == 0
    assert cli(["validate", str(tmp_path / "batch.csv"), "--against", str(path), "--fail"]) == 1
    assert "Oslo" in capsys.readouterr().out
    assert cli(["data", "contract", "no-such-name"]) == 2


def test_track_validate_stops_the_body_on_violations(ip, client):
    ip.user_ns.update(ref=people(2000, 6), batch=people(2000, 7))
    assert ip.run_cell("%dataversion ref --name base").success
    r = ip.run_cell("%%track -e v -n ok --data batch --validate base\ntrained = len(batch)")
    assert r.success and ip.user_ns["trained"] == 2000
    run = [x for x in client.search_runs([client.get_experiment_by_name("v").experiment_id])
           if x.info.run_name == "ok"][0]
    assert run.data.tags["nbops.validation.batch"] == "passed"
    assert run.data.tags["nbops.contract.batch"] == "contracts/batch.yaml"   # --data stores its own contract too
    ip.user_ns["batch"] = people(2000, 8).assign(age=-1)
    r = ip.run_cell("%%track -e v -n stopped --data batch --validate base\ntrained_again = 1")
    assert not r.success and type(r.error_in_exec).__name__ == "ValidationFailed"
    assert "trained_again" not in ip.user_ns                 # the body never ran
    stopped = [x for x in client.search_runs([client.get_experiment_by_name("v").experiment_id])
               if x.info.run_name == "stopped"][0]
    assert stopped.info.status == "FAILED"
    assert stopped.data.tags["nbops.validation.batch"].startswith("failed")


def test_run_reference_and_clear_errors(ip, client):
    ip.user_ns.update(train=people(1500, 9), nxt=people(1500, 10))
    assert ip.run_cell("%%track -e v -n t --data train\nx = 1").success
    rid = [x for x in client.search_runs([client.get_experiment_by_name("v").experiment_id])][0].info.run_id
    ip.user_ns["rid"] = rid
    assert ip.run_cell("%validate nxt --against run:{rid} --no-log -o r").success and ip.user_ns["r"].ok
    r = ip.run_cell("%validate nxt --against nothing-recorded")
    assert not r.success and "%dataversion" in str(r.error_in_exec)
    r = ip.run_cell("%validate nope --against run:{rid}")
    assert not r.success and "no variable named 'nope'" in str(r.error_in_exec)
    assert ip.run_cell("%validate nxt[['id', 'age', 'income', 'city']] --against run:{rid} --no-log -o r2").success
    assert ip.user_ns["r2"].ok
