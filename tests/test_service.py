"""The long-running service over real HTTP on loopback: `python -m serve.app` in its own
process (its own Ray cluster), devices added with `python -m serve.devices`, and devices run
as `python -m ams_ray.device` from a clean venv that holds only `pip install .` (no torch, no Ray)."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from ams_ray.data.datasets import materialize_synthetic
from ams_ray.data.video import VideoReader, encode_chunk
from ams_ray.wire.messages import SampleChunk

READY_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """`python -m serve.app` as an operator runs it; `restart` stops it (SIGTERM) and starts
    it again on the same state and port."""

    def __init__(self, state: Path, log: Path) -> None:
        self.state, self.log, self.port = state, log, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "serve.app", "--state-dir", str(self.state), "--port", str(self.port),
                   "--hosts", "1", "--idle-retire-s", "6"]
        began = self.log.stat().st_size if self.log.exists() else 0  # a restart appends: read only its own lines
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while b"service ready at" not in self.log.read_bytes()[began:]:
            assert self.process.poll() is None, f"the service exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(1.0)

    def stop(self) -> None:
        """SIGTERM, as systemd or Kubernetes would send: the service drains and exits 0."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(300)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
            assert self.process.returncode == 0, self.log.read_text()[-3000:]
            assert "SIGTERM received" not in self.log.read_text()  # no stack dump from Ray's signal handler

    def restart(self) -> None:
        self.stop()
        self.start()

    def add_device(self, device_id: str) -> str:
        out = subprocess.run([sys.executable, "-m", "serve.devices", "--state-dir", str(self.state), "add",
                              device_id], capture_output=True, text=True, check=True, timeout=60)
        return out.stdout.strip().splitlines()[-1]

    def status(self, device_id: str, token: str) -> dict:
        reply = requests.get(f"{self.url}/v1/streams/{device_id}", headers=_auth(token), timeout=120)
        reply.raise_for_status()
        return reply.json()


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("service")
    service = Service(root / "state", root / "service.log")
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """Two minutes of a synthetic scene at the service's 128x256, with exact labels."""
    return materialize_synthetic(seed=7, duration_s=120.0, height=128, width=256,
                                 cache_dir=tmp_path_factory.mktemp("videos"), progress=False)


def _device(python: Path, service: Service, device_id: str, token: str, video, *options: str) -> subprocess.Popen:
    """`python -m ams_ray.device` from the device owner's install (`python`: the device_python fixture)."""
    command = [str(python), "-m", "ams_ray.device", "--server", service.url, "--device", device_id, "--token", token,
               "--video", str(video.path), "--truth", str(video.path.parent / "labels"), *options]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=python.parents[1])


def _report(process: subprocess.Popen, timeout_s: float) -> dict:
    out, err = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _chunk(video, device_id: str, sequence: int, size: tuple[int, int] = (128, 256)) -> SampleChunk:
    frames = VideoReader(video.path, *size).read_all(max_frames=3)
    return SampleChunk(device_id, sequence, (0, 1, 2), (0.0, 0.1, 0.2), encode_chunk(frames))


def test_the_device_install_has_neither_torch_nor_ray(device_python):
    """`pip install .` without extras: the device client's own dependencies, nothing of the server."""
    listed = subprocess.run([str(device_python), "-m", "pip", "list", "--format", "json"], capture_output=True,
                            text=True, check=True, timeout=120)
    installed = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert {"ams-ray", "onnxruntime", "av", "numpy", "requests"} <= installed
    assert not installed & {"torch", "torchvision", "ray", "matplotlib", "onnx"}, installed


def test_a_device_runs_end_to_end_and_its_idle_stream_resumes_from_its_checkpoint(device_python, service, video):
    """The device, without Ray or torch, applies updates; once it is gone the stream is
    retired (6 idle seconds here) and reopens from the checkpoint of the last packet applied."""
    token = service.add_device("cam-a")
    report = _report(_device(device_python, service, "cam-a", token, video, "--speed", "3", "--duration", "45"), 600)
    assert report["failure"] is None and not report["torch_loaded"] and not report["ray_loaded"]
    assert report["frames"] == round(45 * VideoReader(video.path).fps)
    assert report["updates_applied"] >= 2 and report["rejected_packets"] == []
    assert np.isfinite(report["miou"]) and np.isfinite(report["pretrained_miou"])
    http = report["http"]
    assert http["wire_bytes"] > http["payload_bytes"] > report["uplink_bytes"] + report["downlink_bytes"]
    assert {"model", "chunks", "packets", "status"} == set(http["routes"])  # status: the drain at the end
    assert http["routes"]["chunks"]["payload_bytes"] >= report["uplink_bytes"]
    before = service.status("cam-a", token)
    assert before["rounds"] >= report["updates_applied"] and before["checkpoint"]["written"] >= 1
    assert before["host"] == "trainer-host-0" and before["epoch"] >= 1  # leased by the stream directory
    for _ in range(120):  # asked every second until the stream is retired
        health = requests.get(f"{service.url}/healthz", timeout=120).json()
        if health["open_streams"] == 0:
            break
        time.sleep(1.0)
    assert health["open_streams"] == 0
    after = service.status("cam-a", token)  # reopens it
    assert after["resumed_from_packet"] == after["packet_sequence"] >= before["checkpoint"]["sequence"] >= 1
    assert before["chunk_sequence"] >= after["chunk_sequence"] >= 1
    assert after["epoch"] == before["epoch"]  # reopened where it was leased: no move, no new epoch


