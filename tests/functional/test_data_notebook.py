"""Data versions in a real kernel (papermill): %%track --data --snapshot, a file read inside a tracked cell,
%dataversion, then everything read back from the store."""
import json

import nbformat
import pandas as pd
import pytest

from nbops_testing import run_notebook, write_notebook


@pytest.mark.slow
def test_notebook_versions_data_end_to_end(store, client, tmp_path):
    import nbops
    from nbops.data import history, load_snapshot

    src = tmp_path / "hour.csv"
    pd.DataFrame({"hr": range(24), "cnt": [i * 3 for i in range(24)]}).to_csv(src, index=False)
    nb = write_notebook(tmp_path / "versions.ipynb", [
        "%load_ext nbops\nimport pandas as pd",
        "%%track -e nbexp -n fit --data train --snapshot\n"
        "raw = pd.read_csv('hour.csv')\ntrain = raw[raw.hr < 20].reset_index(drop=True)\nrmse = 1.5",
        "%dataversion train --name hours",
        "train.loc[0, 'cnt'] = -1\n%dataversion train --name hours",
    ])
    out = run_notebook(nb, tmp_path)
    cells = nbformat.read(str(out), as_version=4).cells
    texts = ["".join(o.get("text", "") + json.dumps(o.get("data", {})) for o in c.get("outputs", [])) for c in cells]
    assert "first version under this name" in texts[2] and "seen before in 1 run(s)" in texts[2]
    assert "content changed in: cnt" in texts[3] and "+1 / -1 rows" in texts[3]

    exp = client.get_experiment_by_name("nbexp")
    fit = client.search_runs([exp.experiment_id], "attributes.run_name = 'fit'")[0]
    got = {di.dataset.name: di.dataset for di in fit.inputs.dataset_inputs}
    assert set(got) == {"train", "hour.csv"}  # the --data frame and the file the cell read
    assert json.loads(got["hour.csv"].source)["path"] == str(src)
    train = load_snapshot(fit.info.run_id, "train")
    assert len(train) == 20 and nbops.fingerprint(train).digest == got["train"].digest
    hist = history("hours")
    assert len(hist) == 2 and hist[1]["digest"] == got["train"].digest and hist[0]["kind"] == "dataversion"
