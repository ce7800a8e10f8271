"""The HTML report: one self-contained page with embedded plots and escaped text, that a browser renders."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from browser import assert_report_rendered, find_chromium, screenshot
from trainval.reports.html_report import render_report
from trainval.reports.plots import confusion_matrix_plot, learning_curves, mistakes_grid, per_class_accuracy_plot
from trainval.metrics import most_confident_mistakes, score_predictions

NASTY_NAME = "<b>cat & dog</b>"
CLASS_NAMES = [NASTY_NAME, "airplane", "automobile", "bird", "deer", "frog", "horse", "ship", "truck", "never seen"]
DATA_PNG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)">')


@pytest.fixture(scope="module")
def report() -> str:
    """A report on 600 test images of 10 classes, one of which has no images and is never predicted."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 9, 600)
    logits = rng.normal(size=(600, 10))
    logits[np.arange(600), labels] += 2.5
    logits[:, 9] = -10.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = score_predictions(probabilities, labels, CLASS_NAMES, loss=0.61)
    mistakes = most_confident_mistakes(probabilities, labels, 10)
    predicted = probabilities[mistakes].argmax(axis=1)
    epochs = [{"epoch": epoch, "loss": 2.0 / (epoch + 1), "acc": 0.9 - 0.6 / (epoch + 1), "val_loss": 2.1 / (epoch + 1),
               "val_acc": 0.85 - 0.6 / (epoch + 1), "lr": 0.1 * 0.5 ** epoch, "seconds": 12.3456} for epoch in range(8)]
    low, high = scores.interval
    plots = [
        ("Learning curves", learning_curves(epochs)),
        ("Confusion matrix", confusion_matrix_plot(scores.confusion, CLASS_NAMES)),
        ("Accuracy per class", per_class_accuracy_plot(scores.classes)),
        ("Most confident mistakes", mistakes_grid(rng.integers(0, 256, (len(mistakes), 32, 32, 3), dtype=np.uint8),
                                                  [CLASS_NAMES[label] for label in labels[mistakes]],
                                                  [CLASS_NAMES[index] for index in predicted],
                                                  probabilities[mistakes, predicted])),
    ]
    return render_report(
        title="trainval run 2024-05-01 <resnet>",
        summary=[("Test accuracy", f"{scores.accuracy:.2%} (95% CI {low:.2%}-{high:.2%}, {scores.samples} images)"),
                 ("Model", "resnet18")],
        config={"model": "resnet18", "optimizer": {"name": "sgd", "lr": 0.1, "nesterov": True},
                "augment": ["crop", "flip"], "seed": None},
        timings={"training": 754.2, "evaluation": 3.4},
        epochs=epochs, classes=scores.classes, plots=plots, notes=["Trained on a CPU & without <validation>."])


class TagBalance(HTMLParser):
    """Records elements that are closed without being open, or left open at the end."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.errors.append(f"</{tag}> does not close the innermost open element")


def test_report_is_one_well_formed_html5_page(report):
    assert report.startswith("<!DOCTYPE html>")
    parser = TagBalance()
    parser.feed(report)
    parser.close()
    assert parser.errors == [] and parser.open == []


def test_every_plot_is_embedded_as_a_png_with_its_caption(report):
    images = DATA_PNG.findall(report)
    assert [alt for _, alt in images] == ["Learning curves", "Confusion matrix", "Accuracy per class",
                                          "Most confident mistakes"]
    for data, alt in images:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()
        assert image.format == "PNG" and image.width > 200, alt
        assert f"<figcaption>{alt}</figcaption>" in report
    assert report.count("<img") == 4


def test_report_refers_to_nothing_outside_itself(report):
    for reference in ("http://", "https://", 'src="//', "href=", "url(", "@import", "<script", "<link"):
        assert reference not in report


def test_report_escapes_text(report):
    assert NASTY_NAME not in report
    assert "&lt;b&gt;cat &amp; dog&lt;/b&gt;" in report
    assert "trainval run 2024-05-01 &lt;resnet&gt;" in report
    assert "without &lt;validation&gt;." in report


def test_report_shows_scores_settings_timings_and_epochs(report):
    assert "<dt>Test accuracy</dt>" in report
    never_seen_row = re.search(r"<tr><td>never seen</td>(.*?)</tr>", report).group(1)
    assert never_seen_row.count("<td>\u2014</td>") == 3, "precision, accuracy and interval do not exist"
    assert "<td>optimizer.lr</td><td>0.1</td>" in report and "<td>augment</td><td>[&quot;crop&quot;, " in report
    assert "<td>12 min 34 s</td>" in report and "<td>3.4 s</td>" in report
    assert "<th>val_acc</th>" in report and "<td>12.35</td>" in report
    first_epoch = re.search(r"<tbody>\n<tr><td>1</td><td>2</td><td>30.00%</td>", report)
    assert first_epoch, "epochs are counted from 1, accuracies shown as %"


@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (chromium, chromium-browser or google-chrome)")
def test_chromium_renders_the_report_with_its_plots(report, tmp_path):
    html_file, png_file = tmp_path / "report.html", tmp_path / "report.png"
    html_file.write_text(report, encoding="utf-8")
    screenshot(html_file, png_file, width=1200, height=2400)
    assert_report_rendered(png_file, (1200, 2400))
