"""`adain train`: learn an AdaIN decoder for a frozen encoder with the paper's objective.

One iteration: random crops of B content images and B styles; t = AdaIN(encoder(content), style statistics
in the encoder); output = decoder(t); loss = content_weight * L_c + style_weight * L_s, both measured by the
normalised VGG-19 (see `losses.py`); one Adam step on the decoder, with the reference implementation's
learning rate schedule lr / (1 + lr_decay * iteration).

Style statistics come from random crops of the style images, as in the paper (`style_stats="crop"`), or
from whole style images (`"image"`), which is how the Stylizer takes them at inference: a decoder trained
on small crops then sees the wider spread of whole-image statistics in training too. Whole-image
statistics are computed once per image, which also saves a quarter of the loss network's work.

A run lives in one folder: `checkpoint.pt` (decoder, optimizer, iteration, data-sampling RNG: enough to
continue exactly where it stopped), `decoder.pth` (the decoder alone in float16, for `--decoder-weights`: the
moving average of the weights with `ema`), `log.csv` (one row per iteration) and `samples/` (a fixed set of
stylizations every `sample_every` iterations).
Files are replaced atomically, so a run killed at any point can be resumed from its last checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
import torch.nn as nn
from rich.progress import TextColumn

from . import adain as A
from .engine import select_device, select_precision
from .errors import UserError
from .files import write_atomically
from .signals import stop_on_signals
from .images import tensor_to_frames, write_image
from .losses import LossNetwork, Losses, Targets, adain_target
from .models import build_network
from .sheets import compose_grid
from .train_data import Augmentation, center_crops, load_image_set, random_crops
from .ui import item_progress
from .weights import WeightStore, sha256_of

log = logging.getLogger(__name__)

CHECKPOINT, DECODER, LOG, SAMPLES = "checkpoint.pt", "decoder.pth", "log.csv", "samples"
_FORMAT = "realtime-adain-train/1"
_LOG_FIELDS = ("iteration", "elapsed_s", "lr", "loss", "content_loss", "style_loss")
_SAMPLE_PAIRS = 4
# Settings that define the optimisation: a resumed run must use the checkpoint's values.
_RUN_DEFINING = ("encoder", "batch_size", "crop", "load_size", "scale_jitter", "flip", "style_stats", "lr",
                 "lr_decay", "style_weight", "content_weight", "seed")
STYLE_STATS = ("crop", "image")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last checkpoint is still intact."""


@dataclass(frozen=True)
class TrainSettings:
    """Everything `adain train` takes. `content`/`styles` are folders, files or globs of images."""

    content: tuple[str, ...]
    styles: tuple[str, ...]
    out: Path
    encoder: str = "cd16x"
    encoder_weights: Path | None = None
    init_decoder: str | None = None  # None: random init; a registry model name or a decoder file
    iters: int = 160_000
    batch_size: int = 8
    crop: int = 256
    load_size: int = 512
    scale_jitter: float = 0.25
    flip: bool = True
    style_stats: str = "crop"  # "crop": of a random crop (the paper); "image": of the whole style image
    lr: float = 1e-4
    lr_decay: float = 5e-5
    style_weight: float = 10.0
    content_weight: float = 1.0
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: off); the average is shipped
    seed: int = 0
    save_every: int = 500
    sample_every: int = 500
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0  # CPU threads; 0: torch's default (one per core)
    resume: bool = False

    def __post_init__(self) -> None:
        for name in ("iters", "batch_size", "save_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not (0 < self.lr < math.inf and all(0 <= value < math.inf for value in
                                                (self.lr_decay, self.style_weight, self.content_weight))):
            raise UserError("--lr must be positive; --lr-decay, --style-weight and --content-weight non-negative "
                            "(all finite)")
        if self.load_size < self.crop:
            raise UserError(f"--load-size ({self.load_size}) must be at least --crop ({self.crop})")
        if not 0.0 <= self.ema < 1.0:
            raise UserError(f"--ema must lie in [0, 1), got {self.ema}")
        if self.style_stats not in STYLE_STATS:
            raise UserError(f"--style-stats must be one of {', '.join(STYLE_STATS)}, got {self.style_stats!r}")


