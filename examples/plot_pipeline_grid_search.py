"""
In a pipeline, tuned by a grid search
=====================================

:class:`~sklearn_gsoftmax.GaussianSoftmaxClassifier` is a scikit-learn
meta-estimator: it goes into a :class:`~sklearn.pipeline.Pipeline`, its
parameters and those of the classifier it wraps are tuned by
:class:`~sklearn.model_selection.GridSearchCV` with the usual ``step__param``
names, and it is scored like any probabilistic classifier. Here the grid
searches the regularisation of a logistic regression and the link, by
log-loss, on the wine dataset.
"""

# %%
# The pipeline and the grid
# -------------------------
import pandas as pd
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gsoftmax import GaussianSoftmaxClassifier
from sklearn_gsoftmax.metrics import calibration_report
from sklearn_gsoftmax.plotting import ReliabilityDisplay

X, y = load_wine(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.4, random_state=0, stratify=y
)
pipeline = Pipeline(
    [
        ("scale", StandardScaler()),
        (
            "calibrated",
            GaussianSoftmaxClassifier(LogisticRegression(max_iter=1000), cv=3),
        ),
    ]
)
grid = GridSearchCV(
    pipeline,
    {
        "calibrated__estimator__C": [0.1, 1.0],
        "calibrated__link": ["gaussian", "softmax"],
    },
    scoring="neg_log_loss",
    cv=3,
).fit(X_train, y_train)

# %%
# The search's results
# --------------------
results = pd.DataFrame(grid.cv_results_)
columns = ["param_calibrated__estimator__C", "param_calibrated__link"]
results = results.set_index(columns)[["mean_test_score", "rank_test_score"]]
print(results.sort_values("rank_test_score").round(4))
print(f"best: {grid.best_params_}")

# %%
# The refitted best pipeline on held-out data
# -------------------------------------------
# ``grid`` is itself a fitted classifier; the displays take it like any other
# and find the bounds of the pipeline's last step.
proba = grid.predict_proba(X_test)
print(pd.Series(calibration_report(y_test, proba, labels=grid.classes_)).round(4))
display = ReliabilityDisplay.from_estimator(
    grid.best_estimator_, X_test, y_test, n_bins=5, name="best pipeline"
)
