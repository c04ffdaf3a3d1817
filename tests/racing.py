"""Run a function on several threads at the same moment, each on its own database connection."""

import multiprocessing
import threading
from collections.abc import Callable, Iterable

from django.db import connection


def race(target: Callable, arguments: Iterable, *, timeout: float = 60) -> tuple[list, list[BaseException]]:
    """Call `target(argument)` for every argument, all released together by a barrier.

    Returns (results in argument order, errors raised); each thread closes its own connection.
    """
    arguments = list(arguments)
    start = threading.Barrier(len(arguments))
    results: list = [None] * len(arguments)
    errors: list[BaseException] = []

    def run(index: int, argument) -> None:
        try:
            start.wait()
            results[index] = target(argument)
        except BaseException as error:  # returned to the test, which asserts on it
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, argument)) for i, argument in enumerate(arguments)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results, errors


def race_processes(target: Callable, arguments: Iterable, *, timeout: float = 120) -> list:
    """Call `target(argument, start)` for every argument, each in a process of its own (a fresh interpreter:
    its own connections, nothing shared with the test's), all released together by `start()`, which the
    target calls once it is ready. `target` must live in a module that imports without Django set up (not a
    test module importing models); Django is set up in each process first. Returns what each returned, in
    argument order."""
    arguments = list(arguments)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(arguments))  # handed to the processes as they start: a barrier is inherited
    with context.Pool(len(arguments), initializer=_process_ready, initargs=(barrier,)) as pool:
        pending = [pool.apply_async(_in_process, (target, argument)) for argument in arguments]
        return [result.get(timeout=timeout) for result in pending]


_barrier = None


def _process_ready(barrier) -> None:
    global _barrier
    _barrier = barrier
    import django

    django.setup()


def _in_process(target: Callable, argument):
    return target(argument, lambda: _barrier.wait(timeout=60))
