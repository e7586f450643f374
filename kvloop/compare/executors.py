"""Where units of work run: here, one after another, or as Ray tasks in parallel.

``run(fn, payloads)`` yields ``(index, result)`` as each unit finishes (not in order under
Ray), so the caller records every finished unit at once and an interrupted comparison loses
at most the units that were running. A unit that raises stops the comparison with the
unit's error; the finished ones are already recorded.

Ray (``ray: true`` in the config, or ``--ray``): a local Ray started on this machine's cores,
or the cluster at ``ray_address`` (``auto``, ``ray://host:10001``). Every task asks for
``cpus_per_task`` CPUs and sets torch's threads to match, so 2 tasks share a 2-core machine
without oversubscribing it; with GPUs in the cluster give ``device: cuda`` and Ray's
``num_gpus`` through ``gpus_per_task``. Workers must see the comparison's output folder
(one machine, or a shared file system on a cluster).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kvloop.compare.specs import Unit

log = logging.getLogger(__name__)

UnitFn = Callable[[Any], dict[str, Any]]  # a function of ``kvloop.compare.units``


class LocalExecutor:
    """Units in this process, in order."""

    name = "local"

    def run(self, fn: UnitFn, payloads: Sequence[Unit]
            ) -> Iterator[tuple[int, dict[str, Any]]]:
        for i, p in enumerate(payloads):
            yield i, fn(p)

    def close(self) -> None:
        pass


class RayExecutor:
    """Units as Ray tasks (see the module docstring)."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_task: int = 1,
                 gpus_per_task: float = 0.0) -> None:
        try:
            import ray
        except ImportError as e:
            raise RuntimeError("ray is not installed: pip install 'ray>=2.9' (or run without "
                               "--ray)") from e
        self.ray = ray
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=True)
            else:
                ray.init(include_dashboard=False, log_to_driver=True)
        self.cpus, self.gpus = cpus_per_task, gpus_per_task
        log.info("ray: %s", ray.cluster_resources())

    def run(self, fn: UnitFn, payloads: Sequence[Unit]
            ) -> Iterator[tuple[int, dict[str, Any]]]:
        remote = self.ray.remote(num_cpus=self.cpus, num_gpus=self.gpus)(fn)
        pending = {remote.remote(p.with_threads(self.cpus)): i
                   for i, p in enumerate(payloads)}
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                yield i, self.ray.get(ref)

    def close(self) -> None:
        self.ray.shutdown()
