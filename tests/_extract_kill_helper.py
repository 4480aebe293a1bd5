"""Run one extraction into a store; the kill-and-resume test runs and kills this.

Usage: python _extract_kill_helper.py IMAGES STORE DELAY

The model is a small, seeded CNN whose forward pass sleeps ``DELAY`` seconds
per batch, so that a parent process can kill the run between chunk writes.
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


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
