"""Nova API request -> ACTIVE with pyct's driver: the Nova side of
``tools/bench/nova_boot.py``, run INSIDE the Nova venv, as root.

Nova's in-process functional harness (real nova-api WSGI app, conductor,
scheduler, placement) with ``compute_driver = pyct.PyctDriver`` and RPC
casts left as casts, so the API answers before the build as in a real
cloud. Each of ``PYCT_BENCH_RUNS`` boots (m1.tiny, busybox image,
``networks: none``, as pyct's own ``api_boot.py``) is timed from the
POST until a GET shows ACTIVE (polled every 5 ms), then deleted. The
samples (seconds) go to the JSON file ``PYCT_BENCH_OUT``.
"""

# Nova's functional package picks eventlet or native threads first
import nova.tests.functional  # noqa: F401,I100

import json
import os
import time

from nova_functional import IMAGE_ID, PyctThroughNovaAPI


class NovaBootBench(PyctThroughNovaAPI):
    CAST_AS_CALL = False

    def test_server_lifecycle_through_nova_api(self):
        self.skipTest("the benchmark class boots only")

    def test_boot_to_active(self):
        samples = []
        for _ in range(int(os.environ.get("PYCT_BENCH_RUNS", "20"))):
            body = {"server": {"name": "bench", "imageRef": IMAGE_ID,
                               "flavorRef": "1", "networks": "none"}}
            start = time.perf_counter()
            server = self.api.post_server(body)
            while True:
                status = self.api.get_server(server["id"])["status"]
                if status in ("ACTIVE", "ERROR"):
                    break
                time.sleep(0.005)
            samples.append(time.perf_counter() - start)
            self.assertEqual("ACTIVE", status)
            self._delete_server(server)
        with open(os.environ["PYCT_BENCH_OUT"], "w") as f:
            json.dump(samples, f)