class StyleBatch(NamedTuple):
    """The style side of a batch: statistics in the loss network (4 layers) and in the trained-for encoder."""

    vgg: tuple[A.StyleStats, ...]
    encoder: A.StyleStats


def _stack(batches: list[StyleBatch]) -> StyleBatch:
    def cat(stats: list[A.StyleStats]) -> A.StyleStats:
        return A.StyleStats(torch.cat([s.mean for s in stats]), torch.cat([s.std for s in stats]))
    layers = len(batches[0].vgg)
    return StyleBatch(tuple(cat([b.vgg[i] for b in batches]) for i in range(layers)), cat([b.encoder for b in batches]))


@dataclass(frozen=True)
class TrainResult:
    """Where a run stands after `Trainer.run`."""

    iteration: int
    elapsed_s: float
    last: dict[str, float]
    decoder: Path
    checkpoint: Path


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training (None: plain fp32). 'auto' takes bf16 where the hardware has it and, on a
    CPU, where it is faster there than fp32 (`select_precision`)."""
    if precision == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    dtype = select_precision(precision, device)
    return None if dtype == torch.float32 else dtype


def ema_decay(target: float, updates: int) -> float:
    """Decay of the weight average after n = `updates` updates: n / (n + 1), i.e. the plain mean of all
    weights so far, until that reaches `target`; the average never leans on the starting weights."""
    return min(target, updates / (updates + 1.0))


def learning_rate(settings: TrainSettings, iteration: int) -> float:
    """The reference implementation's inverse decay: lr / (1 + lr_decay * iteration)."""
    return settings.lr / (1.0 + settings.lr_decay * iteration)


