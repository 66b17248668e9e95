"""Tiny real image folders for the training and evaluation tests (downscaled shared media)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

CONTENTS = ("animal_cat_chelsea_451x300.png", "indoor_coffee_cup_600x400.png", "portrait_astronaut_512x512.png")
STYLES = ("picabia_udnie.jpg", "vangogh_starry_night.jpg", "munch_the_scream.jpg")


def small_copies(media: Path, kind: str, names: tuple[str, ...], folder: Path, short_side: int = 72) -> Path:
    """Copies of shared images with the shorter side `short_side`, as PNGs in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        with Image.open(media / kind / name) as image:
            image = image.convert("RGB")
            scale = short_side / min(image.size)
            image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS).save(
                folder / (Path(name).stem + ".png"))
    return folder
