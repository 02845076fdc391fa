"""Batches made ahead in host threads and handed out in order: the input pipeline's one piece of concurrency.

    for batch in ahead(pool, make_batch, range(start, stop), depth=8):   # make_batch(i) -> a batch
      ...

numpy's array work and PIL's decoding and resizing release the GIL, so threads overlap them with each
other and with the training step; each batch is made by one call, whose result depends only on its
argument, so the stream is the same whatever the thread count.
"""

import collections
import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def ahead(pool: concurrent.futures.Executor, make: Callable[[int], T], items: Iterable[int], depth: int) -> Iterator[T]:
  """make(item) for each item, in order, with up to `depth` of them in flight in `pool`.

  Leaving the loop early cancels the batches not yet started; an error in `make` is raised where its
  batch would have been yielded.
  """
  items = iter(items)
  pending: collections.deque[concurrent.futures.Future] = collections.deque()
  try:
    for item in items:
      pending.append(pool.submit(make, item))
      if len(pending) >= depth:
        break
    while pending:
      result = pending.popleft().result()
      for item in items:
        pending.append(pool.submit(make, item))
        break
      yield result
  finally:
    for future in pending:
      future.cancel()
