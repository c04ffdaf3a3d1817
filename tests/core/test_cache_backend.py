"""The Redis cache backend (core/cache_backend.py) keeps its redis.Redis clients: one per connection pool, shared by
every operation and thread, where Django made a new one per operation."""

import threading

from django.core.cache import caches


def test_one_redis_client_per_connection_pool_serves_every_operation_and_thread():
    cache = caches["default"]
    clients = []

    def operate(number: int) -> None:
        for step in range(20):
            cache.set(f"kept-client:{number}", step)
            assert cache.get(f"kept-client:{number}") == step
        clients.append(cache._cache.get_client(write=True))

    threads = [threading.Thread(target=operate, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(clients) == 8
    assert {id(client) for client in clients} == {id(cache._cache.get_client(write=True))}
