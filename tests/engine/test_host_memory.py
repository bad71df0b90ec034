"""keep_freed_memory: a step's large tensors reuse the last step's memory instead of fresh pages."""

import subprocess
import sys
import textwrap

import pytest

# Rounds shaped like training steps: several large tensors alive at once, written, then all freed. Prints the
# page faults of rounds 2-6 before and after keep_freed_memory, and what it returned.
ROUNDS = textwrap.dedent("""
    import resource, torch
    from nfields.engine.host_memory import keep_freed_memory

    def faults_of_rounds():
        def one_round():
            tensors = [torch.empty(4 << 20) for _ in range(6)]  # 6 x 16 MB
            for t in tensors:
                t.fill_(1.0)
        one_round()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            one_round()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    default = faults_of_rounds()
    kept = keep_freed_memory()
    print(default, faults_of_rounds(), kept)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_freed_tensors_come_back_without_page_faults():
    out = subprocess.run([sys.executable, "-c", ROUNDS], capture_output=True, text=True, check=True).stdout
    default, kept_faults, kept = out.split()
    if kept != "True":
        pytest.skip("this C library's malloc has no mallopt (not glibc)")
    if int(default) == 0:
        pytest.skip("this process's allocator keeps freed memory by itself (jemalloc, tcmalloc?)")
    assert int(kept_faults) * 4 < int(default), (default, kept_faults)
