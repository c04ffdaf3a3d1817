"""Run a function on several threads at the same moment, each on its own database connection."""

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
