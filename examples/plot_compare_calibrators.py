"""
Comparing calibrators in and out of distribution
================================================

scikit-learn's :class:`~sklearn.calibration.CalibratedClassifierCV` (sigmoid
and isotonic) and :class:`~sklearn_gsoftmax.GaussianSoftmaxClassifier` calibrate
the same logistic regression on the digits dataset. In distribution they are
all close. On shifted data (the images furthest along the first principal
component, which the models never saw) they differ where it matters: the
confident mistakes. :func:`~sklearn_gsoftmax.metrics.calibration_report` gives
the numbers, :class:`~sklearn_gsoftmax.plotting.ReliabilityDisplay` the
top-label reliability diagrams (ten classes: scikit-learn's
``CalibrationDisplay`` draws binary problems only).
"""

# %%
# Train on one region of the data, test in it and beyond it
# ---------------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gsoftmax import GaussianSoftmaxClassifier
from sklearn_gsoftmax.metrics import calibration_report
from sklearn_gsoftmax.plotting import ReliabilityDisplay

X, y = load_digits(return_X_y=True)
position = PCA(n_components=1).fit_transform(StandardScaler().fit_transform(X))[:, 0]
inside = position <= np.quantile(position, 0.7)
X_train, X_test, y_train, y_test = train_test_split(
    X[inside], y[inside], test_size=0.3, random_state=0, stratify=y[inside]
)
X_shifted, y_shifted = X[~inside], y[~inside]


def classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


models = {
    "uncalibrated": classifier(),
    "sklearn sigmoid": CalibratedClassifierCV(classifier(), method="sigmoid", cv=3),
    "sklearn isotonic": CalibratedClassifierCV(classifier(), method="isotonic", cv=3),
    "gaussian softmax": GaussianSoftmaxClassifier(classifier(), cv=3),
}
for model in models.values():
    model.fit(X_train, y_train)

# %%
# The numbers
# -----------
# ``max_log_loss`` is the worst single prediction, ``min_proba`` the smallest
# probability any model gave and ``confident_errors`` the share of samples
# predicted wrong with a top-class probability of at least 0.95 (an error
# every one of these models can make). The bound caps the first at
# ``ln(9 (n - 1) + 1)`` for ten classes.
for part, X_eval, y_eval in [
    ("in distribution", X_test, y_test),
    ("shifted", X_shifted, y_shifted),
]:
    report = calibration_report(
        y_eval,
        {name: model.predict_proba(X_eval) for name, model in models.items()},
        labels=np.arange(10),
    )
    with pd.option_context(
        "display.width", 120, "display.max_columns", None, "display.precision", 3
    ):
        print(f"\n{part}:\n{report}")

# %%
# Reliability diagrams
# --------------------
# The band on the right marks the top-class probabilities above the gaussian
# link's bound, which it cannot give. On shifted data the unbounded models
# claim near certainty far more often than they are right.
fig, axes = plt.subplots(
    2, 2, sharex=True, height_ratios=[3, 1], figsize=(10, 6), layout="constrained"
)
for column, (part, X_eval, y_eval) in enumerate(
    [("in distribution", X_test, y_test), ("shifted", X_shifted, y_shifted)]
):
    for name in ("uncalibrated", "sklearn sigmoid", "gaussian softmax"):
        ReliabilityDisplay.from_estimator(
            models[name],
            X_eval,
            y_eval,
            n_bins=8,
            name=name,
            ax=axes[0, column],
            hist_ax=axes[1, column],
        )
    axes[0, column].set_title(part)
plt.show()
