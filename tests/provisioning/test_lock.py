"""The per-vcluster lock (real Redis): held as long as the task runs, one holder."""

import time

from portal.locks import held_lock


def test_the_lock_outlives_its_ttl_while_held_and_admits_one_holder():
    with held_lock("test-lock", ttl=1) as lock:
        assert lock is not None
        time.sleep(2.5)  # well past the TTL: the keeper thread renewed it
        assert lock.owned()
        with held_lock("test-lock", ttl=1) as second:
            assert second is None
    with held_lock("test-lock", ttl=1) as again:
        assert again is not None
