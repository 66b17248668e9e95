"""`Trainer`: the paper's objective goes down, and a checkpoint restores the run exactly (also after Ctrl-C)."""

import csv
import dataclasses
import os
import signal

import pytest
import torch

from realtime.errors import UserError
from realtime.models import build_network
from realtime.train import (CHECKPOINT, DECODER, LOG, SAMPLES, Trainer, TrainSettings, ema_decay, learning_rate,
                            train)
from train_fixtures import CONTENTS, STYLES, small_copies


@pytest.fixture(scope="module")
def data(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("train-data")
    return (str(small_copies(media, "content", CONTENTS, root / "content")),
            str(small_copies(media, "styles", STYLES, root / "styles")))


def settings_for(data, out, **changes) -> TrainSettings:
    base = TrainSettings(content=(data[0],), styles=(data[1],), out=out, encoder="cd16x", init_decoder="cd16x-recon",
                         iters=4, batch_size=2, crop=32, load_size=64, save_every=2, sample_every=2,
                         device="cpu", precision="fp32")
    return dataclasses.replace(base, **changes)


def _checkpoint(run):
    return torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)


def _log_rows(run):
    with open(run / LOG, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(handle)]


def _assert_same_state(a, b):
    assert a["iteration"] == b["iteration"]
    assert torch.equal(a["generator"], b["generator"])
    for name, tensor in a["decoder"].items():
        assert torch.equal(tensor, b["decoder"][name]), name
    for index, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][key]), (index, key)


def test_a_few_iterations_on_tiny_crops_lower_the_loss(data, tmp_path):
    trainer = Trainer(settings_for(data, tmp_path / "run", batch_size=4))
    content, style = trainer.next_batch()
    weight = trainer.settings.style_weight
    with torch.no_grad():
        before = trainer.losses(content, style).total(weight).item()
    for _ in range(12):
        trainer.step(content, style)
    with torch.no_grad():
        after = trainer.losses(content, style)
    assert after.total(weight).item() < 0.8 * before
    assert trainer.iteration == 12


@pytest.mark.parametrize("style_stats,ema", [("crop", 0.0), ("image", 0.9)])
def test_resume_continues_with_identical_state(data, tmp_path, style_stats, ema):
    straight = tmp_path / "straight"
    Trainer(settings_for(data, straight, style_stats=style_stats, ema=ema)).run()
    split = tmp_path / "split"
    Trainer(settings_for(data, split, iters=2, style_stats=style_stats, ema=ema)).run()
    assert _checkpoint(split)["iteration"] == 2
    gone = str(tmp_path / "deleted-init-decoder.pth")  # the checkpoint holds the weights: the file is not read
    Trainer(settings_for(data, split, resume=True, style_stats=style_stats, ema=ema, init_decoder=gone)).run()
    _assert_same_state(_checkpoint(straight), _checkpoint(split))
    if ema:
        assert _checkpoint(split)["average_updates"] == 4
        for name, tensor in _checkpoint(straight)["average"].items():
            assert torch.equal(tensor, _checkpoint(split)["average"][name]), name
    assert _log_rows(straight) == _log_rows(split) and len(_log_rows(split)) == 4