def test_every_bad_request_is_refused_and_changes_nothing(service, video):
    token_b, token_c = service.add_device("cam-b"), service.add_device("cam-c")
    url = f"{service.url}/v1/streams/cam-b/chunks"

    def post(chunk: bytes, token: str | None = token_b, target: str = url) -> requests.Response:
        return requests.post(target, data=chunk, headers=_auth(token) if token else {}, timeout=120)

    first = post(_chunk(video, "cam-b", 1).to_bytes())
    assert first.status_code == 200 and first.json()["outcome"] == "accepted"
    valid = _chunk(video, "cam-b", 2).to_bytes()
    refusals = {
        "no token": post(valid, token=None),
        "unknown token": post(valid, token=token_b[:-2] + "xx"),
        "another device's stream": post(valid, token=token_c),
        "oversized": post(valid + bytes(3 * 1024 * 1024)),
        "corrupt": post(valid[:60] + bytes(len(valid) - 60)),
        "wrong frame size": post(_chunk(video, "cam-b", 2, (64, 128)).to_bytes()),
        "envelope names another stream": post(_chunk(video, "cam-c", 2).to_bytes()),
        "replayed": post(_chunk(video, "cam-b", 1).to_bytes()),
    }
    codes = {name: reply.status_code for name, reply in refusals.items()}
    assert codes == {"no token": 401, "unknown token": 401, "another device's stream": 403, "oversized": 413,
                     "corrupt": 400, "wrong frame size": 400, "envelope names another stream": 400, "replayed": 409}
    assert all(reply.json()["detail"] for reply in refusals.values())
    status = _labelled(service, "cam-b", token_b, 1)
    assert (status["chunks"], status["chunk_sequence"], status["duplicate_chunks"]) == (1, 1, 0)
    assert post(valid).json()["outcome"] == "accepted"  # the stream goes on
    assert _labelled(service, "cam-b", token_b, 2)["chunks"] == 2
    assert service.status("cam-c", token_c)["chunks"] == 0


def _labelled(service: Service, device_id: str, token: str, chunks: int, attempts: int = 120) -> dict:
    """The stream's status once `chunks` chunks are labelled (an upload is answered before its
    labels): a bounded wait, not a timed assertion."""
    for _ in range(attempts):
        status = service.status(device_id, token)
        if status["chunks"] >= chunks:
            return status
        time.sleep(0.5)
    return status


def test_a_flooding_device_is_rate_limited(service):
    token = service.add_device("cam-flood")
    codes = [requests.get(f"{service.url}/v1/streams/cam-flood", headers=_auth(token), timeout=120)
             for _ in range(40)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) >= 1
    assert all(r.status_code in (200, 429) for r in codes)


def test_a_device_with_a_wrong_token_stops_with_the_servers_reason(device_python, service, video):
    device = _device(device_python, service, "cam-a", "not-a-token", video, "--duration", "5")
    out, err = device.communicate(timeout=120)
    assert device.returncode == 2 and "HTTP 401" in err and "Traceback" not in err


def test_the_api_is_described_by_openapi(service):
    schema = requests.get(f"{service.url}/openapi.json", timeout=60).json()
    assert {"/v1/streams/{stream_id}/chunks", "/v1/streams/{stream_id}/packets", "/v1/streams/{stream_id}/model",
            "/healthz"} <= set(schema["paths"])


