"""The main job on bundled data: store human-concept features, score them, RSA.

``alignkit demo`` (and :func:`run_demo`) imports the bundled SPoSE 49d THINGS
concept embedding into an embedding store together with a distorted copy of it
(a random rotation with anisotropic scaling plus noise: a stand-in for a model
whose representation is related to the human one only up to a linear map),
scores both on the bundled 20,000 real THINGS odd-one-out triplets with
bootstrap intervals and a per-concept breakdown, and runs RSA against the
bundled 48-object human RDM. Everything it needs ships with the package.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DemoResult", "distort", "run_demo"]


@dataclass
class DemoResult:
    store: str
    ooo: list[Any] = field(default_factory=list)
    rsa: list[Any] = field(default_factory=list)
    seconds: float = 0.0


def distort(X: np.ndarray, *, seed: int = 0, noise: float = 0.5) -> np.ndarray:
    """A random rotation with log-uniform scaling (0.1 to 10) plus Gaussian noise.

    The noise is relative to the mean absolute feature value.
    """
    rng = np.random.default_rng(seed)
    p = X.shape[1]
    Q, R = np.linalg.qr(rng.normal(size=(p, p)))
    Q *= np.sign(np.diag(R))  # a uniformly random rotation
    scales = np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=p))
    Z = (X @ Q) * scales
    return Z + noise * np.abs(Z).mean() * rng.normal(size=Z.shape)


def run_demo(out: str, *, bootstrap: int = 1000, seed: int = 0, log: Any = None) -> DemoResult:
    """Run the demo into the folder ``out`` (created; an existing demo store is replaced)."""
    from alignkit.data import load_embedding, load_rdm, load_triplets
    from alignkit.score import score_store_ooo, score_store_rsa
    from alignkit.store import EmbeddingStore

    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "demo.zarr")
    emb = load_embedding("spose-49d")
    st = EmbeddingStore(path, mode="a")
    attrs = {"source": f"bundled {emb.source}", "source_checksum": emb.checksum}
    st.write("spose", "49d", emb.values.astype(np.float32), emb.ids, attrs=attrs, overwrite=True)
    st.write(
        "spose-distorted", "49d",
        distort(emb.values, seed=seed).astype(np.float32), emb.ids,
        attrs={**attrs, "distortion": f"rotation, log-uniform scaling 0.1-10, noise 0.5, seed {seed}"},
        overwrite=True,
    )
    say(f"stored the SPoSE 49d embedding and a distorted copy in {path}")
    triplets = load_triplets("things-test20k")
    res = DemoResult(store=path)
    for sim in ("dot", "cosine"):
        res.ooo += score_store_ooo(st, triplets, similarity=sim, bootstrap=bootstrap, seed=seed,
                                   concepts="spose-49d")
    say(f"scored {len(triplets)} real THINGS triplets")
    res.rsa = score_store_rsa(st, load_rdm("rdm48"), rdm_method="dot", permutations=10000, seed=seed)
    say("ran RSA against the 48-object human RDM")
    res.seconds = time.perf_counter() - t0
    return res
