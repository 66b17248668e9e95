"""Stylizations of shared media by both models match stored references and really carry the style."""

import json

import numpy as np
import pytest

from golden import CASES, REFERENCES, run_case, summary
from realtime.images import read_image, resize_shorter_side


@pytest.mark.parametrize("model,content,style", CASES)
def test_stylization_matches_its_golden_reference(media, model, content, style):
    reference = json.loads(REFERENCES.read_text())[f"{model}|{content}|{style}"]
    out = run_case(media, model, content, style)
    got = summary(out)
    assert np.allclose(got["mean"], reference["mean"], atol=1.0)
    assert np.allclose(got["std"], reference["std"], atol=1.0)
    assert np.allclose(got["thumb"], reference["thumb"], atol=2.0)
    # not just "it ran": the colour statistics moved from the content's toward the style's
    content_rgb = read_image(media / "content" / content).rgb.reshape(-1, 3).astype(np.float64)
    style_rgb = resize_shorter_side(read_image(media / "styles" / style).rgb, 512).reshape(-1, 3).astype(np.float64)
    before = np.abs(content_rgb.mean(axis=0) - style_rgb.mean(axis=0)).sum()
    after = np.abs(out.reshape(-1, 3).mean(axis=0) - style_rgb.mean(axis=0)).sum()
    assert after < 0.6 * before, (before, after)
