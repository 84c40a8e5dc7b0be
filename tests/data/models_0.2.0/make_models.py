"""Write the models saved by sklearn-gsoftmax 0.2.0 and what they predicted.

Run with version 0.2.0 installed (``python make_models.py DIRECTORY``); the files
it writes back ``test_models_saved_by_version_0_2_still_predict_the_same``.
"""

import pickle
import sys
from pathlib import Path

import numpy as np
import sklearn
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import sklearn_gsoftmax
from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier


def main(out: Path) -> None:
    """Write the models, the inputs and what 0.2.0 predicted for them to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    models, inputs = {}, {}

    binary_scores = rng.normal(size=300) * 3
    binary_labels = (binary_scores + rng.normal(size=300) > 0).astype(int)
    models["calibrator_binary"] = GaussianSoftmaxCalibrator().fit(
        binary_scores, binary_labels
    )
    inputs["calibrator_binary"] = np.r_[rng.normal(size=40) * 4, [-50.0, 50.0]]

    scores = rng.normal(size=(300, 3)) * 2
    labels = np.argmax(scores + rng.normal(size=(300, 3)), axis=1)
    models["calibrator_3class"] = GaussianSoftmaxCalibrator(link="linear").fit(
        scores, labels
    )
    inputs["calibrator_3class"] = np.r_[
        rng.normal(size=(40, 3)) * 3, [[30.0, -30.0, 0.0]]
    ]

    X, y = make_classification(
        n_samples=300, n_features=5, n_informative=3, n_classes=3, random_state=0
    )
    models["classifier_3class"] = GaussianSoftmaxClassifier(
        LogisticRegression(), cv=3
    ).fit(X, y)
    inputs["classifier_3class"] = np.r_[X[:40] + 0.5, [[20.0] * 5]]

    expected = {}
    for name, model in models.items():
        (out / f"{name}.pkl").write_bytes(pickle.dumps(model))
        data = inputs[name]
        expected[f"{name}__input"] = data
        expected[f"{name}__proba"] = model.predict_proba(data)
        expected[f"{name}__uncertain"] = model.predict_uncertain(data)
        expected[f"{name}__predict"] = model.predict(data)
        expected[f"{name}__set"] = model.predict_set(data)
        report = model.shift_report(np.concatenate([data] * 3))
        expected[f"{name}__report"] = report.select_dtypes("number").to_numpy(float)
    np.savez(out / "expected.npz", **expected)
    versions = {
        "sklearn-gsoftmax": sklearn_gsoftmax.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
    }
    (out / "VERSIONS").write_text("".join(f"{k} {v}\n" for k, v in versions.items()))


# Guarded so that pytest --doctest-modules can import this file without arguments.
if __name__ == "__main__":
    main(Path(sys.argv[1]))
