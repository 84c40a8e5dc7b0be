"""
The link functions: softmax against the bounded links
=====================================================

A link maps a classifier's decision score to a probability. Softmax (the
sigmoid, for two classes) keeps falling exponentially however far a score lies
from anything seen in training. The gaussian link agrees with it near the
decision boundary, bends smoothly and levels off at ``1/n``, the smallest
probability that ``n`` training samples can back. These are the source
article's figures, drawn with :class:`~sklearn_gsoftmax.plotting.LinkDisplay`.
"""

# %%
# Softmax and the gaussian link for several sample counts
# -------------------------------------------------------
# On a linear axis the bound is invisible for large ``n``: the curves differ
# only where the probabilities are already tiny.
import matplotlib.pyplot as plt
import numpy as np

from sklearn_gsoftmax.plotting import LinkDisplay

scores = np.linspace(-15, 15, 601)
fig, ax = plt.subplots(figsize=(6, 4))
LinkDisplay.from_links(50, scores=scores, ax=ax)
for n in (500, 10_000, 10**6):
    LinkDisplay.from_links(n, links=("gaussian",), scores=scores, ax=ax)
ax.set_title("linear axis")

# %%
# The same on a log axis
# ----------------------
# With ``n = 10**6`` softmax falls to 1e-12 at a score of -28; the gaussian
# link levels off near 1e-6. A single confident mistake costs at most
# ``ln(n)`` of log-loss, about 14, instead of 28 or more.
display = LinkDisplay.from_links(10**6, scores=np.linspace(-30, 30, 601), yscale="log")
display.ax_.set_title("log axis, n = 1,000,000")
softmax = display.lines_["softmax"].get_ydata()
gaussian = display.lines_["gaussian, n = 1,000,000"].get_ydata()
print(
    f"smallest probability: softmax {softmax.min():.0e}, gaussian {gaussian.min():.0e}"
)

# %%
# Linear against gaussian
# -----------------------
# The linear link, ``p = 1/n + (1 - 2/n) sigmoid(s)``, reaches its floor at
# about ``s = -ln(n)``; the gaussian link needs about twice that distance and
# bends smoothly on the way. On a linear axis they look the same.
display = LinkDisplay.from_links(
    10**6, links=("linear", "gaussian"), scores=np.linspace(-30, 30, 601), yscale="log"
)
display.ax_.set_title("log axis, n = 1,000,000")
s = display.scores
for name, line in display.lines_.items():
    reach = -s[np.flatnonzero(line.get_ydata() <= 2e-6)[-1]]
    print(f"{name}: within twice the floor from s = -{reach:.1f}")

# %%
# All three for a small training set
# ----------------------------------
# With ``n = 50`` the bounds are plain on a linear axis: no probability below
# 1/50 or above 49/50.
display = LinkDisplay.from_links(
    50, links=("softmax", "linear", "gaussian"), scores=np.linspace(-10, 10, 401)
)
display.ax_.set_title("n = 50")
plt.show()
