"""Side-by-side benchmarks of h2workers against other Python HTTP/2 servers.

Run ``python -m bench.run --help``; see ``bench/README.md``.
"""
