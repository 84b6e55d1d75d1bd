from raycluster import RayCluster


def test_cluster_has_two_nodes(ray_cluster: RayCluster) -> None:
    out = ray_cluster.python(
        "import ray; ray.init(address='auto', logging_level='ERROR');"
        "print(sorted(n['NodeName'] for n in ray.nodes() if n['Alive']))"
    )
    assert "gpu-node" in out
