"""Cards API: a multi-tenant store of structured facts for AI content workflows."""

import os

# NumPy's BLAS (the embedder, the in-process search index) runs on the thread that calls it.
# By default OpenBLAS starts a thread per core and splits even a 2,000 x 256 product across
# them: on a 2-core machine shared with PostgreSQL a search's vector ranking took ~2.6 ms
# instead of ~1 ms (threads waking, cores contended). Set before NumPy is first imported; an
# operator's own value wins.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

__version__ = "1.0.0"
