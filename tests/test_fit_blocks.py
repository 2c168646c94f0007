"""fit_curves in blocks (issue 16, item 2): the block size bounds the memory and changes
nothing else. Every curve is fitted on its own within a batch, so blocked and unblocked
fits must agree exactly (bit for bit), whatever the options."""

from __future__ import annotations

import numpy as np
import pytest

from cytosafe.curves import FitLimits, fit_curves, get_model
from cytosafe.errors import FitError

FIELDS = ("params", "se", "cov", "rss", "df", "sigma", "n_iter", "n_obs", "fixed")


def _curves(n: int, seed: int = 5):
    """Simulated 5PL standard curves as benchmarks/bench_fit.py draws them (8 standards
    in duplicate, 6 % CV plus an additive floor), hard ones included."""
    rng = np.random.default_rng(seed)
    conc = 10000 / 4.0 ** np.arange(8)[::-1]
    x = np.repeat(conc, 2)[None].repeat(n, 0)
    p = np.column_stack(
        [
            rng.uniform(20, 300, n),
            rng.uniform(0.6, 1.8, n),
            np.exp(rng.uniform(np.log(300), np.log(8000), n)),
            rng.uniform(1e4, 1e5, n),
            np.exp(rng.uniform(np.log(0.4), np.log(2.5), n)),
        ]
    )
    y = get_model("5PL").f(x, p)
    y = y * (1 + 0.06 * rng.standard_normal(y.shape)) + 5 * rng.standard_normal(y.shape)
    return x, np.abs(y)


def _assert_same(a, b):
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.reason, b.reason)
    assert a.weighting == b.weighting and a.covariance == b.covariance
    assert a.extra.keys() == b.extra.keys()
    for key in a.extra:
        np.testing.assert_array_equal(a.extra[key], b.extra[key])


@pytest.mark.parametrize("block_size", [1, 37, 250])
def test_blocked_fit_equals_one_batch_5pl_weighted(block_size):
    x, y = _curves(300)
    whole = fit_curves(x, y, model="5PL", weighting="1/y2", block_size=None, limits=FitLimits())
    blocked = fit_curves(
        x, y, model="5PL", weighting="1/y2", block_size=block_size, limits=FitLimits()
    )
    # The fixture exercises the retries from further starts and more than one status.
    assert len(np.unique(whole.status)) > 1
    _assert_same(whole, blocked)


def test_blocked_fit_equals_one_batch_with_every_option():
    x, y = _curves(120, seed=11)
    mask = np.ones_like(y, dtype=bool)
    mask[::7, 3] = False  # ragged curves
    y[::11, 5] = np.nan  # a missing well
    kwargs = dict(
        model="5PL",
        weighting="1/var",
        mask=mask,
        fixed={"g": np.where(np.arange(120) % 3 == 0, 1.0, np.nan)},
        bounds={"g": (0.1, 10.0)},
        covariance="observed",
        limits=FitLimits(),
    )
    whole = fit_curves(x, y, block_size=None, **kwargs)
    _assert_same(whole, fit_curves(x, y, block_size=16, **kwargs))
    assert "at_bound" in whole.extra


def test_blocked_fit_equals_one_batch_shared_x_and_4pl():
    x, y = _curves(90, seed=3)
    shared = x[0]  # one row of concentrations for every curve, broadcast block by block
    whole = fit_curves(x, y, model="4PL", weighting="1/y", block_size=None)
    _assert_same(whole, fit_curves(shared, y, model="4PL", weighting="1/y", block_size=8))


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_a_shared_series_of_standards_fits_as_its_rows_repeated(kernel):
    # A shared x stays a broadcast view and the model's safety box is computed once for it
    # (issue 16): the fits are those of the repeated rows, bit for bit, with and without a
    # missing point (which makes every row its own again).
    x, y = _curves(40, seed=21)
    kw = dict(model="5PL", weighting="1/y2", kernel=kernel, bounds={"g": (0.1, 10.0)})
    _assert_same(fit_curves(x, y, **kw), fit_curves(x[0], y, **kw))
    y[3, 4] = np.nan
    _assert_same(fit_curves(x, y, **kw), fit_curves(x[0], y, **kw))


def test_blocked_fit_equals_one_batch_with_user_weights_and_starts():
    x, y = _curves(60, seed=8)
    model = get_model("5PL")
    start = model.start(x, y, np.ones_like(y, dtype=bool))
    w = 1.0 / y
    whole = fit_curves(x, y, model=model, weights=w, start=start, block_size=None)
    _assert_same(whole, fit_curves(x, y, model=model, weights=w, start=start, block_size=7))


@pytest.mark.parametrize("bad", [0, -5, 2.5])
def test_block_size_must_be_a_positive_whole_number(bad):
    x, y = _curves(3)
    with pytest.raises(FitError, match="block_size"):
        fit_curves(x, y, block_size=bad)


def test_standard_errors_without_keeping_the_covariances():
    # keep_cov=False (the bulk path of a million curves): the same fits and standard
    # errors, block by block, without the (n, k, k) covariance.
    x, y = _curves(80, seed=21)
    whole = fit_curves(x, y, model="5PL", weighting="1/y2", block_size=None)
    lean = fit_curves(x, y, model="5PL", weighting="1/y2", block_size=9, keep_cov=False)
    assert whole.cov is not None and lean.cov is None
    for name in ("params", "se", "rss", "n_iter", "sigma"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(lean, name), err_msg=name)
    np.testing.assert_array_equal(whole.status, lean.status)
