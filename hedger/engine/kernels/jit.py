"""The compile step shared by every numba kernel in hedger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def compiled(fn: F) -> F:
    """Compile ``fn`` in nopython mode, cached on disk, keeping its Python signature for mypy."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(fn))