def test_ctrl_c_saves_the_last_complete_iteration_and_resume_matches(data, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    Trainer(settings_for(data, straight, save_every=10)).run()
    run = tmp_path / "interrupted"
    trainer = Trainer(settings_for(data, run, save_every=10))
    real_step = Trainer.step

    def step_then_interrupt(self, content, style):
        if self.iteration == 3:  # the batch for iteration 4 has been drawn: it must be drawn again on resume
            raise KeyboardInterrupt
        return real_step(self, content, style)

    monkeypatch.setattr(Trainer, "step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert _checkpoint(run)["iteration"] == 3
    monkeypatch.setattr(Trainer, "step", real_step)
    Trainer(settings_for(data, run, save_every=10, resume=True)).run()
    _assert_same_state(_checkpoint(straight), _checkpoint(run))
    assert _log_rows(straight) == _log_rows(run)


def test_run_folder_holds_a_drop_in_decoder_samples_and_a_log(data, tmp_path):
    run = tmp_path / "run"
    result = Trainer(settings_for(data, run)).run()
    assert result.iteration == 4 and result.decoder == run / DECODER
    decoder = build_network("decoder", "cd16x", run / DECODER)  # loads strictly, like any cd16x decoder
    master = _checkpoint(run)["decoder"]["conv11.weight"]
    assert torch.equal(decoder.state_dict()["conv11.weight"], master.half().float())
    assert (run / DECODER).stat().st_size < 0.6 * 4 * sum(v.numel() for v in _checkpoint(run)["decoder"].values())
    assert sorted(p.name for p in (run / SAMPLES).iterdir()) == ["iter_0000002.jpg", "iter_0000004.jpg"]
    rows = _log_rows(run)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[1]["lr"]) == pytest.approx(learning_rate(settings_for(data, run), 1))


def test_whole_image_style_statistics_are_those_of_the_whole_resized_image(data, tmp_path):
    trainer = Trainer(settings_for(data, tmp_path / "run", style_stats="image"))
    _, style = trainer.next_batch()
    assert style.encoder.mean.shape == (2, 128, 1, 1) and [s.mean.shape[1] for s in style.vgg] == [64, 128, 256, 512]
    whole = trainer.styles.images[1][None].float() / 255  # shorter side 64: the load size
    assert min(whole.shape[-2:]) == 64
    expected = trainer.loss_net.style_targets(whole)
    got = trainer._whole_image_stats(1)
    assert all(torch.allclose(g.std, e.std) for g, e in zip(got.vgg, expected))


def test_the_moving_average_is_what_ships_and_can_be_switched_on_when_resuming(data, tmp_path):
    run = tmp_path / "run"
    Trainer(settings_for(data, run, iters=2)).run()
    assert _checkpoint(run)["average"] is None
    trainer = Trainer(settings_for(data, run, iters=4, ema=0.5, resume=True))
    start = {k: v.clone() for k, v in trainer.decoder.state_dict().items()}
    assert all(torch.equal(start[k], v) for k, v in trainer.average.items())  # starts from the resumed weights
    trainer.run()
    state = _checkpoint(run)
    shipped = torch.load(run / DECODER, weights_only=True)
    for name, average in state["average"].items():
        assert torch.equal(shipped[name], average.half())
    raw, average = state["decoder"]["conv41.weight"], state["average"]["conv41.weight"]
    assert not torch.equal(raw, average)
    # the mean of the weights after iterations 3 and 4 trails the weights of iteration 4
    assert (average - start["conv41.weight"]).abs().sum() < (raw - start["conv41.weight"]).abs().sum()


def test_ema_is_the_plain_mean_until_its_decay_is_reached():
    weights = [torch.tensor([float(v)]) for v in (4.0, 1.0, 7.0, 2.0)]
    average = torch.zeros(1)
    for n, value in enumerate(weights):
        average.lerp_(value, 1.0 - ema_decay(0.9, n))
        assert average.item() == pytest.approx(sum(w.item() for w in weights[:n + 1]) / (n + 1))
    assert ema_decay(0.9, 10**6) == 0.9
    assert all(ema_decay(0.99, n) <= ema_decay(0.99, n + 1) for n in range(2000))


def test_vgg_encoder_shares_the_loss_network_and_trains_from_scratch(data, tmp_path):
    trainer = Trainer(settings_for(data, tmp_path / "run", encoder="vgg", init_decoder=None, iters=1))
    assert trainer.encoder is trainer.loss_net.vgg
    losses = trainer.step(*trainer.next_batch())
    assert torch.isfinite(losses.content) and torch.isfinite(losses.style)


def test_resume_and_start_refuse_what_would_corrupt_a_run(data, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(UserError, match="no checkpoint to resume"):
        Trainer(settings_for(data, run, resume=True))
    Trainer(settings_for(data, run, iters=2)).run()
    with pytest.raises(UserError, match="already holds a training run; pass --resume"):
        Trainer(settings_for(data, run))
    with pytest.raises(UserError, match="--crop 32"):
        Trainer(settings_for(data, run, crop=40, resume=True))
    with pytest.raises(UserError, match="content/style images differ"):
        Trainer(settings_for(data, run, styles=(data[0],), resume=True))
    with pytest.raises(UserError, match="a vgg model, but the encoder is cd16x"):
        Trainer(settings_for(data, tmp_path / "other", init_decoder="vgg"))
    with pytest.raises(UserError, match="neither a model name"):
        Trainer(settings_for(data, tmp_path / "other", init_decoder="no-such-thing"))
    with pytest.raises(UserError, match="--load-size"):
        settings_for(data, run, load_size=16)
    for bad in ({"lr": float("nan")}, {"lr": 0.0}, {"lr": float("inf")}, {"style_weight": float("nan")},
                {"content_weight": -1.0}, {"lr_decay": float("inf")}):
        with pytest.raises(UserError, match="--lr must be positive"):
            settings_for(data, run, **bad)


def test_a_signal_during_the_weight_update_still_saves_that_iteration(data, tmp_path, monkeypatch):
    """SIGTERM lands while Adam writes the weights (the window where nothing consistent could be saved): the
    run finishes that iteration, saves it and stops, instead of ending with no checkpoint at all."""
    adam_step = torch.optim.Adam.step

    def step_hit_by_sigterm(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode, inside the update
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step_hit_by_sigterm)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(settings_for(data, run, iters=50, save_every=100))
    assert _checkpoint(run)["iteration"] == 1

