"""The JND scale's Thurstone Case V constants (pwcmp's model), defined once for the project.

pwcmp (Perez-Ortiz & Mantiuk, "A practical guide and software for analysing pairwise comparison
experiments", arXiv:1712.03686) scales so that a difference of 1 JND (just-objectionable
difference, JOD) between two conditions is preferred by 75% of observers:

.. math:: P(i \\succ j) = \\Phi\\left(\\frac{q_i - q_j}{\\sigma}\\right), \\qquad
          \\sigma = \\frac{1}{\\Phi^{-1}(0.75)} = 1.4826.

ColorVideoVDP predicts in the same unit (JOD), so model observers answer with this formula too.
"""

from __future__ import annotations

import math

__all__ = ["JND_PREFERENCE", "SIGMA", "preference_from_jnd"]

#: Preference probability of a 1 JND difference.
JND_PREFERENCE = 0.75
#: Thurstone Case V scale in JND: ``1 / Phi^-1(0.75)`` rounded as pwcmp has it (1.4826).
SIGMA = 1.4826


def preference_from_jnd(d: float) -> float:
    """P(a preferred over b) for a quality difference ``d = q_a - q_b`` in JND: ``Phi(d / SIGMA)``."""
    return 0.5 * math.erfc(-d / (SIGMA * math.sqrt(2.0)))
