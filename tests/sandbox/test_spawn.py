"""Moving a job's descriptors into place (``spawn.place_fds``): every layout of sources, duplicates and sources
that sit on a target among them, ends with ``fds[i]`` as descriptor ``i``."""

from __future__ import annotations

import os
import random

from resrl.sandbox import spawn


def test_every_layout_ends_in_place(tmp_path):
    paths = [str(tmp_path / f"f{k}") for k in range(12)]
    for path in paths:
        open(path, "w").close()
    for trial in range(200):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - reported through the exit status
            try:
                rnd = random.Random(trial)
                os.closerange(0, 65536)
                assert [os.open(p, os.O_RDONLY) for p in paths] == list(range(12))
                fds = [rnd.randrange(12) for _ in range(rnd.randint(1, 6))]
                left = spawn.place_fds(fds)
                placed = all(os.readlink(f"/proc/self/fd/{i}") == paths[f] for i, f in enumerate(fds))
                os._exit(0 if placed and all(f >= len(fds) for f in left) else 1)
            finally:
                os._exit(2)
        assert os.waitpid(pid, 0)[1] == 0, f"layout {trial}"
