"""`Evaluator`: figures of the vgg model on fixed inputs match stored references; reports and sheets are complete."""

import dataclasses
import json

import pytest

from eval_reference import CONTENTS, REFERENCES, SIZE, STYLES, settings
from realtime.metrics import Evaluator, write_report


@pytest.fixture(scope="module")
def evaluation(media):
    evaluator = Evaluator(settings(media))
    return evaluator, [evaluator.evaluate("vgg"), evaluator.evaluate("cd16x-recon")]


def test_vgg_figures_are_stable_against_stored_references(evaluation):
    references = json.loads(REFERENCES.read_text())
    vgg = evaluation[1][0]
    assert len(vgg.pairs) == len(references) == len(CONTENTS) * len(STYLES)
    for pair in vgg.pairs:
        reference = references[f"{pair.content}|{pair.style}"]
        assert pair.content_loss == pytest.approx(reference["content_loss"], rel=2e-3)
        assert pair.style_loss == pytest.approx(reference["style_loss"], rel=2e-3)
    assert vgg.content_loss == pytest.approx(sum(r["content_loss"] for r in references.values()) / len(references),
                                             rel=2e-3)


def test_the_losses_tell_the_adain_decoder_from_the_reconstruction_decoder(evaluation):
    vgg, recon = evaluation[1]
    assert recon.style_loss > 1.5 * vgg.style_loss  # trained to reconstruct, it keeps too much of the content
    assert all(p.seconds > 0 for p in recon.pairs) and recon.fps > 0


def test_the_bundled_cd16x_adain_decoder_beats_the_reconstruction_decoder_on_its_objective(media):
    """At a working size (shorter side 256; at 96 px the two are level) on held-out media."""
    evaluator = Evaluator(dataclasses.replace(settings(media), size=256, style_size=256))
    recon, cd16x = (evaluator.evaluate(model) for model in ("cd16x-recon", "cd16x"))
    assert cd16x.decoder.endswith("decoder_relu41_adain.pth")  # the default cd16x decoder is the trained one
    assert cd16x.style_loss < 0.8 * recon.style_loss
    objective = {r.model: r.content_loss + 10 * r.style_loss for r in (recon, cd16x)}  # the training objective
    assert objective["cd16x"] < 0.9 * objective["cd16x-recon"], objective


def test_report_and_sheet_cover_every_model_and_pair(evaluation, tmp_path):
    evaluator, results = evaluation
    path = tmp_path / "eval.json"
    write_report(path, evaluator, results)
    report = json.loads(path.read_text())
    assert report["contents"] == list(CONTENTS) and report["styles"] == list(STYLES)
    assert set(report["models"]) == {"vgg", "cd16x-recon"}
    for summary in report["models"].values():
        assert len(summary["per_pair"]) == 4 and summary["precision"] == "float32"
        assert summary["style_loss"] == pytest.approx(sum(p["style_loss"] for p in summary["per_pair"]) / 4)
    assert report["settings"]["size"] == SIZE
    sheet = evaluator.sheet(results)
    cell, gap = evaluator.settings.cell, 2
    rows, cols = 1 + len(CONTENTS) * len(results), 1 + len(STYLES)  # header row of styles, a row per content x model
    assert sheet.shape == (rows * (cell + gap) - gap, cols * (cell + gap) - gap, 3)