def test_a_device_that_reconnects_after_a_restart_resumes_from_its_checkpoint(device_python, service, video):
    """The device runs, the service stops and starts again on the same state, the device
    comes back (a new process, fetching the model afresh) and its stream goes on."""
    token = service.add_device("cam-back")
    _report(_device(device_python, service, "cam-back", token, video, "--speed", "3", "--duration", "30"), 600)
    before = service.status("cam-back", token)
    assert before["checkpoint"]["written"] >= 1
    service.restart()
    report = _report(_device(device_python, service, "cam-back", token, video, "--speed", "3", "--duration", "25"), 600)
    after = service.status("cam-back", token)
    assert after["resumed_from_packet"] >= before["checkpoint"]["sequence"] >= 1
    assert after["chunk_sequence"] > before["chunk_sequence"]  # numbering went on from the stream's
    assert report["failure"] is None and report["rejected_packets"] == [] and report["updates_applied"] >= 1
    assert after["packet_sequence"] > after["resumed_from_packet"]


@pytest.mark.slow
def test_a_device_rides_through_a_service_restart(device_python, service, video):
    """The device keeps playing while the service is down and carries on with the model it holds."""
    token = service.add_device("cam-r")
    device = _device(device_python, service, "cam-r", token, video, "--speed", "1", "--duration", "110")
    try:
        for _ in range(300):  # until the stream has a checkpoint to resume from
            if service.status("cam-r", token)["checkpoint"]["written"] >= 1:
                break
            time.sleep(1.0)
        checkpoint = service.status("cam-r", token)["checkpoint"]
        assert checkpoint["written"] >= 1
        service.restart()
        report = _report(device, 900)
    finally:
        if device.poll() is None:
            device.kill()
    assert report["failure"] is None and report["http"]["retries"] >= 1
    assert report["rejected_packets"] == []
    status = service.status("cam-r", token)
    assert status["resumed_from_packet"] >= checkpoint["sequence"]
    assert status["packet_sequence"] > status["resumed_from_packet"]  # trained on after the restart
    assert report["model_version"] >= 1


def test_the_serve_config_file_is_a_valid_serve_deployment():
    """`serve run serve/service.yaml` builds the same app from the same settings."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from ams_ray.service.settings import ServiceSettings

    config = yaml.safe_load((Path(__file__).parents[1] / "serve" / "service.yaml").read_text())
    (app,) = ServeDeploySchema.model_validate(config).applications
    assert app.import_path == "serve.app:build_app" and config["http_options"]["host"] == "127.0.0.1"
    assert ServiceSettings(**app.args).teacher == "network"


def test_the_kuberay_manifest_deploys_the_same_app_sized_for_a_cluster():
    """KubeRay's CRD schema cannot be installed here (it is not on PyPI), so what is checked is
    what this project controls: the RayService's Serve config is a valid Serve deployment of
    this app, its settings parse, its state is on a store every pod reaches, and its Ray
    version is the one pinned."""
    import ray
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from ams_ray.service.settings import ServiceSettings, check_state_reachable

    manifest = yaml.safe_load((Path(__file__).parents[1] / "serve" / "rayservice.yaml").read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayService")
    (app,) = ServeDeploySchema.model_validate(yaml.safe_load(manifest["spec"]["serveConfigV2"])).applications
    settings = ServiceSettings(**app.args)
    assert app.import_path == "serve.app:build_app" and not settings.hosts.fixed
    check_state_reachable(settings.state_url, nodes=5, shared=False)
    assert manifest["spec"]["rayClusterConfig"]["rayVersion"] == ray.__version__


def test_the_app_is_sized_as_its_settings_say():
    """Replicas and GPUs reach Serve's deployment options; trainer GPUs and the scheduler reach
    the hosts' recipe."""
    from serve.app import build_app, parse_args

    ingress = build_app({"state_url": "/tmp/unused", "ingress_replicas": "2..4", "teacher_replicas": "1..3",
                         "teacher_gpus": 0.5, "trainer_gpus": 0.25, "scheduler": "gain"})._bound_deployment
    scaling = ingress._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas) == (2, 4)
    teacher = ingress.init_args[0]._bound_deployment
    assert teacher.ray_actor_options["num_gpus"] == 0.5
    assert (teacher._deployment_config.autoscaling_config.min_replicas,
            teacher._deployment_config.autoscaling_config.max_replicas) == (1, 3)
    assert ingress.init_args[1].trainer_gpus == 0.25 and ingress.init_args[1].scheduler == "gain"
    assert parse_args(["--scheduler", "round_robin"]).scheduler == "round_robin"
    fixed = build_app({"state_url": "/tmp/unused", "ingress_replicas": 3})._bound_deployment
    assert fixed.num_replicas == 3 and fixed._deployment_config.autoscaling_config is None


def test_a_service_that_cannot_label_pixels_is_refused_before_it_starts(tmp_path):
    result = subprocess.run([sys.executable, "-m", "serve.app", "--state-dir", str(tmp_path), "--teacher", "oracle"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "labels pixels" in result.stderr and "Traceback" not in result.stderr
