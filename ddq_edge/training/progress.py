"""Progress bars on stderr that stay out of the way when output is not a terminal."""
from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_bar(iterable: Iterable[T], desc: str, enabled: bool = True) -> tqdm:
    return tqdm(iterable, desc=desc, disable=not (enabled and sys.stderr.isatty()),
                leave=False, dynamic_ncols=True, file=sys.stderr)
