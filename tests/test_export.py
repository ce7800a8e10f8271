"""Exported models: ONNX run by onnxruntime agrees with PyTorch; safetensors carries the spec."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest
from safetensors import safe_open

import trainval
from cifar_files import write_cifar10_folder
from trainval.cli import main
from trainval.errors import ExportError
from trainval.export import check_onnx, export_model

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A fastnet with TTA level 2 trained a few steps, so its BatchNorm statistics and weights are not initial."""
    root = tmp_path_factory.mktemp("export")
    write_cifar10_folder(root / "data", train_per_batch=20, test_size=40)
    (x_train, y_train), (x_test, y_test) = trainval.datasets.cifar10.load_data(root / "data")
    model = trainval.create_model("fastnet", seed=0, widths=(16, 32, 32), class_names=trainval.datasets.cifar10.CLASS_NAMES)
    model.compile(precision="fp32", tta=2)
    model.fit(x_train, y_train, epochs=2, batch_size=25, verbose=0, seed=0)
    return model, x_test


def test_onnx_gives_pytorchs_predictions_on_a_test_batch(trained, tmp_path):
    model, x_test = trained
    model.module.train()
    path = export_model(model, tmp_path / "model.onnx", "onnx")
    assert model.module.training  # exporting leaves the module as it found it
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_probabilities,) = session.run(None, {"images": x_test})
    torch_probabilities = model.predict(x_test)  # fp32, TTA level 2: what the graph must reproduce
    assert onnx_probabilities.shape == (40, 10)
    np.testing.assert_array_equal(onnx_probabilities.argmax(1), torch_probabilities.argmax(1))
    np.testing.assert_allclose(onnx_probabilities, torch_probabilities, atol=1e-5)
    check = check_onnx(model, path, x_test[:7])  # another batch size than the export's example
    assert (check.images, check.same_top1) == (7, 7) and check.max_probability_difference < 1e-5
    metadata = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata["class_names"]) == list(trainval.datasets.cifar10.CLASS_NAMES)


def test_safetensors_export_holds_the_weights_and_the_spec(trained, tmp_path):
    model, _ = trained
    path = export_model(model, tmp_path / "weights.safetensors", "safetensors")
    with safe_open(str(path), "np") as exported:
        spec = json.loads(exported.metadata()["spec"])
        assert spec["architecture"]["name"] == "fastnet" and spec["evaluation"]["tta"] == 2
        state = model.module.state_dict()
        assert set(exported.keys()) == set(state)
        name = next(iter(state))
        np.testing.assert_array_equal(exported.get_tensor(name), state[name].numpy())


def test_export_cli_writes_into_the_run_and_checks_the_file(cifar_dir, capsys):
    assert main(["train", "--preset", "quick", "--data-dir", str(cifar_dir), "--name", "r", "--holdout-size", "5"]) == 0
    capsys.readouterr()
    assert main(["export", "runs/r"]) == 0
    out = capsys.readouterr().out
    assert "Wrote runs/r/export/model.onnx" in out and "same top-1 class on 64/64" in out
    assert main(["export", "runs/r", "--format", "safetensors", "--output", "w.safetensors"]) == 0
    assert main(["export", "runs/r", "--format", "safetensors", "--output", "into/"]) == 0
    assert "Wrote into/model.safetensors" in capsys.readouterr().out


def test_export_without_onnx_installed_says_what_to_install(trained, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ExportError, match=r"pip install 'trainval\[onnx\]'"):
        export_model(trained[0], tmp_path / "m.onnx", "onnx")
    assert not (tmp_path / "m.onnx").exists()
