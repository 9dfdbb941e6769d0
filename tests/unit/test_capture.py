"""The capture rules of %%track, on source text and namespaces (no kernel, no store)."""
import subprocess

import numpy as np
import pytest

from nbops.tracking import capture


def test_auto_params_are_literal_assignments():
    src = "lr = 0.1\nn_trees = 7\nname = 'rf'\nneg = -3\nlayers = [64, 32]\nx = lr * 2\n_private = 1\n"
    ns = {"lr": 0.1, "n_trees": 7, "name": "rf", "neg": -3, "layers": [64, 32], "x": 0.2, "_private": 1}
    assert capture.auto_params(src, ns) == {"lr": 0.1, "n_trees": 7, "name": "rf", "neg": -3, "layers": [64, 32]}


def test_value_after_the_cell_wins_and_vanished_names_are_skipped():
    src = "epochs = 3\nepochs = 4\ngone = 1\ndel gone\n"
    assert capture.auto_params(src, {"epochs": 4}) == {"epochs": 4}


@pytest.mark.parametrize("src", [
    "x = 0\nfor i in range(3):\n    x += i\n",          # the README tour's accumulator
    "total = 0\ntotal += 5\n",                         # augmented at top level
    "n = 1\nn = n * 2\n",                             # reassigned from itself
    "i = 0\nwhile i < 3:\n    i = i + 1\n",            # a while loop's counter
    "k = 0\nfor k in range(3):\n    pass\n",            # a loop variable
])
def test_accumulators_are_not_params(src):
    name = src.split(" ", 1)[0]
    assert capture.auto_params(src, {name: 3, "i": 2, "x": 3}) == {}
    assert capture.auto_params(src + "lr = 0.1\n", {name: 3, "i": 2, "x": 3, "lr": 0.1}) == {"lr": 0.1}


def test_auto_metrics_need_a_metric_name_and_a_real_number():
    src = ("val_accuracy = 0.5 + 0.1\nrmse = np.float64(1.5)\nloss, f1 = 0.3, 0.8\nscore_flag = True\n"
           "accuracy_text = 'high'\nrows = 10\nfor epoch in range(2):\n    train_loss = 0.1 * epoch\n"
           "auc = float('nan')\n")
    ns = {"val_accuracy": 0.6, "rmse": np.float64(1.5), "loss": 0.3, "f1": 0.8, "score_flag": True,
          "accuracy_text": "high", "rows": 10, "train_loss": 0.1, "auc": float("nan"), "epoch": 1}
    assert capture.auto_metrics(src, ns) == {"val_accuracy": 0.6, "rmse": 1.5, "loss": 0.3, "f1": 0.8,
                                             "train_loss": 0.1}


def test_a_metric_literal_is_a_metric_not_a_param():
    src = "loss = 0.25\n"
    assert capture.auto_params(src, {"loss": 0.25}) == {}
    assert capture.auto_metrics(src, {"loss": 0.25}) == {"loss": 0.25}


@pytest.mark.parametrize("name", ["api_token", "OPENAI_API_KEY", "db_password", "aws_secret_access_key", "key",
                                  "AWS_REGION", "client_secret", "auth_header", "private_key"])
def test_secret_names(name):
    assert capture.is_secret_name(name)


@pytest.mark.parametrize("name", ["lr", "n_trees", "monkey", "keyboard_layout", "accuracy", "keys_per_row"])
def test_ordinary_names_are_not_secrets(name):
    assert not capture.is_secret_name(name)


def test_the_rule_errs_on_the_side_of_never_storing():
    # "token" anywhere in the name is enough: a tokenizer's tokens_per_batch is not logged as a param
    assert capture.is_secret_name("tokens_per_batch")


def test_secret_names_never_become_params():
    src = "api_token = 'abc123xyz'\npassword = 'hunter22'\nlr = 0.1\n"
    assert capture.auto_params(src, {"api_token": "abc123xyz", "password": "hunter22", "lr": 0.1}) == {"lr": 0.1}


def test_masker_masks_assigned_secrets_env_values_and_key_shapes(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "env-secret-value-123")
    src = ("api_token = 'sk-live-4eC39HqLyjWDarjtT1zdp7dc'\nclient = connect(password='pw-very-secret')\n"
           "aws = 'AKIAIOSFODNN7EXAMPLE'\nurl = 'postgresql://bob:s3cr3tpass@db:5432/x'\n"
           "gh = 'ghp_" + "a" * 36 + "'\nprint('env-secret-value-123')\n")
    m = capture.Masker({"api_token": "sk-live-4eC39HqLyjWDarjtT1zdp7dc"}, src)
    out = m(src)
    for leak in ("4eC39HqLyjWDarjtT1zdp7dc", "pw-very-secret", "AKIAIOSFODNN7EXAMPLE", "s3cr3tpass", "a" * 36,
                 "env-secret-value-123"):
        assert leak not in out
    assert "api_token = '****'" in out
    assert "postgresql://****@db:5432/x" in out


