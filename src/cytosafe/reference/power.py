"""How likely a donor panel of a given size is to show a published response.

A paper that says how many donors its cytokine release assay needs for 90 % power (at
the 5 % level) says, implicitly, how large the response is against the donor-to-donor
spread: Vessillier et al. 2015 (Table 2) give those numbers for paired t-tests on log
data against the isotype control. That standardised effect (Cohen's d of the paired
differences, :func:`effect_for_power`) gives the power of any other panel
(:func:`t_test_power`): the probability that a study of ``n`` donors shows the response
(:func:`detection_probability`), a graded answer where the calibration's call
(:func:`cytosafe.reference.evaluate`) is a yes or no at 90 %.

The power is that of the t-test on the non-central t distribution, as R's
``power.t.test`` computes it (R Core Team, ``stats``; the default ``strict = FALSE``:
rejection in the direction of the effect, with the two-sided critical value). Three
assumptions are the curators', not the papers': the paper's donor count came from this
same test (Vessillier et al. 2015 name paired t-tests on log data, 90 % power, 5 %
level; a normal approximation would give a smaller effect for a small n); a published
donor count is read as exact (the smallest effect consistent with it, since a paper
rounds its n up: the probabilities are then on the low side); and the differences are
taken as normal on the paper's scale.

The figures are a planning aid for a study's size; CytoSafe's calls support, never
replace, a toxicologist's judgement.
"""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Real

from cytosafe.errors import InputError

__all__ = ["KINDS", "chance_text", "detection_probability", "effect_for_power", "t_test_power"]

#: The t-tests: ``paired`` (= one-sample on the paired differences: n - 1 degrees of
#: freedom, non-centrality d * sqrt(n)) and ``two_sample`` (n per group: 2 (n - 1)
#: degrees of freedom, non-centrality d * sqrt(n / 2)), as in R's ``power.t.test``.
KINDS = ("paired", "two_sample")


def _check(n: float, alpha: float, kind: str) -> None:
    if kind not in KINDS:
        raise InputError(repr(kind), field="kind", expected=" or ".join(map(repr, KINDS)))
    if isinstance(n, bool) or not (isinstance(n, Real) and math.isfinite(n) and n >= 2):
        raise InputError(f"{n!r} donors", field="donors", expected="a number of donors >= 2")
    if not 0 < alpha < 1:
        raise InputError(repr(alpha), field="alpha", expected="a level between 0 and 1")


def t_test_power(n: float, effect: float, *, alpha: float = 0.05, kind: str = "paired") -> float:
    """The power of a two-sided t-test at level ``alpha`` for a standardised ``effect``.

    ``n`` is the number of donors (pairs), or per group for ``kind="two_sample"``; it may
    be fractional, as in a sample-size search. Rejection counts in the direction of the
    effect only (R's ``power.t.test`` with ``strict = FALSE``).

    Examples
    --------
    R's ``power.t.test(n = 20, delta = 1)`` (two samples, sd 1) prints power = 0.8689528:

    >>> round(t_test_power(20, 1.0, kind="two_sample"), 7)
    0.8689528
    """
    from scipy.stats import nct, t

    _check(n, alpha, kind)
    if not (isinstance(effect, Real) and math.isfinite(effect)):
        raise InputError(repr(effect), field="effect", expected="a finite standardised effect")
    df, ncp = (
        (n - 1, effect * math.sqrt(n))
        if kind == "paired"
        else (2 * (n - 1), effect * math.sqrt(n / 2))
    )
    return float(nct.sf(t.ppf(1 - alpha / 2, df), df, ncp))


@lru_cache(maxsize=1024)
def effect_for_power(
    n: float, power: float = 0.9, *, alpha: float = 0.05, kind: str = "paired"
) -> float:
    """The standardised effect that ``n`` donors detect with ``power`` at level ``alpha``.

    Examples
    --------
    >>> d = effect_for_power(4)  # PBMC solid phase for TGN1412, Vessillier 2015 Table 2
    >>> round(t_test_power(4, d), 6)
    0.9
    """
    from scipy.optimize import brentq

    _check(n, alpha, kind)
    if not 0 < power < 1:
        raise InputError(repr(power), field="power", expected="a probability between 0 and 1")
    floor = t_test_power(n, 0.0, alpha=alpha, kind=kind)  # alpha / 2: no effect at all
    if power <= floor:
        return 0.0
    hi = 1.0
    while t_test_power(n, hi, alpha=alpha, kind=kind) < power:
        hi *= 2.0
        if hi > 1e6:  # pragma: no cover - n >= 2 reaches any power below 1 long before
            raise InputError(f"power {power} with {n} donors", field="power")
    return float(
        brentq(lambda d: t_test_power(n, d, alpha=alpha, kind=kind) - power, 0.0, hi, xtol=1e-12)
    )


def detection_probability(
    donors_for_power: int, donors: int, *, power: float = 0.9, alpha: float = 0.05
) -> float:
    """The probability that a study of ``donors`` shows a response whose paper needs
    ``donors_for_power`` donors for ``power`` (paired t-test at level ``alpha``); 0 for
    a single donor, which has no paired test.

    Examples
    --------
    TGN1412 in PBMC high-density pre-culture needs 27 donors for 90 % power (Vessillier et
    al. 2015, Table 2); a panel of 9 shows it about 4 times in 10:

    >>> round(detection_probability(27, 9), 2)
    0.4
    >>> round(detection_probability(27, 27), 2)
    0.9
    """
    if donors < 2:
        return 0.0  # one donor has no paired test
    d = effect_for_power(float(donors_for_power), power, alpha=alpha)
    return t_test_power(float(donors), d, alpha=alpha)


def chance_text(p: float, space: str = " ") -> str:
    """A probability as a percentage that never rounds to a certainty: ``> 99 %`` and
    ``< 1 %`` at the ends (a t-test's power approaches 1 but never reaches it), ``–`` for
    none.

    Examples
    --------
    >>> chance_text(0.402), chance_text(0.9999966), chance_text(0.0), chance_text(0.4, "")
    ('40 %', '> 99 %', '0 %', '40%')
    """
    if p is None or math.isnan(p):
        return "–"
    if p > 0.99:
        return f"> 99{space}%"
    if 0 < p < 0.01:
        return f"< 1{space}%"
    return f"{100 * p:.0f}{space}%"
