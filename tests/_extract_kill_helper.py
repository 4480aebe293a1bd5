"""Run one extraction into a store; the kill-and-resume tests run and kill this.

Usage: python _extract_kill_helper.py IMAGES STORE DELAY
       python _extract_kill_helper.py --cli DELAY ALIGNKIT-EXTRACT-ARGS...

The first form extracts a small, seeded CNN whose forward pass sleeps ``DELAY``
seconds per batch, so that a parent process can kill the run between chunk
writes. The second runs ``alignkit extract`` itself (the model built by
alignkit: ``--weights none``, a factory) with the same sleep added by a forward
hook (which changes no weight), and 8-row store chunks so that a kill can fall
between chunk writes of a small image set.
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn


class SlowNet(nn.Module):
    """A seeded conv net; sleeps in ``forward`` to widen the window for a kill."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        torch.manual_seed(1234)
        self.delay = delay
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.delay:
            time.sleep(self.delay)
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def main(images: str, store: str, delay: float) -> None:
    """Extract ``features`` and ``logits`` of :class:`SlowNet` into ``store``."""
    from alignkit.extract import Preprocess, extract_features

    torch.set_num_threads(1)
    extract_features(
        SlowNet(delay), images, ["features", "logits"], store=store, model_name="slownet",
        transform=Preprocess(resize=40, crop=32), batch_size=4, chunk_rows=8, device="cpu",
        num_workers=1, progress=False,
    )


def main_cli(delay: float, args: list[str]) -> None:
    """``alignkit extract ARGS`` with a sleep before every forward pass and 8-row chunks."""
    import alignkit.extract.models as models
    import alignkit.extract.runner as runner
    from alignkit.cli import main as cli_main

    torch.set_num_threads(1)
    build = models.load_model

    def slow_load(*a: object, **k: object) -> models.LoadedModel:
        lm = build(*a, **k)
        if delay:
            lm.module.register_forward_pre_hook(lambda _m, _x: time.sleep(delay))
        return lm

    models.load_model = slow_load
    runner._chunk_rows = lambda n, p, dtype, batch: 8
    cli_main(["extract", *args])


if __name__ == "__main__":
    if sys.argv[1] == "--cli":
        main_cli(float(sys.argv[2]), sys.argv[3:])
    else:
        main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
