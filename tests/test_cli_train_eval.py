"""`adain train` and `adain eval` from the command line: a real tiny run end to end, and clear one-line errors."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import cli
from eval_reference import CONTENTS as EVAL_CONTENTS
from train_fixtures import CONTENTS, STYLES, small_copies


@pytest.fixture(scope="module")
def folders(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-data")
    return (str(small_copies(media, "content", CONTENTS, root / "content")),
            str(small_copies(media, "styles", STYLES, root / "styles")))


ROOT = Path(__file__).resolve().parent.parent
TINY = ["--iters", "2", "--crop", "32", "--load-size", "48", "--batch-size", "2", "--precision", "fp32",
        "--init-decoder", "cd16x-recon"]


def test_train_then_eval_the_trained_decoder(folders, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "--content", folders[0], "--styles", folders[1], "--out", str(run), *TINY]) == 0
    assert "iteration 2" in capsys.readouterr().err
    report, sheet = tmp_path / "eval.json", tmp_path / "sheet.jpg"
    args = ["eval", "--model", "cd16x", "--decoder-weights", str(run / "decoder.pth"), "--content", folders[0],
            "--styles", folders[1], "--size", "64", "--style-size", "64", "--precision", "fp32", "--json", str(report),
            "--sheet", str(sheet), "--cell", "40"]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "content loss" in err and "cd16x" in err
    figures = json.loads(report.read_text())["models"]["cd16x"]
    assert figures["decoder"] == str(run / "decoder.pth") and len(figures["per_pair"]) == 9
    with Image.open(sheet) as image:
        assert image.size == (4 * 42 - 2, 4 * 42 - 2)
    assert cli.main(args) == 2  # outputs exist now
    assert "output exists; pass --overwrite" in capsys.readouterr().err
    assert cli.main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize("argv_tail,message", [
    (["--content", "/no/such/folder"], "/no/such/folder: no such file"),
    (["--crop", "30"], "--crop must be a multiple of 8"),
    (["--resume"], "no checkpoint to resume"),
    (["--init-decoder", "vgg"], "a vgg model, but the encoder is cd16x"),
    (["--encoder-weights", "/no/such/encoder.pth"], "weight file not found"),
])
def test_train_errors_are_one_line_with_exit_code_2(folders, tmp_path, capsys, argv_tail, message):
    argv = ["train", "--content", folders[0], "--styles", folders[1], "--out", str(tmp_path / "run"), *TINY,
            *argv_tail]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("argv_tail,message", [
    (["--model", "vgg", "--model", "cd16x", "--decoder-weights", "x.pth"], "apply to one model"),
    (["--model", "cd17x"], "unknown model 'cd17x'"),
])
def test_eval_errors_are_one_line_with_exit_code_2(media, capsys, argv_tail, message):
    content = str(media / "content" / EVAL_CONTENTS[0])
    assert cli.main(["eval", "--content", content, "--styles", content, "--size", "64", *argv_tail]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_eval_checks_the_sheet_type_before_evaluating(media, monkeypatch, capsys):
    monkeypatch.setattr(cli, "Evaluator", lambda *args, **kwargs: pytest.fail("evaluated before checking --sheet"))
    content = str(media / "content" / EVAL_CONTENTS[0])
    assert cli.main(["eval", "--content", content, "--styles", content, "--sheet", "sheet.txt"]) == 2
    assert "sheet.txt: unknown image extension '.txt'" in capsys.readouterr().err


def test_eval_never_writes_its_sheet_over_an_input(media, tmp_path, capsys):
    contents = tmp_path / "contents"
    contents.mkdir()
    image = contents / "cat.png"
    Image.open(media / "content" / EVAL_CONTENTS[0]).resize((64, 48)).save(image)
    before = image.read_bytes()
    assert cli.main(["eval", "--content", str(contents), "--styles", str(image), "--size", "64",
                     "--sheet", str(image), "--overwrite"]) == 2
    assert f"{image}: is also an input" in capsys.readouterr().err and image.read_bytes() == before


def test_sigterm_saves_a_checkpoint_that_resume_continues(folders, tmp_path):
    run = tmp_path / "run"
    argv = [sys.executable, str(ROOT / "cli.py"), "train", "--content", folders[0], "--styles", folders[1],
            "--out", str(run), *TINY, "--iters", "100000", "--save-every", "100000", "--sample-every", "0"]
    process = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _logged_iterations(run) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    saved = torch.load(run / "checkpoint.pt", weights_only=True)["iteration"]
    assert saved >= 1 and _logged_iterations(run) == saved
    assert cli.main(["train", "--content", folders[0], "--styles", folders[1], "--out", str(run), *TINY, "--resume",
                     "--iters", str(saved + 1)]) == 0
    assert _logged_iterations(run) == saved + 1


def _logged_iterations(run) -> int:
    log = run / "log.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.is_file() else 0
