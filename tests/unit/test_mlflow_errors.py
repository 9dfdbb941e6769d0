"""The one place that reads MLflow failures and quotes filter values, against a real SQLite store."""
import pytest
from mlflow.exceptions import MlflowException

from nbops.tracking.mlflow_errors import already_exists, not_found, quote


def test_classifies_what_the_store_raises(tmp_path):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    c.create_registered_model("m")
    with pytest.raises(MlflowException) as e:
        c.create_registered_model("m")
    assert already_exists(e.value) and not not_found(e.value)
    with pytest.raises(MlflowException) as e:
        c.get_registered_model("nope")
    assert not_found(e.value) and not already_exists(e.value)
    c.create_registered_model("it's")
    assert [m.name for m in c.search_registered_models(f"name = {quote(chr(105) + 't' + chr(39) + 's')}")] == ["it's"]
