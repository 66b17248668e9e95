"""Shared fixtures: the read-only ../shared folder (weights and media) and a private cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("REALTIME_ADAIN_SHARED", ROOT.parent / "shared")).resolve()
WEIGHTS = Path(os.environ.get("REALTIME_ADAIN_WEIGHTS", SHARED / "weights")).resolve()  # subprocesses run elsewhere
MEDIA = SHARED / "media"

# Tests read weights from the shared mirror in place and never touch the user's cache.
os.environ["REALTIME_ADAIN_WEIGHTS"] = str(WEIGHTS)
os.environ.pop("REALTIME_ADAIN_WEIGHTS_URL", None)
torch.set_num_threads(os.cpu_count() or 1)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["REALTIME_ADAIN_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def media() -> Path:
    if not MEDIA.is_dir():
        pytest.fail(f"shared media not found at {MEDIA}; set REALTIME_ADAIN_SHARED to the shared folder")
    return MEDIA


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return WEIGHTS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
