"""Driver of the multi-node fault test, run by ``test_multinode.py`` in its own process
(a process joins one Ray cluster, and the test session already runs a local one).

    python tests/train/multinode_run.py DATA_URI STORAGE_URI

Starts a ``ray.cluster_utils.Cluster`` of two nodes (2 CPUs each), trains biased MF with two
workers spread over the nodes (``STRICT_SPREAD``), DeepSpeed ZeRO-2, checkpoints in
``STORAGE_URI``, and worker rank 1 (on the second node) SIGKILLed right after epoch 0 is
checkpointed; then the same run on one worker with the same global batch (16), never killed.
Prints one JSON line: the cluster's node ids and the two runs' results.
"""

from __future__ import annotations

import json
import sys

import ray
from ray.cluster_utils import Cluster

from rayrec.train.config import load_config
from rayrec.train.trainer import fit


def main(data: str, storage: str) -> None:
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=True)
        ray.data.DataContext.get_current().enable_progress_bars = False
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
        common = [f"run.storage={storage}", "engine.zero_stage=2", "train.epochs=2"]
        cfg = load_config(
            "biased_mf",
            overrides=[
                *common,
                "run.name=multinode",
                "run.num_workers=2",
                "run.placement_strategy=STRICT_SPREAD",
                "run.max_failures=1",
                "train.batch_size=8",
                "train.max_steps_per_epoch=2",
                "fault.kill_after_epoch=0",
                "fault.rank=1",
            ],
        )
        results = fit(cfg, data)
        # the same global batch (16) and steps on one worker, never killed
        single = load_config(
            "biased_mf",
            overrides=[
                *common,
                "run.name=single",
                "train.batch_size=16",
                "train.max_steps_per_epoch=2",
            ],
        )
        single_results = fit(single, data)
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(json.dumps({"nodes": nodes, "results": results, "single": single_results}))


if __name__ == "__main__":
    main(*sys.argv[1:])
