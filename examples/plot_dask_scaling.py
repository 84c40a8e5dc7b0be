"""
Calibrating on a Dask cluster
=============================

Scores too many for one machine live on a Dask cluster. Passed as Dask arrays,
:class:`~sklearn_gsoftmax.GaussianSoftmaxCalibrator` fits on the cluster (each
optimiser step is one map-reduce pass; the driver holds only the parameters)
and its predictions come back as lazy Dask collections, computed block by
block. This example runs on a small local cluster and checks both against the
in-memory calibrator. It needs ``pip install "sklearn-gsoftmax[dask]"``.
"""

# %%
# A local cluster and scores held on it
# -------------------------------------
import dask.array as da
import dask.dataframe as dd
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster

from sklearn_gsoftmax import GaussianSoftmaxCalibrator

cluster = LocalCluster(
    n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
)
client = Client(cluster)

rng = np.random.default_rng(0)
m = 100_000
scores = rng.normal(scale=3.0, size=m)
labels = (rng.random(m) < 1 / (1 + np.exp(-scores))).astype(int)
# in practice: da.from_zarr, dd.read_parquet(...)["score"].to_dask_array(...)
lazy_scores = da.from_array(scores, chunks=10_000)
lazy_labels = da.from_array(labels, chunks=10_000)

# %%
# Fit on the cluster, compare with the fit in memory
# ----------------------------------------------------
on_cluster = GaussianSoftmaxCalibrator().fit(lazy_scores, lazy_labels)
in_memory = GaussianSoftmaxCalibrator().fit(scores, labels)
print(f"scale     cluster {on_cluster.scale_:.9f}  memory {in_memory.scale_:.9f}")
print(
    f"offset    cluster {on_cluster.intercept_[1]:.9f}  "
    f"memory {in_memory.intercept_[1]:.9f}"
)
print(
    f"threshold cluster {on_cluster.uncertainty_threshold_:.5f}  "
    f"memory {in_memory.uncertainty_threshold_:.5f}"
)

# %%
# Predict lazily
# --------------
# ``predict_proba`` returns a Dask array with the row chunks of the scores;
# nothing runs until it is computed (or written out, e.g. with ``to_zarr``).
proba = on_cluster.predict_proba(lazy_scores)
print(proba)
frame = on_cluster.predict_frame(
    dd.from_dask_array(lazy_scores[:50_000], columns="score")
)
print(frame.head())
flagged_share = on_cluster.predict_uncertain(lazy_scores).mean().compute()
print(f"share flagged uncertain: {flagged_share:.3f}")

# %%
# The calibrated probabilities, computed on the cluster
# -----------------------------------------------------
grid = np.linspace(-15, 15, 301)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(grid, on_cluster.predict_proba(da.from_array(grid))[:, 1].compute())
ax.semilogy(grid, in_memory.predict_proba(grid)[:, 1], "--")
ax.set(xlabel="decision score", ylabel="P(class 1)", title="cluster (—), memory (--)")
fig.tight_layout()

client.close()
cluster.close()
