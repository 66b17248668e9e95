"""Golden references: statistics of real stylizations of shared media, by both models, in fp32 on the CPU.

`python tests/golden.py` rewrites tests/golden.json; test_golden.py compares fresh runs with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCES = HERE / "golden.json"
CASES = [  # (model, content, style)
    ("cd16x", "portrait_astronaut_512x512.png", "hokusai_great_wave.jpg"),
    ("cd16x", "animal_cat_chelsea_451x300.png", "vangogh_starry_night.jpg"),
    ("vgg", "portrait_astronaut_512x512.png", "hokusai_great_wave.jpg"),
    ("vgg", "animal_cat_chelsea_451x300.png", "vangogh_starry_night.jpg"),
]


def summary(rgb: np.ndarray) -> dict[str, list]:
    """Per-channel mean and std, and an 4x4 thumbnail (area means) of an RGB uint8 image."""
    pixels = rgb.astype(np.float64)
    height, width = rgb.shape[:2]
    thumb = [[pixels[i * height // 4:(i + 1) * height // 4, j * width // 4:(j + 1) * width // 4].mean(axis=(0, 1))
              .round(2).tolist() for j in range(4)] for i in range(4)]
    return {"mean": pixels.mean(axis=(0, 1)).round(3).tolist(), "std": pixels.std(axis=(0, 1)).round(3).tolist(),
            "thumb": thumb}


def run_case(media: Path, model: str, content: str, style: str) -> np.ndarray:
    from realtime.engine import Stylizer
    from realtime.images import read_image
    stylizer = Stylizer(model, device="cpu", precision="fp32")
    return stylizer.stylize(read_image(media / "content" / content).rgb, media / "styles" / style)


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
    from conftest import MEDIA
    references = {f"{m}|{c}|{s}": summary(run_case(MEDIA, m, c, s)) for m, c, s in CASES}
    REFERENCES.write_text(json.dumps(references, indent=1) + "\n")


if __name__ == "__main__":
    main()
