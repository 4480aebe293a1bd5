"""Tie rules, presets, id matching and ceilings: the numbers a paper quotes, checked by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.cli import cli
from alignkit.errors import MismatchError
from alignkit.score import odd_one_out


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _loop_accuracy(X: np.ndarray, T: np.ndarray, rule: str) -> tuple[float, int, int]:
    """An independent per-triplet loop over dot products, each rule as its reference states it.

    paper (the published code): argmin over the distances -s, wrong only if all three are
    equal; first (Brain-Score): argmax, first maximum; any-tie-wrong: any tie at the top is
    wrong.
    """
    hits = two = three = 0
    for i, j, k in T:
        s = [float(X[i] @ X[j]), float(X[i] @ X[k]), float(X[j] @ X[k])]
        top = max(s)
        n_top = sum(v == top for v in s)
        two += n_top == 2
        three += n_top == 3
        if rule == "paper":
            d = [-v for v in s]
            ok = d.index(min(d)) == 0 and not (s[0] == s[1] == s[2])
        elif rule == "first":
            ok = s.index(top) == 0
        else:
            ok = s[0] == top and n_top == 1
        hits += ok
    return hits / len(T), two, three


@pytest.fixture(scope="module")
def tie_case():
    """Integer features with known ties: identical rows give three-way ties, a pair of equal
    similarities at the top a two-way tie, and random small integers many more of both."""
    rng = np.random.default_rng(11)
    X = rng.integers(0, 3, size=(30, 3)).astype(np.float32)
    X[0] = X[1] = X[2] = [1, 1, 0]  # identical rows: every similarity among them ties
    X[3] = [0, 0, 1]
    T = np.array([rng.choice(30, 3, replace=False) for _ in range(4000)], dtype=np.int32)
    T[:40] = [0, 1, 2]  # three-way ties
    T[40:80] = [0, 1, 3]  # s_01 = 2 is the strict maximum
    T[80:120] = [3, 0, 1]  # s_30 = s_31 = 0 < s_01 = 2: pair (j, k) wins, no tie
    return X, T


def test_three_rules_three_accuracies_equal_an_independent_loop(tie_case):
    X, T = tie_case
    got = {}
    for rule in ("paper", "first", "any-tie-wrong"):
        res = odd_one_out(X, T, similarity="dot", ties=rule)
        acc, two, three = _loop_accuracy(X, T, rule)
        assert res.accuracy == acc, rule
        assert (res.n_ties2, res.n_ties3, res.n_ties) == (two, three, two + three)
        assert two > 0 and three >= 40
        got[rule] = res.accuracy
    assert got["any-tie-wrong"] < got["paper"] < got["first"]
    # under the deprecated alias the numbers are any-tie-wrong's, with a warning
    with pytest.warns(DeprecationWarning, match="any-tie-wrong"):
        old = odd_one_out(X, T, similarity="dot", ties="wrong")
    assert old.ties == "any-tie-wrong" and old.accuracy == got["any-tie-wrong"]
    assert any("tie rule" in n for n in odd_one_out(X, T, similarity="dot").notes)


def test_three_rules_on_the_simulated_gpu_equal_the_cpu(tie_case, tmp_path):
    X, T = tie_case
    T = T[:600]  # the constructed ties and enough random ones; the simulator is slow
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "T.npy", T)
    script = textwrap.dedent(
        f"""
        import numpy as np
        from alignkit.score import odd_one_out
        X = np.load({str(tmp_path / "X.npy")!r}); T = np.load({str(tmp_path / "T.npy")!r})
        for rule in ("paper", "first", "any-tie-wrong"):
            for budget in (1 << 30, 0):
                c = odd_one_out(X, T, similarity="dot", ties=rule, device="cpu",
                                memory_budget=budget, per_triplet=True)
                g = odd_one_out(X, T, similarity="dot", ties=rule, device="cuda",
                                memory_budget=budget, per_triplet=True)
                assert g.device == "cuda"
                assert (c.n_correct, c.n_ties2, c.n_ties3) == (g.n_correct, g.n_ties2, g.n_ties3)
                assert np.array_equal(c.choices, g.choices)
        print("ok")
        """
    )
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NUMBA_CACHE_DIR=str(tmp_path / "nc"))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_presets_set_everything_and_overrides_are_recorded():
    from alignkit.data import load_embedding, load_triplets

    E, T = load_embedding("spose-49d").values, load_triplets("things-test20k")
    bs = odd_one_out(E, T, preset="brainscore")
    assert (bs.similarity, bs.ties, bs.ceiling, bs.preset) == ("dot", "first", 0.6767, "brainscore")
    assert bs.accuracy == 0.63475
    assert bs.normalised == pytest.approx((0.63475 - 1 / 3) / (0.6767 - 1 / 3))
    assert bs.provenance["preset"] == "brainscore" and bs.overrides == []
    pp = odd_one_out(E, T, preset="paper2023")
    assert (pp.similarity, pp.ties, pp.ceiling) == ("cosine", "paper", 0.673)
    assert pp.accuracy == 0.6318
    mixed = odd_one_out(E, T, preset="paper2023", similarity="dot", ceiling=0.7)
    assert mixed.overrides == ["similarity", "ceiling"] and mixed.ceiling == 0.7
    assert mixed.provenance["overrides"] == ["similarity", "ceiling"]
    assert mixed.ceiling_source == "given (--ceiling)"


def test_brainscore_clips_a_score_above_its_ceiling_to_exactly_one(tmp_path):
    from alignkit.data import things_ids
    from alignkit.store import EmbeddingStore

    # features that reproduce every human choice: far above the ceiling
    rng = np.random.default_rng(0)
    X = np.eye(1854, dtype=np.float32)
    pairs = rng.choice(1854, size=(200, 2), replace=False)
    trip = []
    for a, b in pairs:
        X[a] = X[b] = X[a] + X[b]  # a and b share a feature: their pair is the most similar
        odd = int(rng.integers(1854))
        while odd in (a, b):
            odd = int(rng.integers(1854))
        trip.append((a, b, odd))
    path = tmp_path / "t.txt"
    np.savetxt(path, np.array(trip), fmt="%d")
    st = str(tmp_path / "s.zarr")
    EmbeddingStore(st, mode="a").write("m", "l", X, things_ids())
    r = run("score", "ooo", st, "--triplets", str(path), "--object-ids", "things",
            "--preset", "brainscore", "--format", "json", "--no-record")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    assert res["accuracy"] > 0.6767
    assert res["normalised"] == 1.0
    # the paper's normalised score is not clipped
    r = run("score", "ooo", st, "--triplets", str(path), "--object-ids", "things",
            "--preset", "paper2023", "--format", "json", "--no-record")
    assert json.loads(r.stdout)[0]["normalised"] > 1.0


def test_shuffled_rows_with_ids_and_refusal_without_ids(tmp_path, shared_data):
    from alignkit.store import EmbeddingStore

    E = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt").astype(np.float32)
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    perm = np.random.default_rng(1).permutation(len(ids))
    st = str(tmp_path / "s.zarr")
    store = EmbeddingStore(st, mode="a")
    ordered = store.write("ordered", "l", E, ids)
    store.write("shuffled", "l", E[perm], ids[perm])
    r = run("score", "ooo", st, "--triplets", "things-test20k", "--similarity", "dot",
            "--format", "json", "--no-record")
    assert r.exit_code == 0, r.output
    a, b = json.loads(r.stdout)
    assert a["accuracy"] == b["accuracy"] == 0.63475
    # one checksum per thing: the result links to its entry
    assert a["provenance"]["features_checksum"] == ordered.checksum
    assert a["provenance"]["entry_checksum"] == ordered.checksum
    # a plain triplet file says nothing about its objects: refused, with the way out
    plain = tmp_path / "plain.npy"
    np.save(plain, np.loadtxt(shared_data / "things" / "triplets_test20k_0based_oddlast.txt",
                              dtype=np.int64))
    other = str(tmp_path / "o.zarr")
    EmbeddingStore(other, mode="a").write("m", "l", E, [f"img{i}" for i in range(len(E))])
    r = run("score", "ooo", other, "--triplets", str(plain))
    assert r.exit_code == 2
    msg = r.output.strip().splitlines()[-1]
    assert "--object-ids" in msg and "--by-position" in msg and "m/l" in msg
    # by position, on request, and recorded
    r = run("score", "ooo", other, "--triplets", str(plain), "--by-position", "--similarity",
            "dot", "--format", "json", "--no-record")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    assert res["accuracy"] == 0.63475
    assert res["provenance"]["id_matching"] == "by position (--by-position)"
    # not THINGS ids: no ceiling and no normalised score
    assert res["ceiling"] is None and res["normalised"] is None


def test_covered_subset_is_explicit_and_counted(shared_data):
    from alignkit.data import load_embedding, load_triplets, things_ids

    E = load_embedding("spose-49d").values
    T = load_triplets("things-test20k")
    ids = things_ids()
    keep = np.ones(len(ids), bool)
    keep[:100] = False  # the first 100 concepts have no features
    with pytest.raises(MismatchError, match="--subset covered"):
        odd_one_out(E[keep], T, ids=ids[keep])
    res = odd_one_out(E[keep], T, ids=ids[keep], subset="covered", similarity="dot")
    covered = ~np.isin(T.array, np.flatnonzero(~keep)).any(axis=1)
    assert res.n_triplets == int(covered.sum()) < 20000
    ref = odd_one_out(E, T.array[covered], similarity="dot")
    assert res.n_correct == ref.n_correct
    assert res.provenance["n_triplets_kept"] == res.n_triplets
    assert res.provenance["n_triplets_given"] == 20000
    assert any("whose objects all have features" in n for n in res.notes)


def test_non_things_triplets_get_no_ceiling_unless_given():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 4))
    T = np.array([rng.choice(20, 3, replace=False) for _ in range(500)])
    res = odd_one_out(X, T)
    assert res.ceiling is None and res.normalised is None and res.ceiling_source is None
    assert odd_one_out(X, T, preset="brainscore").ceiling is None
    given = odd_one_out(X, T, ceiling=0.8)
    assert given.ceiling == 0.8 and given.normalised is not None
    # THINGS ids given explicitly make them THINGS triplets, checked id by id
    from alignkit.data import Triplets, things_ids

    tr = Triplets.from_array(T, n_objects=20).with_object_ids(things_ids()[:20])
    assert odd_one_out(X, tr).ceiling == 0.673
    tr = Triplets.from_array(T, n_objects=20).with_object_ids([f"x{i}" for i in range(20)])
    assert odd_one_out(X, tr).ceiling is None


def test_ooo_noise_ceiling_of_repeats_equals_the_formula(tmp_path):
    from alignkit.score.ceiling import ooo_noise_ceiling

    # known agreement: triple A answered 4 times (3 pick 2, 1 picks 0) -> 3/4; triple B 5 times
    # (all pick 7) -> 1; triple C 2 times, split -> 1/2; triple D once: not counted
    rows = [(0, 1, 2)] * 3 + [(1, 2, 0)] + [(5, 6, 7), (6, 5, 7)] * 2 + [(5, 6, 7)]
    rows += [(3, 4, 8), (3, 8, 4)] + [(9, 10, 11)]
    res = ooo_noise_ceiling(np.array(rows))
    assert res.ceiling == pytest.approx((3 / 4 + 1 + 1 / 2) / 3)
    assert (res.n_repeated, res.n_responses, res.n_triplets) == (3, 11, 12)
    assert res.se == pytest.approx(np.std([0.75, 1, 0.5], ddof=1) / np.sqrt(3))
    assert ooo_noise_ceiling(np.array(rows), min_repeats=5).ceiling == 1.0
    # a synthetic repeat file with a known agreement rate p: the ceiling is near p
    rng = np.random.default_rng(0)
    p, reps, n = 0.8, 9, 4000
    base = np.array([rng.choice(1000, 3, replace=False) for _ in range(n)])
    assert len(np.unique(np.sort(base, axis=1), axis=0)) == n  # distinct triples
    out = []
    for t in base:
        for _ in range(reps):
            odd = t[2] if rng.random() < p else t[rng.integers(2)]
            pair = [x for x in t if x != odd]
            out.append((pair[0], pair[1], odd))
    res = ooo_noise_ceiling(np.array(out))
    # the majority share of 9 draws with p = 0.8: E[max count]/9, by the binomial formula
    from scipy.stats import multinomial

    probs = [p, (1 - p) / 2, (1 - p) / 2]
    want = 0.0
    for a in range(reps + 1):
        for b in range(reps + 1 - a):
            c = reps - a - b
            want += multinomial.pmf([a, b, c], reps, probs) * max(a, b, c) / reps
    assert res.ceiling == pytest.approx(want, abs=4 * res.se)
    # from the command line, and as a ceiling for scoring
    path = tmp_path / "rep.txt"
    np.savetxt(path, np.array(rows), fmt="%d")
    r = run("data", "ceiling", str(path), "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ceiling"] == pytest.approx((3 / 4 + 1 + 1 / 2) / 3)
    X = rng.normal(size=(12, 3))
    got = odd_one_out(X, np.array(rows), ceiling=ooo_noise_ceiling(np.array(rows)))
    assert got.ceiling == pytest.approx(0.75) and "computed from" in got.ceiling_source


def _independent_rsa_ceiling(stack, compare):
    """rsatoolbox's definition written out: pool = mean of rank-transformed (spearman),
    z-scored (pearson) or RMS-scaled (cosine) vectors; bounds = mean over subjects."""
    from scipy.stats import pearsonr, rankdata, spearmanr

    iu = np.triu_indices(stack.shape[1], 1)
    V = np.array([m[iu] for m in stack])

    def pool(W):
        if compare == "spearman":
            return np.mean([rankdata(w) for w in W], axis=0)
        if compare == "pearson":
            return np.mean([(w - w.mean()) / w.std() for w in W], axis=0)
        return np.mean([w / np.sqrt(np.mean(w**2)) for w in W], axis=0)

    def comp(a, b):
        if compare == "spearman":
            return spearmanr(a, b)[0]
        if compare == "pearson":
            return pearsonr(a, b)[0]
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    up = np.mean([comp(pool(V), v) for v in V])
    lo = np.mean([comp(pool(np.delete(V, s, 0)), V[s]) for s in range(len(V))])
    return lo, up


@pytest.mark.parametrize("compare", ["spearman", "pearson", "cosine"])
def test_rsa_noise_ceiling_equals_an_independent_computation(compare, tmp_path):
    from alignkit.score.ceiling import rsa_noise_ceiling

    rng = np.random.default_rng(4)
    truth = rng.random((15, 15))
    truth = truth + truth.T
    stack = []
    for _ in range(6):
        m = truth + rng.normal(scale=0.5, size=(15, 15))
        m = np.abs(m + m.T)
        np.fill_diagonal(m, 0)
        stack.append(m)
    stack = np.array(stack)
    res = rsa_noise_ceiling(stack, compare=compare)
    lo, up = _independent_rsa_ceiling(stack, compare)
    assert res.lower == pytest.approx(lo, abs=1e-12)
    assert res.upper == pytest.approx(up, abs=1e-12)
    assert res.lower < res.upper and res.n_subjects == 6 and res.n_stimuli == 15
    np.save(tmp_path / "subj.npy", stack)
    r = run("data", "rsa-ceiling", str(tmp_path / "subj.npy"), "--compare", compare,
            "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["lower"] == pytest.approx(lo, abs=1e-12)


def test_rsa_noise_ceiling_of_a_real_meadows_export(shared_data):
    from alignkit.data.rdm import load_subject_rdms
    from alignkit.score.ceiling import rsa_noise_ceiling

    path = shared_data / "rdm" / "Meadows_myExp_v_v1_arrangement_1D.mat"
    stack, how = load_subject_rdms(path)
    assert stack.shape == (3, 118, 118) and "3 participants" in how
    res = rsa_noise_ceiling(stack)
    lo, up = _independent_rsa_ceiling(stack, "spearman")
    assert (res.lower, res.upper) == (pytest.approx(lo, abs=1e-12), pytest.approx(up, abs=1e-12))
    r = run("data", "rsa-ceiling", str(path))
    assert r.exit_code == 0, r.output
    r = run("data", "rsa-ceiling", str(shared_data / "rdm" / "RDM48_triplet.mat"))
    assert r.exit_code == 2 and "--key" in r.output


def test_probe_matches_features_by_id(tmp_path, shared_data):
    from alignkit.store import EmbeddingStore

    E = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt").astype(np.float32)
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    perm = np.random.default_rng(3).permutation(len(ids))
    st = str(tmp_path / "s.zarr")
    store = EmbeddingStore(st, mode="a")
    store.write("ordered", "l", E, ids)
    store.write("shuffled", "l", E[perm], ids[perm])
    out = {}
    for model in ("ordered", "shuffled"):
        r = run("probe", st, "--model", model, "--layer", "l", "--triplets", "things-test20k",
                "--lambdas", "1e-3", "--folds", "3", "--no-save", "--no-record",
                "--format", "json")
        assert r.exit_code == 0, r.output
        out[model] = json.loads(r.stdout)
    assert out["ordered"]["probing_accuracy"] == pytest.approx(
        out["shuffled"]["probing_accuracy"], abs=1e-6)
    assert out["ordered"]["zero_shot_accuracy"] == pytest.approx(
        out["shuffled"]["zero_shot_accuracy"], abs=1e-12)


def test_a_probe_scored_on_its_training_triplets_is_labelled_in_sample(tmp_path, shared_data):
    from alignkit.store import EmbeddingStore

    E = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt").astype(np.float32)
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    st = str(tmp_path / "s.zarr")
    EmbeddingStore(st, mode="a").write("m", "l", E, ids)
    r = run("probe", st, "--model", "m", "--layer", "l", "--triplets", "things-test20k",
            "--lambdas", "1e-3", "--folds", "3", "--name", "pr", "--no-record")
    assert r.exit_code == 0, r.output
    T = np.loadtxt(shared_data / "things" / "triplets_test20k_0based_oddlast.txt", dtype=np.int64)
    np.save(tmp_path / "other.npy", T[:5000])
    got = {}
    for src in ("things-test20k", str(tmp_path / "other.npy")):
        r = run("score", "ooo", st, "--triplets", src, "--object-ids", "things",
                "--transform", "pr", "--format", "json", "--no-record")
        assert r.exit_code == 0, r.output
        got[src] = json.loads(r.stdout)[0]
    assert got["things-test20k"]["in_sample"] is True
    assert any("in-sample" in n for n in got["things-test20k"]["notes"])
    assert got[str(tmp_path / "other.npy")]["in_sample"] is False
    r = run("score", "ooo", st, "--triplets", "things-test20k", "--format", "json", "--no-record")
    assert json.loads(r.stdout)[0]["in_sample"] is None  # no transform
