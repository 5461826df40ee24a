"""Helpers for tests that start and stop Ray clusters in one pytest process."""


def shutdown_ray() -> None:
    """Stop Serve and Ray in this process and forget Serve's per-process router state.

    Serve caches one long-poll client per controller handle for the life of the process
    (`SharedRouterLongPollClient.get_or_create` is an lru_cache). A later cluster's controller
    can get the same actor id, so a handle to it would poll the dead cluster's controller and
    hang; clearing the cache is what lets one test process start several clusters in any order.
    """
    import ray
    from ray import serve
    from ray.serve._private.router import SharedRouterLongPollClient

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()
    SharedRouterLongPollClient.get_or_create.cache_clear()
