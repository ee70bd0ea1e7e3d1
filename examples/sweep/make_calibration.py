"""Write ``digits_calibration.npz``: 64 digits of the *training* split, rate-coded like the bundled test set.

The split and the code are those of ``examples/digits/train.py`` (sklearn ``load_digits``, ``test_size=0.2``,
``random_state=0``, stratified; pixel ``p / 16`` is the spike probability per step, ``T = 20``), so the quantizer is
calibrated on digits the test set does not hold. Deterministic (seed 1). Run: ``.venv/bin/python
examples/sweep/make_calibration.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SAMPLES, T, SEED = 64, 20, 1


def main() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, _, y_train, _ = train_test_split(digits.data, digits.target, test_size=0.2, random_state=0,
                                              stratify=digits.target)
    rng = np.random.default_rng(SEED)
    p = np.clip(x_train[:SAMPLES] / 16.0, 0.0, 1.0)
    spikes = (rng.random((SAMPLES, T, p.shape[1])) < p[:, None, :]).astype(np.uint8)
    np.savez_compressed(HERE / "digits_calibration.npz", spikes=spikes, labels=y_train[:SAMPLES].astype(np.int64))
    print(f"wrote {HERE / 'digits_calibration.npz'}: spikes {list(spikes.shape)}")


if __name__ == "__main__":
    main()
