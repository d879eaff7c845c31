"""The compile step shared by every numba kernel in hedger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
from numba.extending import register_jitable

F = TypeVar("F", bound=Callable[..., Any])


def compiled(fn: F) -> F:
    """Compile ``fn`` in nopython mode, cached on disk, keeping its Python signature for mypy."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(fn))


def jitable(fn: F) -> F:
    """Make ``fn`` callable both as plain Python (no dispatch cost) and from inside compiled
    kernels, where numba compiles it inline: how one rule serves a Python path and its compiled
    twin from a single definition."""
    jitted: F = register_jitable(fn)
    return jitted
