"""The Ray cluster of the distributed tests: two nodes started on this machine, shared by the package's tests."""

from __future__ import annotations

import pytest

from tests.trainers.conftest import gn_model  # noqa: F401 - the trainer tests' tiny GuessNumber model, shared
from turngym.distributed.ray_rollout import import_ray


@pytest.fixture(scope="package")
def cluster():
    """A head node and a second node, 2 CPUs and a ``docker`` resource each, bounded object stores; stopped after
    the package's last test, so its processes do not idle beside the rest of the suite."""
    ray = import_ray()
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 2, "object_store_memory": 80 * 2**20, "resources": {"docker": 1}}
    c = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        c.add_node(**node)
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
