"""Draw the README's figure, ``docs/images/links.png``:
``python docs/images/make_readme_figure.py``."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sklearn_gsoftmax.plotting import LinkDisplay  # noqa: E402

scores = np.linspace(-30, 30, 401)
fig, (ax_linear, ax_log) = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
LinkDisplay.from_links(10**6, scores=scores, ax=ax_linear)
ax_linear.set_title("linear axis: alike")
LinkDisplay.from_links(10**6, scores=scores, ax=ax_log, yscale="log")
ax_log.set_title("log axis: the bound holds near 1e-6")
for ax in (ax_linear, ax_log):
    ax.legend(loc="lower right", fontsize="small")
fig.savefig(Path(__file__).with_name("links.png"), dpi=80)
