"""The docker backend: the same executor inside long-lived containers, one per slot, started once.

Containers run with ``--network none``, a pids limit, a memory limit and a read-only root with a tmpfs
``/tmp``; the executor's folder is mounted read-only and speaks over a Unix socket in a mounted host directory, so
no network and no image build are needed. Jobs never start a container (no ``docker run`` per job).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
import uuid
from typing import Any, BinaryIO

from resrl.sandbox.backends.local import EXECUTOR_PATH
from resrl.sandbox.protocol import PooledSandbox, Slot

DEFAULT_IMAGE = "resrl/base:bookworm"
CONTAINER_LABEL = "resrl.sandbox"
EXECUTOR_CMD = ["python3", "-I", "/opt/resrl/executor.py", "--socket", "/run/resrl/executor.sock"]


class DockerSlot(Slot):
    """One container running ``python3 executor.py --socket``."""

    def __init__(self, client: Any, image: str, memory_mb: int, pids: int, tmpfs_mb: int) -> None:
        self.client = client
        self.image = image
        self.memory_mb = memory_mb
        self.pids = pids
        self.tmpfs_mb = tmpfs_mb
        self.container: Any = None
        self.sock: socket.socket | None = None
        self.files: tuple[BinaryIO, BinaryIO] | None = None
        self.sock_dir: str | None = None

    def start(self) -> None:
        self.sock_dir = tempfile.mkdtemp(prefix="resrl-docker-")
        self.container = self.client.containers.run(
            self.image,
            # the container is the boundary: no network, a read-only image holding python and the executor only
            [*EXECUTOR_CMD, "--allow-network", "--allow-host-files"],
            detach=True,
            name=f"resrl-sandbox-{uuid.uuid4().hex[:12]}",
            labels={CONTAINER_LABEL: str(os.getpid())},
            network_mode="none",
            pids_limit=self.pids,
            mem_limit=f"{self.memory_mb}m",
            memswap_limit=f"{self.memory_mb}m",
            read_only=True,
            tmpfs={"/tmp": f"rw,size={self.tmpfs_mb}m,mode=1777"},
            volumes={
                self.sock_dir: {"bind": "/run/resrl", "mode": "rw"},
                # the executor with its stdlib-only siblings (spawn, tester, isolation, harness, cleanup, verdicts)
                str(EXECUTOR_PATH.parent): {"bind": "/opt/resrl", "mode": "ro"},
            },
            environment={},
        )
        path = os.path.join(self.sock_dir, "executor.sock")
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(path)
                break
            except OSError as exc:
                sock.close()
                self.container.reload()
                if self.container.status == "exited" or time.monotonic() > deadline:
                    logs = self.container.logs(tail=20).decode(errors="replace")
                    self.stop()
                    raise RuntimeError(f"sandbox container did not start ({exc}); its log:\n{logs}") from exc
                time.sleep(0.05)
        self.sock = sock
        self.files = (sock.makefile("rb"), sock.makefile("wb"))

    def streams(self) -> tuple[BinaryIO, BinaryIO]:
        assert self.files is not None
        return self.files

    def stop(self) -> None:
        if self.files:
            for f in self.files:
                with contextlib.suppress(OSError):
                    f.close()
            self.files = None
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.remove(force=True)
            self.container = None
        if self.sock_dir:
            shutil.rmtree(self.sock_dir, ignore_errors=True)
            self.sock_dir = None


class DockerSandbox(PooledSandbox):
    """``workers`` warm containers of ``image`` (env ``RESRL_SANDBOX_IMAGE``, default ``resrl/base:bookworm``,
    built by ``scripts/build_base_image.sh``; any image with ``python3`` works)."""

    name = "docker"
    result_metadata = {"container_network": "none"}  # noqa: RUF012

    def __init__(
        self,
        workers: int | None = None,
        image: str | None = None,
        memory_mb: int = 1024,
        pids: int = 256,
        tmpfs_mb: int = 256,
    ) -> None:
        import docker

        super().__init__(workers or os.cpu_count() or 1)
        self.image = image or os.environ.get("RESRL_SANDBOX_IMAGE", DEFAULT_IMAGE)
        self.client = docker.from_env()
        try:
            self.client.images.get(self.image)
        except docker.errors.ImageNotFound as exc:
            raise RuntimeError(
                f"sandbox image {self.image!r} not found: build it with `bash scripts/build_base_image.sh` "
                "or set RESRL_SANDBOX_IMAGE"
            ) from exc
        try:
            for _ in range(self.workers):
                self._add_slot(DockerSlot(self.client, self.image, memory_mb, pids, tmpfs_mb))
        except Exception:
            self.close()
            raise

    @property
    def containers(self) -> list[Any]:
        """The running slot containers (docker SDK objects)."""
        return [slot.container for slot in self._slots if isinstance(slot, DockerSlot) and slot.container]

    def health(self) -> dict[str, Any]:
        return {**super().health(), "container_network": "none", "image": self.image}

    def close(self) -> None:
        super().close()
        self.client.close()
