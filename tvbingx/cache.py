"""Django's Redis cache with one connection pool per process.

Django keeps a cache object per request context; under ASGI each request gets a fresh one, and with it
a fresh connection pool, so every request opened (and paid for) a new Redis connection. Sharing the
pool across those objects keeps a handful of connections per process instead.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class SharedPoolRedisCacheClient(RedisCacheClient):
    _shared_pools: dict[str, object] = {}
    _shared_lock = threading.Lock()

    def _get_connection_pool(self, write):
        url = self._servers[self._get_connection_pool_index(write)]
        pool = self._shared_pools.get(url)
        if pool is None:
            with self._shared_lock:
                pool = self._shared_pools.get(url)
                if pool is None:
                    pool = self._pool_class.from_url(url, **self._pool_options)
                    self._shared_pools[url] = pool
        return pool


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient
