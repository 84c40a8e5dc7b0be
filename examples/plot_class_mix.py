"""
When the class mix moves: estimate the new proportions and adapt
================================================================

A model is trained on data whose classes come in some proportions; a later
batch brings them in others (a disease more prevalent this season, fraud on
the rise). Each class's samples look as before, so nothing is novel, but
every probability is off by the ratio of the new to the old proportions, and
so is the accuracy the uncertain flag promises.

:meth:`~sklearn_gsoftmax.GaussianSoftmaxClassifier.shift_report` names such a
*class-mix* shift, with the estimated proportions and their intervals, and
:meth:`~sklearn_gsoftmax.GaussianSoftmaxClassifier.adapt_priors` returns a copy
of the model adapted to them, estimated from the unlabelled batch.
"""

# %%
# A model, and a batch with other class proportions
# -------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gsoftmax import GaussianSoftmaxClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.5, stratify=y, random_state=0
)
model = GaussianSoftmaxClassifier(
    make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), cv=3
).fit(X_train, y_train)

# the batch: half of it 3s and 8s, which the model confuses most
rng = np.random.default_rng(0)
new_priors = np.full(10, 0.5 / 8)
new_priors[[3, 8]] = 0.25
counts = rng.multinomial(600, new_priors)
rows = np.concatenate(
    [rng.choice(np.flatnonzero(y_test == k), n) for k, n in enumerate(counts)]
)
X_batch, y_batch = X_test[rows], y_test[rows]

# %%
# The shift report names a class-mix shift
# ----------------------------------------
# Besides the existing checks, the report estimates the batch's proportions
# (with 95 % intervals) and tests "the proportions did not move". Its verdict
# restates the other checks under the estimated proportions: when they then
# hold, the shift is in the class mix, not in the features.
report = model.shift_report(X_batch)
print("verdict:", report.attrs["verdict"])
print(report.loc[report.index.str.startswith("class proportion")].iloc[:, :4])

# %%
# Adapt to the estimated proportions
# ----------------------------------
# ``adapt_priors(X_batch)`` estimates the proportions without labels (a MAP-EM,
# run only when the test finds they moved) and returns an adapted copy. Its
# probabilities, predictions, flag and conformal sets hold for the new mix.
adapted = model.adapt_priors(X_batch)
error = np.abs(adapted.class_priors_ - new_priors).sum()
print(f"L1 error of the proportions: {error:.3f}")
print(
    f"log-loss on the batch: {log_loss(y_batch, model.predict_proba(X_batch)):.4f} "
    f"as fitted, {log_loss(y_batch, adapted.predict_proba(X_batch)):.4f} adapted"
)
print(
    f"flag threshold {model.uncertainty_threshold_:.3f} -> "
    f"{adapted.uncertainty_threshold_:.3f}; estimated accuracy of the accepted "
    f"predictions {adapted.accepted_accuracy_:.3f}"
)
accepted = ~adapted.predict_uncertain(X_batch)
print(
    "measured on the batch (labels the user would not have): "
    f"{(adapted.predict(X_batch)[accepted] == y_batch[accepted]).mean():.3f}"
)

# %%
# The estimated proportions against the true ones
# -----------------------------------------------
fig, ax = plt.subplots(figsize=(7, 3.5))
positions = np.arange(10)
ax.bar(positions - 0.27, adapted.training_priors_, 0.27, label="training")
ax.bar(positions, new_priors, 0.27, label="batch (true)")
ax.bar(positions + 0.27, adapted.class_priors_, 0.27, label="estimated")
ax.set_xticks(positions)
ax.set_xlabel("digit")
ax.set_ylabel("class proportion")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Without a shift, nothing changes
# --------------------------------
# On a batch drawn as the training data was, the test finds no evidence that
# the proportions moved (most of the time), and the copy is the model as
# fitted.
same = model.adapt_priors(X_test)
print(
    f"p-value of 'unchanged': {same.class_mix_pvalue_:.2f}; proportions kept: "
    f"{np.array_equal(same.class_priors_, model.training_priors_)}"
)
