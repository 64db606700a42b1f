"""The cluster configs and job specs, parsed and checked where it matters
(no Kubernetes or cloud is reachable here): every spec loads, the KubeRay
manifests and the cluster-launcher config run the job from the repo's image
with the resources the README promises, and the image pins the same Ray."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from dedupe_at_scale.cli import build_parser
from dedupe_at_scale.cli.ray_cluster import RAY_SYSTEM_CONFIG
from dedupe_at_scale.config import JobConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "REGISTRY/dedupe-at-scale:0.1.0"


def load(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


@pytest.mark.parametrize("spec", sorted(p.name for p in (ROOT / "jobs").glob("*.yaml")))
def test_every_job_spec_loads(spec):
    assert isinstance(load_config(ROOT / "jobs" / spec), JobConfig)


def test_ready_to_submit_specs_name_their_input_and_output():
    for spec in ("local-sample.yaml", "s3-to-s3.yaml"):
        cfg = load_config(ROOT / "jobs" / spec)
        assert cfg.input.uri and cfg.output.uri, spec
    s3 = load_config(ROOT / "jobs" / "s3-to-s3.yaml")
    assert s3.input.uri.startswith("s3://") and s3.output.uri.startswith("s3://")
    assert load_config(ROOT / "jobs" / "german.yaml").langid.languages == ["de"]


def containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def check_resources(container: dict) -> None:
    resources = container["resources"]
    assert (
        resources["requests"] == resources["limits"]
    )  # guaranteed QoS: no CPU throttling surprises
    assert {"cpu", "memory"} <= set(resources["requests"])


def test_rayjob_runs_the_job_from_the_image():
    job = load("cluster/kuberay/rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["dedupe-at-scale", "run"]
    args = build_parser().parse_args(argv[1:])  # the CLI accepts it as written
    assert args.address == "auto"
    assert (ROOT / args.config).exists()  # the image's working dir holds jobs/
    assert args.input.startswith("s3://") and args.output.startswith("s3://")
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray_version()
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    for template in [head["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]:
        for container in containers(template):
            assert container["image"] == IMAGE
            assert container["workingDir"] == "/home/ray/dedupe-at-scale"
            check_resources(container)
    workers = cluster["workerGroupSpecs"][0]
    assert workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]


def test_raycluster_serves_the_jobs_api():
    cluster = load("cluster/kuberay/raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    head = containers(cluster["spec"]["headGroupSpec"]["template"])[0]
    assert head["image"] == IMAGE
    assert 8265 in [p["containerPort"] for p in head["ports"]]
    for group in cluster["spec"]["workerGroupSpecs"]:
        for container in containers(group["template"]):
            assert container["image"] == IMAGE
            check_resources(container)


COMPILE = ["dedupe-at-scale", "compile"]


def worker_templates(path: str) -> list[dict]:
    spec = load(path)["spec"]
    spec = spec.get("rayClusterSpec", spec)
    return [group["template"] for group in spec["workerGroupSpecs"]]


@pytest.mark.parametrize("path", ["cluster/kuberay/rayjob.yaml", "cluster/kuberay/raycluster.yaml"])
def test_kuberay_workers_compile_the_kernels_for_their_cpu(path):
    """numba's cache in the image holds the build machine's CPU only: each
    worker pod compiles for its own before Kubernetes counts it running."""
    for template in worker_templates(path):
        for container in containers(template):
            command = container["lifecycle"]["postStart"]["exec"]["command"]
            assert command == COMPILE
            assert build_parser().parse_args(command[1:]).command == "compile"


def test_aws_nodes_compile_the_kernels_for_their_cpu():
    commands = load("cluster/aws/cluster.yaml")["setup_commands"]
    assert [shlex.split(c) for c in commands] == [COMPILE]
    assert build_parser().parse_args(COMPILE[1:]).command == "compile"


# `ray start` flags KubeRay accepts with an explicit false (convertParamMap).
KUBERAY_FALSE_KEPT = ("log-color", "include-dashboard", "include-log-monitor")


def kuberay_head_command(params: dict[str, str]) -> str:
    """The head's command line as the KubeRay operator writes it from
    rayStartParams (pod.go, convertParamMap): keys sorted, " --key=value "
    each, "true" as a bare flag, "false" left out but for a few options."""
    flags = ""
    for key in sorted(params):
        value = params[key]
        if value.lower() in ("true", "false") and key not in KUBERAY_FALSE_KEPT:
            flags += f" --{key} " if value.lower() == "true" else ""
        else:
            flags += f" --{key}={value} "
    return f"ray start --head {flags}"


def ray_start_options(command: str) -> dict:
    """What Ray's own `ray start` parser makes of a command line after bash
    has split it (as the pod's /bin/bash -lc does): its options, parsed,
    nothing started."""
    from ray.scripts.scripts import start

    words = subprocess.run(
        ["bash", "-c", "printf '%s\\0' " + command], capture_output=True, check=True
    ).stdout.split(b"\0")[:-1]
    argv = [w.decode() for w in words]
    assert argv[:2] == ["ray", "start"], argv
    return start.make_context("start", argv[2:]).params


@pytest.mark.parametrize(
    "path, head",
    [
        ("cluster/kuberay/rayjob.yaml", ("spec", "rayClusterSpec", "headGroupSpec")),
        ("cluster/kuberay/raycluster.yaml", ("spec", "headGroupSpec")),
    ],
)
def test_kuberay_heads_start_with_the_jobs_system_config(path, head):
    """The head's rayStartParams reach `ray start` as the system config the
    job's own local Ray gets: KubeRay pastes each value into a bash command
    line, so a JSON value needs quotes inside its string."""
    spec = load(path)
    for key in head:
        spec = spec[key]
    options = ray_start_options(kuberay_head_command(spec["rayStartParams"]))
    assert options["system_config"] == RAY_SYSTEM_CONFIG
    assert options["head"] and options["num_cpus"] == 0


def test_the_aws_head_starts_with_the_jobs_system_config():
    commands = load("cluster/aws/cluster.yaml")["head_start_ray_commands"]
    start = next(c for c in commands if c.startswith("ray start"))
    assert ray_start_options(start)["system_config"] == RAY_SYSTEM_CONFIG


def test_aws_launcher_config():
    cfg = load("cluster/aws/cluster.yaml")
    assert cfg["provider"]["type"] == "aws"
    assert cfg["docker"]["image"] == IMAGE
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}
    worker = types["cpu_worker"]
    assert 1 <= worker["min_workers"] <= worker["max_workers"] <= cfg["max_workers"]
    for node in types.values():
        assert "IamInstanceProfile" in node["node_config"]  # S3 by role, no keys on nodes
    assert any("--head" in c for c in cfg["head_start_ray_commands"])
    assert any("$RAY_HEAD_IP:6379" in c for c in cfg["worker_start_ray_commands"])


def test_aws_launcher_sets_up_the_host_before_the_container():
    # With a docker: block Ray runs setup_commands inside the container, so
    # installing docker or host packages there fails on the stock AMI.
    cfg = load("cluster/aws/cluster.yaml")
    assert "docker" in cfg
    host_setup = re.compile(r"\b(docker|apt-get|apt|yum|dnf|usermod|systemctl)\b")
    for command in cfg.get("setup_commands") or []:
        assert not host_setup.search(command), command
    installs = [c for c in cfg["initialization_commands"] if "install" in c]
    assert any("docker" in c for c in installs), cfg["initialization_commands"]


# How rayproject/ray tags its images: VERSION[-pyXY][-cpu|-gpu|-cuXYZ][-aarch64].
RAY_TAG = re.compile(r"^(\d+\.\d+\.\d+)(-py3(?:9|1[0-3]))?(-cpu|-gpu|-cu\d{3})?(-aarch64)?$")


@pytest.mark.parametrize(
    "tag, published",
    [("2.60.0-py311-cpu", True), ("2.60.0-py312-cu128", True), ("2.60.0", True),
     ("2.60-py311-cpu", False), ("2.60.0-python3.11", False), ("latest-py311", False)],
)  # fmt: skip
def test_ray_tag_rule(tag, published):
    assert bool(RAY_TAG.match(tag)) == published


def test_every_ray_image_is_one_ray_publishes_for_the_pinned_version():
    files = [ROOT / "Dockerfile", *sorted((ROOT / "cluster").rglob("*.yaml"))]
    found = []
    for path in files:
        for tag in re.findall(r"rayproject/ray:([\w.\-]+)", path.read_text()):
            match = RAY_TAG.match(tag)
            assert match, f"{path.name}: rayproject/ray:{tag} is not a tag Ray publishes"
            assert match.group(1) == ray_version(), f"{path.name}: {tag} is not Ray {ray_version()}"
            found.append(tag)
    assert found  # the Dockerfile at least


def ray_version() -> str:
    pinned = re.search(r'"ray\[[^\]]*\]>=([0-9.]+),', (ROOT / "pyproject.toml").read_text())
    assert pinned
    return pinned.group(1) + ".0" if pinned.group(1).count(".") == 1 else pinned.group(1)


def test_dockerfile_builds_on_the_pinned_ray_and_installs_the_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM rayproject/ray:([0-9.]+)-py311-cpu$", dockerfile, re.M)
    assert base and base.group(1) == ray_version()
    assert re.search(r"^RUN pip install --no-cache-dir \.", dockerfile, re.M)
    assert "COPY --chown=ray:users jobs ./jobs" in dockerfile
    assert "WORKDIR /home/ray/dedupe-at-scale" in dockerfile
