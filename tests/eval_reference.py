"""Reference figures of `adain eval` for the vgg model on fixed small inputs, in fp32 on the CPU.

`python tests/eval_reference.py` rewrites tests/eval_reference.json; test_metrics.py compares fresh runs with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCES = HERE / "eval_reference.json"
CONTENTS = ("animal_cat_chelsea_451x300.png", "portrait_astronaut_512x512.png")
STYLES = ("picabia_udnie.jpg", "vangogh_starry_night.jpg")
SIZE = 96


def settings(media: Path):
    from realtime.metrics import EvalSettings
    return EvalSettings(content=tuple(str(media / "content" / c) for c in CONTENTS),
                        styles=tuple(str(media / "styles" / s) for s in STYLES),
                        size=SIZE, style_size=SIZE, device="cpu", precision="fp32", cell=48)


def figures(media: Path) -> dict[str, dict[str, float]]:
    """Per-pair content and style losses of the vgg model, keyed 'content|style'."""
    from realtime.metrics import Evaluator
    scores = Evaluator(settings(media)).evaluate("vgg")
    return {f"{p.content}|{p.style}": {"content_loss": p.content_loss, "style_loss": p.style_loss}
            for p in scores.pairs}


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
    from conftest import MEDIA
    REFERENCES.write_text(json.dumps(figures(MEDIA), indent=1) + "\n")


if __name__ == "__main__":
    main()
