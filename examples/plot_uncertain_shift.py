"""
Which predictions not to trust on shifted data
==============================================

A model trained on one region of the data meets samples from another. Its
probabilities are then least reliable exactly where they look most certain.
:class:`~sklearn_gsoftmax.GaussianSoftmaxClassifier` bounds them by the training
sample count and flags predictions to route to a person or to data collection.

This example trains on one region of the digits dataset (the 70 % of images
lowest along their first principal component), predicts on the other 30 %, and
shows what each rule of the uncertain flag catches: the share of the errors it
flags, the share of predictions it leaves to act on (coverage), and how many of
its flags are errors.
"""

# %%
# Train on one region, predict on another
# ---------------------------------------
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gsoftmax import GaussianSoftmaxClassifier
from sklearn_gsoftmax.metrics import risk_coverage_auc, risk_coverage_curve

X, y = load_digits(return_X_y=True)
position = PCA(n_components=1).fit_transform(StandardScaler().fit_transform(X))[:, 0]
inside = position <= np.quantile(position, 0.7)
X_train, y_train = X[inside], y[inside]
X_shifted, y_shifted = X[~inside], y[~inside]

RULES = ("low_confidence", "ambiguous", "out_of_range", "conformal")


def classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


model = GaussianSoftmaxClassifier(
    classifier(), uncertainty_rules=RULES, target_accuracy=0.99
).fit(X_train, y_train)
print(
    f"low_confidence threshold {model.uncertainty_threshold_:.3f}: on held-out "
    f"training predictions it accepts {model.coverage_:.0%} at "
    f"{model.accepted_accuracy_:.1%} accuracy"
)

# %%
# What each rule flags on the shifted data
# ----------------------------------------
# ``predict_frame`` gives the table to export: prediction, probabilities, the
# flag and the rules behind it.
frame = model.predict_frame(X_shifted)
errors = frame["prediction"].to_numpy() != y_shifted
print(f"shifted data: {len(frame)} samples, accuracy {1 - errors.mean():.1%}")
with pd.option_context("display.width", 120, "display.max_columns", 6):
    print(frame.head())


def rule_summary(flagged):
    caught = flagged & errors
    return {
        "flagged": flagged.mean(),
        "coverage": 1 - flagged.mean(),
        "errors caught": caught.sum() / errors.sum(),
        "errors among flagged": caught.sum() / max(flagged.sum(), 1),
        "accuracy of the rest": 1
        - (errors & ~flagged).sum() / max((~flagged).sum(), 1),
    }


reasons = frame["reasons"].str.split(", ")
summary = pd.DataFrame(
    {
        rule: rule_summary(reasons.apply(lambda r, rule=rule: rule in r).to_numpy())
        for rule in RULES
    }
    | {"any rule": rule_summary(frame["uncertain"].to_numpy())}
).T
with pd.option_context("display.width", 120, "display.max_columns", None):
    print(summary.round(3))

# %%
# ``out_of_range`` marks novelty, not error: its flags hold errors no more
# often than the other predictions (compare "errors among flagged" with the
# error rate), so it is off by default. It tells where labelling new samples
# would extend the range the model has evidence for. ``low_confidence`` and
# ``conformal`` are the rules that concentrate the errors, at a cost in coverage.

# %%
# Rankings compared: risk-coverage curves
# ---------------------------------------
# Accepting the most confident predictions first, how accurate is what we
# accept? A better ranking stays higher for longer.
import matplotlib.pyplot as plt  # noqa: E402

sigmoid = CalibratedClassifierCV(classifier(), method="sigmoid").fit(X_train, y_train)
fig, (ax_curve, ax_rules) = plt.subplots(1, 2, figsize=(11, 4))
for name, fitted in [("gaussian softmax", model), ("sklearn sigmoid", sigmoid)]:
    proba = fitted.predict_proba(X_shifted)
    coverage, accuracy, _ = risk_coverage_curve(
        y_shifted, proba, labels=fitted.classes_
    )
    area = risk_coverage_auc(y_shifted, proba, labels=fitted.classes_)
    ax_curve.step(coverage, accuracy, where="pre", label=f"{name} (area {area:.3f})")
ax_curve.set(xlabel="coverage (share accepted)", ylabel="accuracy of accepted")
ax_curve.set_title("shifted data")
ax_curve.legend()

ax_rules.scatter(summary["coverage"], summary["errors caught"])
for rule, row in summary.iterrows():
    ax_rules.annotate(rule, (row["coverage"], row["errors caught"]))
ax_rules.set(xlabel="coverage", ylabel="share of errors flagged", xlim=(0, 1.05))
ax_rules.set_title("what each rule catches")
fig.tight_layout()
plt.show()
