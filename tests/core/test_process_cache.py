"""core.process_cache: entries in one process, used only under the stamp they were read under, dropped when
the kind's generation moves in Redis (read at most every check_seconds), by age, and least recently used
first past max_entries."""

import threading

import pytest

from core.cache import _bump_now
from core.process_cache import ProcessCache, Stamp

pytestmark = pytest.mark.django_db


def fresh(**options) -> ProcessCache[str]:
    return ProcessCache(**({"kind": "test_things", "seconds": 60, "check_seconds": 0, "max_entries": 100} | options))


def test_a_value_put_under_a_stamp_is_got_under_the_same_stamp():
    cache = fresh()
    stamp = cache.stamp()
    assert isinstance(stamp, Stamp)
    cache.put("a", "A", stamp)
    assert cache.get("a", cache.stamp()) == "A"
    assert cache.get("b", cache.stamp()) is None


def test_a_generation_moved_in_redis_drops_the_entries():
    cache = fresh()
    cache.put("a", "A", cache.stamp())
    _bump_now(["test_things"])  # another process's change, committed
    assert cache.get("a", cache.stamp()) is None
    assert len(cache) == 0


def test_the_generation_is_read_at_most_every_check_seconds():
    cache = fresh(check_seconds=3600)
    cache.put("a", "A", cache.stamp())
    _bump_now(["test_things"])
    # Not read again within the hour: the entry stands (what check_seconds bounds).
    assert cache.get("a", cache.stamp()) == "A"
    cache.check_seconds = 0
    assert cache.get("a", cache.stamp()) is None


def test_a_change_in_this_process_drops_its_entries_once_committed(django_capture_on_commit_callbacks):
    cache = fresh(check_seconds=3600)
    cache.put("a", "A", cache.stamp())
    with django_capture_on_commit_callbacks(execute=True):
        cache.changed()
        assert cache.get("a", cache.stamp()) == "A"  # not before the commit
    assert cache.get("a", cache.stamp()) is None


def test_a_change_rolled_back_drops_nothing(django_capture_on_commit_callbacks):
    cache = fresh(check_seconds=0)
    cache.put("a", "A", cache.stamp())
    with django_capture_on_commit_callbacks(execute=False):  # the transaction never commits
        cache.changed()
    assert cache.get("a", cache.stamp()) == "A"


def test_a_row_read_before_a_change_committed_is_not_stored_after_it(django_capture_on_commit_callbacks):
    """A reader took its stamp, read the old row, and a change committed before it stored it: the store is
    dropped, here and in another process (its generation moved)."""
    here, elsewhere = fresh(check_seconds=0), fresh(check_seconds=0)
    stamp_here, stamp_elsewhere = here.stamp(), elsewhere.stamp()
    with django_capture_on_commit_callbacks(execute=True):
        here.changed()
    here.put("a", "old", stamp_here)
    elsewhere.stamp()  # its next request reads the moved generation
    elsewhere.put("a", "old", stamp_elsewhere)
    assert (here.get("a", here.stamp()), elsewhere.get("a", elsewhere.stamp())) == (None, None)
    assert (len(here), len(elsewhere)) == (0, 0)


def test_an_entry_expires_after_seconds():
    cache = fresh(seconds=0)
    cache.put("a", "A", cache.stamp())
    assert cache.get("a", cache.stamp()) is None


def test_past_max_entries_the_least_recently_used_go_first():
    cache = fresh(max_entries=2)
    for key in "abc":
        cache.put(key, key.upper(), cache.stamp())
        if key == "b":
            cache.get("a", cache.stamp())  # a used after b
    assert [cache.get(key, cache.stamp()) for key in "abc"] == ["A", None, "C"]


def test_threads_share_one_cache_safely():
    cache = fresh(max_entries=50)
    errors: list[BaseException] = []

    def work(number: int) -> None:
        try:
            for index in range(300):
                stamp = cache.stamp()
                cache.put(f"{number}:{index % 80}", "v", stamp)
                cache.get(f"{(number + 1) % 4}:{index % 80}", stamp)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) == 50
