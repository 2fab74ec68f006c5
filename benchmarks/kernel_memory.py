"""Memory of one dashboard kernel: a real ipykernel runs the dashboard notebook's code and waits for its
default job; prints the kernel's resident size (RSS) and the part that is its own (USS, not shared with other
kernels). The researcher kernel's figures (`aisviz serve --help`, the Performance page) come from this; the
viewer kernel's from `bench_sessions.py --record` (aisviz/server/viewer_memory.json).

    AISVIZ_HOME=/tmp/kmem python benchmarks/kernel_memory.py
"""
import time

import psutil
from jupyter_client.manager import start_new_kernel

CODE = "from aisviz.app import Dashboard\ndashboard = Dashboard()\nprint('finished:', dashboard.wait(900))"


def main():
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        proc = psutil.Process(km.provisioner.process.pid)
        idle = proc.memory_info().rss
        t0 = time.perf_counter()
        kc.execute_interactive(CODE, timeout=1000)
        full = proc.memory_full_info()
        print(f"kernel RSS idle {idle / 1e9:.2f} GB; after the dashboard's default job: RSS {full.rss / 1e9:.2f} GB, "
              f"USS {full.uss / 1e9:.2f} GB ({time.perf_counter() - t0:.0f} s)")
    finally:
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
