import threading
import time

import pytest

from scoring.services.imports.run import in_background


def test_items_arrive_in_order_and_the_reader_thread_ends():
    assert list(in_background(iter(range(50)), depth=2)) == list(range(50))
    assert not [t for t in threading.enumerate() if t.name == "import-reader"]


def test_an_error_while_reading_is_raised_in_the_caller():
    def items():
        yield 1
        raise UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid continuation byte")

    received = []
    with pytest.raises(UnicodeDecodeError):
        for item in in_background(items()):
            received.append(item)  # noqa: PERF402 (the loop is what raises: list() would keep nothing)
    assert received == [1]


def test_a_caller_that_stops_early_stops_the_reader_instead_of_waiting_for_it():
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="write failed"):
        for item in in_background(endless(), depth=2):
            if item == 3:
                raise RuntimeError("write failed")
    assert time.monotonic() - started < 5
    assert not [t for t in threading.enumerate() if t.name == "import-reader"]
    assert len(produced) <= 3 + 2 + 2  # read ahead by at most the queue's depth and the item in hand
