"""timm backbones (the timm extra): ``timm:NAME`` trains, predicts, saves, reloads and exports; ``--pretrained``
loads a weights file into the body. Run with ``pytest -m timm`` in a venv that has timm (see .ci/run)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import trainval
from trainval.cli import main
from trainval.errors import ConfigError, ModelFileError

from dataset_files import write_photos

HAVE_TIMM = importlib.util.find_spec("timm") is not None
SMALL = "resnet10t"  # about 5M parameters; randomly initialised, nothing downloaded
TINY = ["--epochs", "1", "--batch-size", "8", "--holdout-size", "3", "--verbose", "0"]


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return write_photos(tmp_path / "photos", per_class=10)


def timm_weights(name: str) -> dict[str, torch.Tensor]:
    """The state dict of timm's ``name`` with its own 1000-class head, as a file from elsewhere would hold it."""
    import timm

    torch.manual_seed(1)
    return {key: value.contiguous() for key, value in timm.create_model(name).state_dict().items()}


@pytest.mark.skipif(HAVE_TIMM, reason="timm is installed here")
def test_a_timm_model_without_timm_installed_says_how_to_install_it(photos, capsys):
    assert main(["train", "--model", f"timm:{SMALL}", "--dataset", f"folder:{photos}", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'trainval[timm]'" in err and "\n" not in err
    assert main(["models", "--timm", "resnet*"]) == 2
    assert "pip install 'trainval[timm]'" in capsys.readouterr().err


@pytest.mark.timm
@pytest.mark.skipif(not HAVE_TIMM, reason="needs timm: pip install 'trainval[timm]'")
class TestWithTimm:
    def test_a_timm_model_trains_predicts_reloads_and_exports_on_a_generated_image_folder(self, photos, capsys):
        assert main(["train", "--model", f"timm:{SMALL}", "--dataset", f"folder:{photos}", "--name", "run", *TINY]) == 0
        out = capsys.readouterr().out
        assert "Accuracy:" in out and "Preset resnet18" in out  # a standard network gets the standard recipe
        spec = json.loads(Path("runs/run/model/model.json").read_text())
        assert spec["architecture"] == {"name": f"timm:{SMALL}", "options": {}}
        model = trainval.load_model("runs/run")
        assert model.class_names == ["cat", "dog", "owl"] and model.head == ("fc.weight", "fc.bias")
        images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
        np.testing.assert_allclose(model.predict(images), trainval.load_model("runs/run").predict(images))
        assert main(["predict", "runs/run", str(photos / "owl" / "1.png")]) == 0
        assert "owl" in capsys.readouterr().out
        assert main(["export", "runs/run", "--format", "onnx"]) == 0
        assert Path("runs/run/export/model.onnx").stat().st_size > 0

    def test_the_same_seed_builds_the_same_timm_weights(self):
        first, second = (trainval.create_model(f"timm:{SMALL}", num_classes=3, seed=7).module.state_dict()
                         for _ in range(2))
        assert all(torch.equal(first[name], second[name]) for name in first)

    @pytest.mark.parametrize("layout", ["safetensors", "state dict", "timm checkpoint"])
    def test_pretrained_loads_a_weights_file_into_the_body_under_a_new_head(self, tmp_path, layout):
        pretrained = timm_weights(SMALL)
        names = {"safetensors": "w.safetensors", "state dict": "w.pth", "timm checkpoint": "w.pth.tar"}
        file = tmp_path / names[layout]
        if layout == "safetensors":
            save_file(pretrained, file)
        elif layout == "state dict":
            torch.save(pretrained, file)
        else:  # what timm's train.py writes
            torch.save({"epoch": 3, "arch": SMALL, "state_dict": pretrained, "version": 2}, file)
        model = trainval.create_model(f"timm:{SMALL}", num_classes=3, input_shape=(32, 32, 3), weights=file)
        started = model.module.state_dict()
        assert model.head == ("fc.weight", "fc.bias") and started["fc.weight"].shape == (3, 512)
        assert all(torch.equal(started[name], pretrained[name]) for name in started if not name.startswith("fc."))

    def test_pretrained_on_the_command_line_fine_tunes_with_the_finetune_preset(self, tmp_path, photos, capsys):
        save_file(timm_weights(SMALL), tmp_path / "w.safetensors")
        assert main(["train", "--model", f"timm:{SMALL}", "--pretrained", str(tmp_path / "w.safetensors"),
                     "--dataset", f"folder:{photos}", "--name", "tuned", *TINY]) == 0
        assert "Preset finetune" in capsys.readouterr().out
        saved = json.loads(Path("runs/tuned/config.json").read_text())
        assert saved["preset"]["model"] == f"timm:{SMALL}" and saved["preset"]["fine_tuning"]["head_only"] > 0

    def test_a_weights_file_of_another_architecture_is_refused_in_one_line(self, tmp_path, photos, capsys):
        save_file(timm_weights("mobilenetv3_small_050"), tmp_path / "other.safetensors")
        with pytest.raises(ModelFileError, match=f"do not fit timm:{SMALL}"):
            trainval.create_model(f"timm:{SMALL}", num_classes=3, weights=tmp_path / "other.safetensors")
        assert main(["train", "--model", f"timm:{SMALL}", "--pretrained", str(tmp_path / "other.safetensors"),
                     "--dataset", f"folder:{photos}", *TINY]) == 1
        err = capsys.readouterr().err.strip()
        assert "do not fit" in err and "\n" not in err

    def test_timm_names_it_lacks_and_options_it_refuses_are_one_line_errors(self):
        with pytest.raises(ConfigError, match="timm has no architecture 'resnet9000'"):
            trainval.create_model("timm:resnet9000")
        with pytest.raises(ConfigError, match=f"timm cannot build {SMALL}"):
            trainval.create_model(f"timm:{SMALL}", no_such_option=1)

    def test_timms_download_without_internet_fails_in_one_line(self, photos, tmp_path):
        done = subprocess.run([sys.executable, "-m", "trainval", "train", "--model", f"timm:{SMALL}", "--pretrained",
                               "timm", "--dataset", f"folder:{photos}", *TINY], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                                               "HF_HOME": str(tmp_path / "hf")})
        assert done.returncode == 1
        err = done.stderr.strip()
        assert "could not get timm's pretrained weights" in err and "--pretrained PATH" in err and "\n" not in err

    def test_trainval_models_timm_lists_timms_names(self, capsys):
        assert main(["models", "--timm", "resnet1*"]) == 0
        out = capsys.readouterr().out
        assert f"timm:{SMALL}" in out.splitlines() and "matching 'resnet1*'" in out