def test_papermill_parameters_from_history():
    history = ["alpha = 0.5\nepochs = 3", "# Parameters\nalpha = 0.9\nname = \"x\"\napi_key = 'k'\n", "%load_ext nbops"]
    assert capture.papermill_parameters(history) == {"alpha": 0.9, "name": "x"}


def test_git_info_in_a_real_repo(tmp_path):
    def git(*a):
        subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    (tmp_path / "f.py").write_text("x = 1\n")
    git("add", "f.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    info = capture.git_info(tmp_path)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert info["commit"] == head and info["branch"] == "main" and info["dirty"] is False
    (tmp_path / "f.py").write_text("x = 2\n")
    info = capture.git_info(tmp_path)
    assert info["dirty"] is True and "+x = 2" in info["diff"]


def test_git_info_outside_a_repo(tmp_path):
    assert capture.git_info(tmp_path) == {}


def test_environment_lists_packages():
    py, pkgs = capture.environment()
    assert py.count(".") == 2
    assert any(line.lower().startswith("mlflow==") for line in pkgs.splitlines())


# ---- estimators: hyperparameters, the model, its class (nbops.tracking.models) ---------------------------------

def test_the_tour_cell_records_the_forest_hyperparameters_and_class():
    from sklearn.ensemble import RandomForestRegressor
    from nbops.tracking import models

    src = "model = RandomForestRegressor(n_estimators=30, max_depth=8).fit(X, y)\nr2 = model.score(X, y)\n"
    model = RandomForestRegressor(n_estimators=30, max_depth=8).fit([[0.0], [1.0]], [0.0, 1.0])
    ns = {"model": model, "r2": 1.0, "X": [[0.0]], "y": [0.0]}
    assert models.find_model(src, ns) == ("model", model)
    params = models.merge_params(capture.auto_params(src, ns), models.cell_estimators(src, ns))
    assert params["n_estimators"] == 30 and params["max_depth"] == 8 and params["random_state"] is None
    assert params.keys() == RandomForestRegressor().get_params().keys()    # all of them, as MLflow's autolog
    assert models.model_tags(model) == {"estimator_name": "RandomForestRegressor",
                                        "estimator_class": "sklearn.ensemble.RandomForestRegressor"}


def test_several_estimators_are_prefixed_and_a_pipeline_logs_its_steps():
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from nbops.tracking import models

    scaler, pipe = StandardScaler(), make_pipeline(StandardScaler(with_mean=False), Ridge(alpha=3.0))
    src = "scaler.fit(X)\npipe = make_pipeline(StandardScaler(with_mean=False), Ridge(alpha=3.0))\npipe.fit(X, y)\n"
    ns = {"scaler": scaler, "pipe": pipe, "X": 1, "y": 2, "make_pipeline": make_pipeline}
    est = models.cell_estimators(src, ns)
    assert list(est) == ["scaler", "pipe"]   # fitted in place or built: both; functions and data are not
    params = models.estimator_params(est)
    assert params["scaler.with_mean"] is True and params["pipe.ridge__alpha"] == 3.0
    assert params["pipe.standardscaler__with_mean"] is False
    assert params["pipe.steps"] == "standardscaler:StandardScaler,ridge:Ridge"
    assert models.find_model(src, ns) == ("pipe", pipe)   # the scaler does not predict: the pipeline is the model


def test_a_variable_and_a_hyperparameter_of_the_same_name_both_survive():
    from sklearn.linear_model import Ridge
    from nbops.tracking import models

    m = Ridge(alpha=0.5)
    out = models.merge_params({"alpha": 9, "lr": 0.1}, {"m": m})
    assert out["alpha"] == 9 and out["m.alpha"] == 0.5 and out["lr"] == 0.1


def test_an_optimizer_logs_its_class_and_param_groups():
    from nbops.tracking import models

    class SGD:  # the shape of torch.optim.Optimizer (torch is not installed here)
        def __init__(self):
            self.param_groups = [{"params": [1, 2], "lr": 0.01, "momentum": 0.9, "betas": (0.9, 0.99)},
                                 {"params": [3], "lr": 0.001, "momentum": 0.9, "betas": (0.9, 0.99)}]

        def step(self):
            pass

    assert models.hyperparameters(SGD()) == {"optimizer_name": "SGD", "lr": 0.01, "momentum": 0.9,
                                             "betas": (0.9, 0.99), "group1.lr": 0.001}
    assert models.cell_estimators("opt = SGD()\n", {"opt": SGD(), "SGD": SGD}) .keys() == {"opt"}


def test_model_names_the_variable_the_user_gave():
    from nbops.tracking import models
    from nbops.errors import NbopsError

    with pytest.raises(NbopsError, match="--model s: a str is not a model"):
        models.find_model("s = 'x'", {"s": "x"}, "s")


def test_an_estimator_whose_get_params_fails_is_skipped_not_the_record():
    from nbops.tracking import models

    class Odd:
        def fit(self, X):
            return self

        def get_params(self, deep=True):
            raise RuntimeError("no params here")

    class Fine(Odd):
        def get_params(self, deep=True):
            return {"depth": 3}

    assert models.estimator_params({"odd": Odd(), "fine": Fine()}) == {"depth": 3}
