"""``alignkit demo``: the main job on the sample data that ships with alignkit."""

from __future__ import annotations

import click

from alignkit.commands._options import SEED
from alignkit.commands._output import emit


@click.command()
@click.option("--out", type=click.Path(file_okay=False), default="alignkit-demo", show_default=True,
              help="Folder for the demo's store and report.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples for the accuracy intervals.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="0 to 4294967295.")
@click.option("--images", "images", type=click.Path(exists=True), default=None,
              help="THINGS images: a folder (one folder per concept, or one image per concept) "
                   "or the THINGS .zip read in place (password from ALIGNKIT_THINGS_PASSWORD). "
                   "MobileNetV2 is extracted on one image per concept and scored on the real "
                   "triplets among those concepts.")
@click.option("--fetch-images", is_flag=True,
              help="Download the THINGSplus images (public data registry) and use them as --images.")
@click.option("--no-extract", is_flag=True,
              help="Without --images: skip the MobileNetV2 extraction check on the sample photographs.")
def demo(out: str, bootstrap: int, seed: int, images: str | None, fetch_images: bool,
         no_extract: bool) -> None:
    """Run the whole idea on bundled data and write a report.

    With --images, extracts the pretrained MobileNetV2 on one THINGS image per
    concept and scores that network zero-shot and with the paper's linear probe
    on the real THINGS triplets among those concepts. Always: stores the SPoSE
    49d human concept embedding and a distorted copy of it; scores both on
    20,000 real THINGS odd-one-out triplets (bootstrap 95% intervals, per
    concept dimension); learns the paper's linear probe on the distorted copy
    from simulated THINGS judgments and tests it on the real ones; runs RSA
    against a 48-object human RDM; records everything and writes a report.
    Without images no network is scored; nine sample photographs then only
    check that extraction works (their top ImageNet classes are printed).

    \b
    Examples:
      alignkit demo --out /tmp/alignkit-demo
      alignkit demo --out /tmp/alignkit-demo --images THINGS/object_images
    """
    from alignkit.demo import run_demo

    if no_extract and (images or fetch_images):
        raise click.UsageError("--no-extract contradicts --images / --fetch-images")
    res = run_demo(out, bootstrap=bootstrap, seed=seed, extract=not no_extract,
                   log=lambda m: click.echo(m, err=True), images=images,
                   fetch_images=fetch_images)
    if res.top_classes:
        click.echo("\nExtraction check (not scored): MobileNetV2 (ImageNet weights) top class of "
                   "each bundled sample photograph:")
        emit([{"image": k, "top class": v} for k, v in res.top_classes.items()], "table")
    if res.network:
        n = res.network[0].n_triplets
        click.echo(f"\n{res.network_note}.\nZero-shot odd-one-out accuracy on those {n:,} real "
                   "THINGS triplets (cosine; chance 0.333):")
        rows = [{"model": r.model, "layer": r.layer, "similarity": r.similarity, "ties": r.ties,
                 "accuracy": r.accuracy, "ci_low": r.ci_low, "ci_high": r.ci_high}
                for r in res.network]
        p = res.network_probe
        if p:
            rows.append({"model": p["model"], "layer": f"{p['layer']}, probed", "similarity": "dot",
                         "ties": p["ties"], "accuracy": p["accuracy"], "ci_low": p["ci_low"],
                         "ci_high": p["ci_high"]})
        emit(rows, "table")
        if p:
            click.echo(f"(probe trained on {p['trained_on']:,} judgments simulated from the SPoSE "
                       "model among the same concepts and tested on the real triplets; the objects "
                       "are not held out, so with few concepts it can fit them whatever the images)")
    elif res.network_note:
        click.echo(f"\n{res.network_note}")
    first = res.ooo[0]
    ceiling = (f"noise ceiling {first.ceiling} ({first.ceiling_source})"
               if first.ceiling is not None else "no noise ceiling")
    click.echo(f"\nZero-shot odd-one-out accuracy on {first.n_triplets:,} real THINGS triplets "
               f"(chance 0.333, {ceiling}; {first.ci_level:.0%} bootstrap intervals):")
    drop = {"layer", "ceiling"} | ({"preset"} if all(r.preset is None for r in res.ooo) else set())
    emit([{k: v for k, v in r.row().items() if k not in drop} for r in res.ooo], "table")
    best = next(r for r in res.ooo if r.model == "spose" and r.similarity == "dot")
    if best.per_concept is not None:
        rows = sorted((c for c in best.per_concept.rows() if c["triplets"] >= 200),
                      key=lambda c: -c["accuracy"])
        click.echo("\nPer concept dimension (spose, dot), best and worst captured "
                   "(dimensions with at least 200 triplets):")
        emit(rows[:3] + rows[-3:], "table")
    p = res.probe
    click.echo(f"\nLinear probe on the distorted copy (trained on {p['trained_on']:,} simulated "
               "judgments; accuracy on the 20,000 real triplets, dot product):")
    emit([
        {"features": "spose (human embedding)", "accuracy": p["human_embedding_accuracy"],
         "ci_low": None, "ci_high": None},
        {"features": "spose-distorted, zero-shot", "accuracy": p["zero_shot_accuracy"],
         "ci_low": None, "ci_high": None},
        {"features": "spose-distorted, probed", "accuracy": p["accuracy"],
         "ci_low": p["ci_low"], "ci_high": p["ci_high"]},
    ], "table")
    lost = p["human_embedding_accuracy"] - p["zero_shot_accuracy"]
    if lost > 0:
        click.echo(f"the probe recovered {100 * (p['accuracy'] - p['zero_shot_accuracy']) / lost:.0f}% "
                   "of the accuracy the distortion cost")
    click.echo("\nRSA against the 48-object human RDM (Spearman, 10,000 permutations):")
    emit([{k: v for k, v in r.row().items() if k in ("model", "transform", "rsa", "p_value")}
          for r in res.rsa], "table")
    if res.calibration:
        c = res.calibration[0]
        click.echo(f"\nCalibration of the choice probabilities softmax(T s) (dot; T fitted on "
                   f"held-out objects, {c.folds} folds; ECE over {c.bins} equal-width bins, on "
                   f"the {c.n_evaluated:,} held-out triplets):")
        emit([{"model": r.model, "T": r.temperature, "ECE": r.ece, "ci_low": r.ci_low,
               "ci_high": r.ci_high, "NLL": r.nll} for r in res.calibration], "table")
    if res.concept_ridge:
        click.echo("\nSPoSE dimensions predicted from features (ridge, alpha per dimension by "
                   "leave-one-out; 5 object folds; mean out-of-fold R²):")
        emit([{"features": f"{r.model} ({r.layer})", "mean_R2": r.mean_r2, "ci_low": r.ci_low,
               "ci_high": r.ci_high} for r in res.concept_ridge], "table")
    click.echo(f"\nstore:  {res.store}")
    if res.report:
        click.echo(f"report: {res.report}")
    click.echo(f"({res.seconds:.0f} s)")