class Trainer:
    """Owns the networks, the optimizer, the data and the run folder of one training run."""

    def __init__(self, settings: TrainSettings, store: WeightStore | None = None) -> None:
        self.settings = settings
        self.out = Path(settings.out)
        self._check_run_folder()
        store = store or WeightStore()
        self.device = select_device(settings.device)
        self.amp_dtype = autocast_dtype(settings.precision, self.device)
        self.augmentation = Augmentation(settings.crop, settings.scale_jitter, settings.flip)
        vgg = build_network("encoder", "vgg", store.resolve(store.registry.model("vgg").encoder))
        self.loss_net = LossNetwork(vgg).to(self.device)
        encoder_path = settings.encoder_weights or store.resolve(store.registry.model(settings.encoder).encoder)
        if settings.encoder == "vgg" and settings.encoder_weights is None:
            self.encoder = self.loss_net.vgg  # one network in both roles: the encoder's t is the loss target
        else:
            self.encoder = build_network("encoder", settings.encoder, encoder_path).to(self.device)
        self.encoder_sha256 = sha256_of(encoder_path)
        with torch.random.fork_rng(devices=[]):  # a random decoder init is reproducible, the global RNG untouched
            torch.manual_seed(settings.seed)
            self.decoder = self._initial_decoder(store).to(self.device).train().requires_grad_(True)
        self.contents = load_image_set(settings.content, settings.load_size, "content")
        self.styles = load_image_set(settings.styles, settings.load_size, "style")
        log.info("training data: %d content and %d style images", len(self.contents), len(self.styles))
        self.optimizer = torch.optim.Adam(self.decoder.parameters(), lr=settings.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.iteration, self.elapsed_before = 0, 0.0
        self._session_start = time.monotonic()
        self._updating = False  # True while the optimizer writes the weights: no consistent state to save
        self.average: dict[str, torch.Tensor] | None = None  # the EMA weights, when settings.ema > 0
        self.average_updates = 0
        if settings.resume:
            self._restore()
        if settings.ema and self.average is None:  # also when averaging is switched on for a resumed run
            self.average = {name: value.detach().clone() for name, value in self.decoder.state_dict().items()}
        self._rng_after_last_step = self.generator.get_state()
        self._image_stats: dict[int, StyleBatch] = {}  # whole-image style statistics, computed on first use
        self._samples = self._sample_inputs()

    # ------------------------------------------------------------------ setup
    def _check_run_folder(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out}: exists and is not a folder")
        checkpoint = self.out / CHECKPOINT
        if self.settings.resume and not checkpoint.is_file():
            raise UserError(f"{checkpoint}: no checkpoint to resume; run without --resume to start a new run")
        if not self.settings.resume and checkpoint.exists():
            raise UserError(f"{self.out} already holds a training run; pass --resume to continue it "
                            "or choose another --out")

    def _initial_decoder(self, store: WeightStore) -> nn.Module:
        """The starting weights; a resumed run takes them from its checkpoint, so --init-decoder is not read."""
        source = self.settings.init_decoder
        if source is None or self.settings.resume:
            return build_network("decoder", self.settings.encoder).requires_grad_(True)
        if source in store.registry.models:
            entry = store.registry.model(source)
            if entry.architecture != self.settings.encoder:
                raise UserError(f"--init-decoder {source}: a {entry.architecture} model, but the encoder is "
                                f"{self.settings.encoder}")
            return build_network("decoder", entry.architecture, store.resolve(entry.decoder))
        path = Path(source)
        if not path.is_file():
            raise UserError(f"--init-decoder {source}: neither a model name ({', '.join(store.registry.models)}) "
                            "nor a decoder file")
        return build_network("decoder", self.settings.encoder, path)

    def _sample_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fixed content/style pairs and their AdaIN features, stylized every `sample_every` iterations."""
        count = min(_SAMPLE_PAIRS, len(self.contents), len(self.styles))
        content = center_crops(self.contents, count, self.settings.crop).to(self.device)
        style = center_crops(self.styles, count, self.settings.crop).to(self.device)
        stats = self._style_batch(style) if self.settings.style_stats == "crop" else \
            _stack([self._whole_image_stats(i) for i in range(count)])
        with torch.no_grad():
            t = A.adain(self.encoder(content), stats.encoder)
        return content, style, t

    # ------------------------------------------------------------------ state
    def _data_record(self) -> dict[str, list[str]]:
        return {"content": [p.name for p in self.contents.paths], "styles": [p.name for p in self.styles.paths]}

    def state(self) -> dict[str, Any]:
        """Everything needed to continue this run bit for bit."""
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self.settings).items()}
        return {"format": _FORMAT, "settings": settings, "iteration": self.iteration, "elapsed_s": self.elapsed(),
                "decoder": self.decoder.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "generator": self.generator.get_state(),
                "data": self._data_record(), "encoder_sha256": self.encoder_sha256,
                "average": self.average, "average_updates": self.average_updates}

    def _restore(self) -> None:
        path = self.out / CHECKPOINT
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for a corrupt file
            raise UserError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise UserError(f"{path}: not an `adain train` checkpoint")
        changed = [name for name in _RUN_DEFINING if state["settings"][name] != getattr(self.settings, name)]
        if changed:
            was = ", ".join(f"--{n.replace('_', '-')} {state['settings'][n]}" for n in changed)
            raise UserError(f"{path}: the run was started with {was}; resume with the same values "
                            "or start a new run with another --out (--init-decoder can start from this one)")
        if state["data"] != self._data_record():
            raise UserError(f"{path}: the content/style images differ from the ones the run started with "
                            "(files added, removed or unreadable); resume with the same data")
        if state["encoder_sha256"] != self.encoder_sha256:
            raise UserError(f"{path}: the run was started with a different encoder file")
        self.decoder.load_state_dict(state["decoder"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        self.iteration, self.elapsed_before = state["iteration"], state["elapsed_s"]
        if self.settings.ema and state.get("average") is not None:
            self.average, self.average_updates = state["average"], state["average_updates"]
        log.info("resumed %s at iteration %d", self.out, self.iteration)

    def elapsed(self) -> float:
        """Training wall time over all sessions of this run (a paused process keeps counting)."""
        return self.elapsed_before + time.monotonic() - self._session_start

    def save(self) -> None:
        """Write the checkpoint (float32 weights) and the decoder (float16: half the size, and finer than the
        bf16/fp16 it runs in) atomically."""
        self.out.mkdir(parents=True, exist_ok=True)
        _atomic_save(self.state(), self.out / CHECKPOINT)
        _atomic_save({name: value.half() for name, value in self.shipped_weights().items()}, self.out / DECODER)

    def shipped_weights(self) -> dict[str, torch.Tensor]:
        """The weights a user gets: the moving average when there is one, else the current weights."""
        return self.average if self.average is not None else self.decoder.state_dict()

    def _save_after_interrupt(self) -> None:
        """Save the last complete iteration: the batch drawn for an unfinished one is drawn again on resume."""
        if self._updating:
            log.warning("interrupted while updating the weights; %s keeps the last saved iteration",
                        self.out / CHECKPOINT)
            return
        self.generator.set_state(self._rng_after_last_step)
        self.save()
        log.warning("interrupted: saved iteration %d to %s", self.iteration, self.out / CHECKPOINT)

    # ------------------------------------------------------------------ training
    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    @torch.no_grad()
    def _style_batch(self, style_rgb: torch.Tensor) -> StyleBatch:
        """Style statistics of images in the loss network and the encoder (shared when they are one network)."""
        with self._autocast():
            vgg = self.loss_net.style_targets(style_rgb)
            encoder = vgg[-1] if self.encoder is self.loss_net.vgg else A.channel_stats(self.encoder(style_rgb))
        return StyleBatch(vgg, encoder)

    def _whole_image_stats(self, index: int) -> StyleBatch:
        """Statistics of a whole style image, as the Stylizer takes them at inference (memoised)."""
        if index not in self._image_stats:
            image = self.styles.images[index][None].to(self.device).float().div_(255.0)
            self._image_stats[index] = self._style_batch(image)
        return self._image_stats[index]

    def losses(self, content: torch.Tensor, style: StyleBatch) -> Losses:
        """The current decoder's unweighted losses on a batch of content crops and styles (with gradients)."""
        with self._autocast():
            with torch.no_grad():
                target = adain_target(self.loss_net.vgg(content), style.vgg)
                t = target if self.encoder is self.loss_net.vgg else A.adain(self.encoder(content), style.encoder)
            return self.loss_net.losses(self.decoder(t), Targets(target, style.vgg))

    def step(self, content: torch.Tensor, style: StyleBatch) -> Losses:
        """One optimisation step on a batch of content crops and styles; returns the unweighted losses."""
        settings = self.settings
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(settings, self.iteration)
        losses = self.losses(content, style)
        total = losses.total(settings.style_weight, settings.content_weight)
        if not math.isfinite(total.item()):
            raise TrainingDiverged(f"loss became {total.item()} at iteration {self.iteration + 1}; lower --lr or "
                                   f"use --precision fp32, and resume from {self.out / CHECKPOINT}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self._updating = True
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._update_average()
        self.iteration += 1
        self._rng_after_last_step = self.generator.get_state()
        self._updating = False
        return losses

    @torch.no_grad()
    def _update_average(self) -> None:
        if self.average is None:
            return
        weight = 1.0 - ema_decay(self.settings.ema, self.average_updates)
        for name, value in self.decoder.state_dict().items():
            self.average[name].lerp_(value, weight)
        self.average_updates += 1

    def next_batch(self) -> tuple[torch.Tensor, StyleBatch]:
        """Random content crops, and the statistics of random style crops or whole style images."""
        settings = self.settings
        content = random_crops(self.contents, settings.batch_size, self.augmentation, self.generator)
        if settings.style_stats == "crop":
            style = self._style_batch(random_crops(self.styles, settings.batch_size, self.augmentation,
                                                   self.generator).to(self.device))
        else:
            picks = torch.randint(len(self.styles), (settings.batch_size,), generator=self.generator).tolist()
            style = _stack([self._whole_image_stats(i) for i in picks])
        return content.to(self.device), style

    def write_samples(self) -> Path:
        """A sheet of the fixed sample pairs: content | style | current stylization, one pair per row."""
        content, style, t = self._samples
        with torch.no_grad():
            output = torch.func.functional_call(self.decoder, self.shipped_weights(), (t,)).clamp(0, 1)
        rows = [[tensor_to_frames(image[None])[0].cpu().numpy() for image in row] for row in zip(content, style, output)]
        path = self.out / SAMPLES / f"iter_{self.iteration:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, compose_grid(rows, cell=min(self.settings.crop, 256)))
        return path

    def run(self, stop_requested: Callable[[], bool] = lambda: False) -> TrainResult:
        """Train until `iters`, saving every `save_every` iterations; when `stop_requested()` turns true after
        an iteration, or on Ctrl-C, save and raise KeyboardInterrupt."""
        settings = self.settings
        self._session_start = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        last: dict[str, float] = {}
        status = TextColumn("{task.fields[status]}")
        with _CsvLog(self.out / LOG, self.iteration) as csv_log, item_progress(status) as bar:
            task = bar.add_task("train", total=settings.iters, completed=self.iteration, status="")
            try:
                while self.iteration < settings.iters:
                    losses = self.step(*self.next_batch())
                    last = {"iteration": self.iteration, "elapsed_s": round(self.elapsed(), 2),
                            "lr": learning_rate(settings, self.iteration - 1), "content_loss": losses.content.item(),
                            "style_loss": losses.style.item()}
                    last["loss"] = settings.content_weight * last["content_loss"] + \
                        settings.style_weight * last["style_loss"]
                    csv_log.write(last)
                    bar.update(task, completed=self.iteration, status=f"content {last['content_loss']:.3f}  "
                               f"style {last['style_loss']:.3f}  lr {last['lr']:.2e}")
                    if self.iteration % settings.save_every == 0:
                        self.save()
                    if settings.sample_every and self.iteration % settings.sample_every == 0:
                        self.write_samples()
                    if stop_requested():
                        raise KeyboardInterrupt  # a signal asked to stop: saved below, like Ctrl-C
            except KeyboardInterrupt:
                self._save_after_interrupt()
                raise
        self.save()
        return TrainResult(self.iteration, self.elapsed(), last, self.out / DECODER, self.out / CHECKPOINT)


class _CsvLog:
    """Appends one row per iteration; on resume, first drops rows written after the checkpoint."""

    def __init__(self, path: Path, resume_iteration: int) -> None:
        self.path = path
        rows: list[dict[str, str]] = []
        if path.is_file() and resume_iteration > 0:
            with open(path, newline="") as handle:
                rows = [row for row in csv.DictReader(handle) if int(row["iteration"]) <= resume_iteration]
        self._handle = open(path, "w", newline="", buffering=1)
        self._writer = csv.DictWriter(self._handle, fieldnames=_LOG_FIELDS)
        self._writer.writeheader()
        self._writer.writerows(rows)

    def write(self, row: dict[str, float]) -> None:
        self._writer.writerow({k: row[k] for k in _LOG_FIELDS})

    def __enter__(self) -> _CsvLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def _atomic_save(obj: object, path: Path) -> None:
    """torch.save into a temporary file beside `path`, then rename: readers never see half a file."""
    write_atomically(path, lambda out: torch.save(obj, out))


def train(settings: TrainSettings, store: WeightStore | None = None) -> TrainResult:
    """Build a Trainer for the settings (new or resumed run) and train to `settings.iters`.

    `settings.threads` sets the process's CPU thread count: on a CPU shared with other jobs, one thread
    per niced training process is faster than one per core, whose threads keep waiting for each other.
    """
    if settings.threads:
        torch.set_num_threads(settings.threads)
    trainer = Trainer(settings, store)
    # Ctrl-C and SIGTERM (kill, a scheduler's preemption) stop after the iteration under way, which is then
    # saved: a signal landing in the middle of the weight update would otherwise leave nothing to save.
    with stop_on_signals(lambda: None, "stopping after this iteration, which is then saved") as stop:
        return trainer.run(lambda: stop.signal is not None)
