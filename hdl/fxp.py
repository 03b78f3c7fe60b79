"""Fixed-point operators of ``model/SPEC.md`` as Amaranth expressions (the RTL twins of
:mod:`spikeforge.model.fixedpoint`).

Each helper returns a combinational expression wide enough to hold the exact result, so that the
only places where a value is clamped are the explicit :func:`saturate` calls, exactly as in the
golden model:

- :func:`rshr` is ``shift_round``: add ``2**(s-1)`` then an arithmetic right shift (round half up),
  a left shift for ``s < 0``.
- :func:`csd` is ``csd_scale``: one :func:`rshr` per signed power of two, each rounded on its own,
  then added or subtracted (shifts and adds, no multiplier).
- :func:`saturate` is ``saturate``: a comparator pair and a mux, never a wrap.
"""

from amaranth.hdl import Mux

from spikeforge.model.fixedpoint import shift_round, smax, smin

__all__ = ["rshr", "csd", "saturate", "csd_extra_bits"]


#: ``x * 2**-shift`` rounded half up; ``x << -shift`` when ``shift < 0``. The golden model's own
#: function, applied to Amaranth values: ``x + 2**(shift-1)`` grows one bit in Amaranth, so the
#: addition never wraps, and ``>>`` of a signed value is arithmetic, as in numpy.
rshr = shift_round


def csd(x, terms, extra_shift=0):
    """``sum(sign * rshr(x, shift + extra_shift))`` over ``terms`` (each term rounded)."""
    total = None
    for sign, shift in terms:
        part = rshr(x, shift + extra_shift)
        if total is None:
            total = part if sign > 0 else -part
        else:
            total = total + part if sign > 0 else total - part
    return total


def csd_extra_bits(terms, extra_shift=0):
    """Bits by which :func:`csd` may exceed its input width (for sizing registers)."""
    grow = max(0, max(-(s + extra_shift) for _, s in terms))
    return grow + len(terms) + 1


def saturate(x, bits):
    """Clamp the signed expression ``x`` to a ``bits``-wide signed value (result ``signed(bits)``)."""
    hi, lo = smax(bits), smin(bits)
    clamped = Mux(x > hi, hi, Mux(x < lo, lo, x))
    if len(clamped) >= bits:
        # the value is inside the range of signed(bits): truncation keeps it exact
        return clamped[:bits].as_signed()
    return clamped.as_signed()
