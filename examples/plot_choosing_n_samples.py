"""
Choosing ``n_samples``: what the bound costs and what it buys
=============================================================

A :class:`~sklearn_gsoftmax.GaussianSoftmaxCalibrator` (and the
:class:`~sklearn_gsoftmax.GaussianSoftmaxClassifier` built on it) bounds its
probabilities by ``n_samples``, by default the number of samples it is fitted
on. A smaller ``n`` bounds them more tightly: safer on data unlike the training
set, but less sharp where the model is right. A larger ``n`` approaches plain
softmax. This example calibrates one logistic regression, trained on 200 images
of the digits dataset, with a sweep of ``n_samples``, and measures both sides:
in distribution, and on the 20 % of images furthest along the first principal
component, which the model never saw.
"""

# %%
# One classifier, its out-of-fold scores, several calibrators
# -----------------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gsoftmax import GaussianSoftmaxCalibrator
from sklearn_gsoftmax.metrics import calibration_report

X, y = load_digits(return_X_y=True)
position = PCA(n_components=1).fit_transform(StandardScaler().fit_transform(X))[:, 0]
inside = position <= np.quantile(position, 0.8)
X_train, X_test, y_train, y_test = train_test_split(
    X[inside], y[inside], train_size=200, random_state=0, stratify=y[inside]
)
X_shifted, y_shifted = X[~inside], y[~inside]

classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
# each training sample scored by a model that did not see it
scores = cross_val_predict(
    classifier, X_train, y_train, cv=5, method="decision_function"
)
classifier.fit(X_train, y_train)
test_scores = {
    "test": (classifier.decision_function(X_test), y_test),
    "shifted": (classifier.decision_function(X_shifted), y_shifted),
}

# %%
# Sweep the bound
# ---------------
# ``None`` is the default (200, the number of training samples); ``softmax`` is
# the unbounded link fitted the same way. The fitted ceiling is off here, so
# that each bound is exactly the one ``n`` sets (with it on, the default, the
# bound can only come down from there).
rows = {}
for n in [10, 30, None, 1000, 10**4, 10**6, "softmax"]:
    if n == "softmax":
        calibrator = GaussianSoftmaxCalibrator(link="softmax")
    else:
        calibrator = GaussianSoftmaxCalibrator(n_samples=n, fit_ceiling=False)
    calibrator.fit(scores, y_train)
    name = "softmax" if n == "softmax" else int(calibrator.n_samples_)
    for part, (part_scores, part_y) in test_scores.items():
        proba = calibrator.predict_proba(part_scores)
        rows[name, part] = calibration_report(part_y, proba, labels=calibrator.classes_)
table = pd.DataFrame.from_dict(rows, orient="index")
table = table[["log_loss", "max_log_loss", "accuracy"]].unstack()
table = table.reindex(list(dict.fromkeys(name for name, _ in rows)))
with pd.option_context(
    "display.width", 120, "display.max_columns", None, "display.precision", 3
):
    print(table)

# %%
# In distribution the bound costs little once ``n`` is near the number of
# training samples: the mean log-loss at ``n = 200`` is within a few hundredths
# of softmax's, while ``n = 10`` (no probability above 9/18 = 0.5 for ten
# classes) pays for every sure prediction. On the shifted data the largest
# single loss grows like ``ln(n)`` up to softmax's, and the mean log-loss is
# lowest for a tight bound: there, the bound is what keeps a few confident
# mistakes from dominating the mean. The default, the training set's size,
# gives up almost nothing in distribution and keeps most of the protection.
fig, (ax_mean, ax_max) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
bounded = [name for name in table.index if name != "softmax"]
for part, marker in [("test", "o"), ("shifted", "s")]:
    for ax, column in [(ax_mean, "log_loss"), (ax_max, "max_log_loss")]:
        line = ax.plot(
            bounded, table.loc[bounded, (column, part)], marker=marker, label=part
        )[0]
        ax.axhline(
            table.loc["softmax", (column, part)],
            color=line.get_color(),
            ls=":",
            label=f"{part}, softmax",
        )
n_values = np.array(bounded, dtype=float)
ax_max.plot(n_values, np.log(9 * (n_values - 1) + 1), "k--", lw=1, label="the cap")
for ax, title in [(ax_mean, "mean log-loss"), (ax_max, "largest single loss")]:
    ax.axvline(len(y_train), color="grey", lw=0.8)
    ax.set(xscale="log", xlabel="n_samples", title=title)
    ax.legend()
plt.show()
