"""Range-checked number types for argparse (the CLI) and IPython's magic_arguments (the magics): light enough
for ``%load_ext nbops`` (argparse only)."""
from __future__ import annotations

import argparse


def number(kind=int, minimum: float | None = None, maximum: float | None = None, above: float | None = None):
    """An argparse ``type`` for a number in range: ``number(int, 1)`` (1 or more), ``number(int, 1, 65535)``,
    ``number(float, above=0)`` (greater than 0). Out of range is rejected with one line saying what is accepted."""
    what = "a whole number" if kind is int else "a number"
    if above is not None:
        rng = f"greater than {above:g}" + (f" and at most {maximum:g}" if maximum is not None else "")
    elif minimum is not None and maximum is not None:
        rng = f"from {minimum:g} to {maximum:g}"
    elif minimum is not None:
        rng = f"of {minimum:g} or more"
    else:
        rng = f"of {maximum:g} or less" if maximum is not None else ""

    def convert(text: str):
        try:
            v = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}; give {what} {rng}".rstrip()) from None
        if v != v or v in (float("inf"), float("-inf")) or (minimum is not None and v < minimum) or \
                (maximum is not None and v > maximum) or (above is not None and v <= above):
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {what} {rng}")
        return v

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert
