"""Integer primitives of the fixed-point arithmetic, each the exact twin of a hardware operator.

Every function takes and returns int64 numpy arrays (or Python ints). There is no float anywhere in
this module: it is the vocabulary that `model/SPEC.md` is written in and that the RTL implements.

- :func:`saturate` clamps to a signed width (hardware: a comparator pair and a mux, never a wrap).
- :func:`shift_round` is an arithmetic right shift with round-half-up (add ``2**(s-1)`` then shift),
  or a left shift for a negative amount.
- :func:`csd_terms` turns a constant such as ``alpha = 0.75`` into signed powers of two, so a constant
  multiplication becomes shifts and adds; :func:`csd_scale` applies it, each term rounded on its own,
  exactly as a shift-and-add datapath computes it.
"""

from fractions import Fraction

import numpy as np

__all__ = ["saturate", "shift_round", "csd_terms", "csd_scale", "signed_bits", "smin", "smax"]


def smin(bits):
    """Most negative value of a ``bits``-wide two's complement number."""
    return -(1 << (bits - 1))


def smax(bits):
    """Most positive value of a ``bits``-wide two's complement number."""
    return (1 << (bits - 1)) - 1


def saturate(x, bits):
    """Clamp ``x`` to the range of a signed ``bits``-wide number."""
    if isinstance(x, (int, np.integer)):
        return int(min(max(int(x), smin(bits)), smax(bits)))
    return np.clip(x, smin(bits), smax(bits))


def shift_round(x, shift):
    """``x * 2**-shift`` rounded half up (towards +inf on ties); a left shift when ``shift <= 0``."""
    if shift > 0:
        return (x + (1 << (shift - 1))) >> shift
    if shift < 0:
        return x << (-shift)
    return x


def signed_bits(lo, hi=None):
    """Fewest bits of a signed number that holds every value in ``[lo, hi]`` (``hi = -lo``
    when only one bound is given)."""
    lo, hi = (-abs(int(lo)), abs(int(lo))) if hi is None else (int(lo), int(hi))
    bits = 1
    while smin(bits) > lo or smax(bits) < hi:
        bits += 1
    return bits


def csd_terms(value, max_terms, max_shift=24):
    """Signed powers of two ``[(sign, shift), ...]`` with ``value == sum(sign * 2**-shift)``.

    Uses the canonical signed-digit (non-adjacent) form, which has the fewest non-zero digits.
    Returns ``None`` when ``value`` needs more than ``max_terms`` terms or a shift outside
    ``[-max_shift, max_shift]``, so callers can say what to change.
    """
    frac = Fraction(value).limit_denominator(1 << 40)
    if frac != Fraction(value) or frac <= 0:
        return None
    # scale to an integer, then take the non-adjacent form of that integer
    scale = 0
    while frac.denominator != 1:
        frac *= 2
        scale += 1
        if scale > max_shift:
            return None
    n = int(frac)
    terms = []
    position = 0
    while n != 0:
        if n & 1:
            digit = 2 - (n & 3)          # +1 or -1
            n -= digit
            terms.append((digit, scale - position))
        n >>= 1
        position += 1
    if len(terms) > max_terms or any(abs(s) > max_shift for _, s in terms):
        return None
    terms.sort(key=lambda term: term[1])
    return tuple(terms)


def csd_scale(x, terms, extra_shift=0):
    """``x * sum(sign * 2**-(shift + extra_shift))``, each term rounded by :func:`shift_round`."""
    total = 0
    for sign, shift in terms:
        part = shift_round(x, shift + extra_shift)
        total = total + part if sign > 0 else total - part
    return total
