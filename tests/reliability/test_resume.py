"""``fit(..., state_path=, resume=True)``: a resumed run ends where an uninterrupted one does, the
state file keeps its format (``ncps-train-state/1``), and a file written by the first writer of
that format (kept in resume_v1/) still resumes.

resume_v1/ was written by ``python -m tests.reliability.test_resume DIR`` with the code of commit
3761315 (before fit's bookkeeping became a dataclass): ``state.safetensors`` is the state after
epoch SPLIT of a run of EPOCHS epochs, ``expected.npz`` the parameters and history that the
uninterrupted run ended with."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import ncps
from ncps import training
from tests.reliability.training_run import fit_sequences, noise_task, params_of

EPOCHS, SPLIT = 4, 2
V1 = Path(__file__).parent / "resume_v1"
# The JSON part of an ncps-train-state/1 file (besides "format" and "numpy_rng").
V1_KEYS = {"next_epoch", "best_value", "wait", "epochs", "random_base", "history", "best_epoch", "best_value_reported"}


def _model(seed: int = 3) -> nn.Module:
    mx.random.seed(seed)
    return ncps.CfC(3, 2, backbone_units=4, backbone_dropout=0.2)  # dropout: mx.random is part of the state


def _fit(model: nn.Module, epochs: int, state_path, resume: bool = False) -> training.History:
    r = np.random.default_rng(0)
    data, val = noise_task(r, 20, 4, 3, 2), noise_task(r, 8, 4, 3, 2)
    return fit_sequences(
        model,
        data,
        1e-1,
        epochs=epochs,
        batch_size=6,
        validation_data=val,
        early_stopping_patience=10,  # best weights kept (best.* in the file) and put back at the end
        seed=7,
        state_path=state_path,
        resume=resume,
    )


def _history(h: training.History) -> dict:
    return {k: getattr(h, k) for k in ("history", "epoch", "best_epoch", "best_value", "restored_best")}


def _read_state(path) -> tuple[dict, dict]:
    arrays, metadata = mx.load(str(path), format="safetensors", return_metadata=True)
    return arrays, json.loads(metadata["ncps_train_state"])


def test_resume_ends_like_an_uninterrupted_run(tmp_path):
    full_model = _model()
    full = _fit(full_model, EPOCHS, tmp_path / "full.safetensors")
    _fit(_model(), SPLIT, tmp_path / "part.safetensors")
    resumed_model = _model(seed=11)  # other initial weights: the state's are loaded over them
    resumed = _fit(resumed_model, EPOCHS, tmp_path / "part.safetensors", resume=True)
    assert resumed.epoch == list(range(EPOCHS)) and _history(resumed) == _history(full)
    assert full.restored_best, "the case should exercise the kept best weights"
    a, b = params_of(full_model), params_of(resumed_model)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # Both runs wrote the same final state.
    (fa, fm), (ra, rm) = _read_state(tmp_path / "full.safetensors"), _read_state(tmp_path / "part.safetensors")
    assert fm == rm and fa.keys() == ra.keys()


def test_the_state_file_keeps_format_1(tmp_path):
    h = _fit(_model(), SPLIT, tmp_path / "s.safetensors")
    arrays, meta = _read_state(tmp_path / "s.safetensors")
    assert meta.pop("format") == "ncps-train-state/1" and isinstance(meta.pop("numpy_rng"), dict)
    assert set(meta) == V1_KEYS
    assert meta["next_epoch"] == SPLIT and meta["epochs"] == h.epoch and meta["history"] == h.history
    assert meta["best_epoch"] == h.best_epoch and meta["best_value_reported"] == meta["best_value"] == h.best_value
    assert meta["random_base"] == 7 and meta["wait"] == SPLIT - 1 - h.best_epoch
    assert {k.split(".")[0] for k in arrays} == {"model", "optimizer", "best"}


def test_a_state_written_by_the_first_writer_still_resumes(tmp_path):
    shutil.copy(V1 / "state.safetensors", tmp_path / "state.safetensors")  # resuming overwrites it
    model = _model(seed=11)
    h = _fit(model, EPOCHS, tmp_path / "state.safetensors", resume=True)
    expected = np.load(V1 / "expected.npz")
    assert _history(h) == json.loads(str(expected["history"]))
    got = params_of(model)
    assert set(got) == {k for k in expected.files if k != "history"}
    for k in got:  # the same arithmetic; a tolerance only for another MLX build's rounding
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_resume_without_a_file_starts_afresh(tmp_path):
    a, b = _model(), _model()
    ha = _fit(a, SPLIT, tmp_path / "a.safetensors")
    hb = _fit(b, SPLIT, tmp_path / "b.safetensors", resume=True)
    assert _history(ha) == _history(hb)
    pa, pb = params_of(a), params_of(b)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)


def test_resume_rejects_what_is_not_a_training_state(tmp_path):
    with pytest.raises(ValueError, match="resume=True needs state_path"):
        _fit(_model(), 1, None, resume=True)
    ncps.save(_model(), tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="not a training state written by fit"):
        _fit(_model(), 1, tmp_path / "model.safetensors", resume=True)
    arrays, meta = _read_state(V1 / "state.safetensors")
    meta["format"] = "ncps-train-state/0"
    mx.save_safetensors(str(tmp_path / "old.safetensors"), arrays, metadata={"ncps_train_state": json.dumps(meta)})
    with pytest.raises(ValueError, match="has format 'ncps-train-state/0'"):
        _fit(_model(), 1, tmp_path / "old.safetensors", resume=True)


def write_v1(folder: str) -> None:
    """Write resume_v1/ (run with the code whose files are to stay readable)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model = _model()
    h = _fit(model, EPOCHS, out / "full.safetensors")
    np.savez(out / "expected.npz", history=json.dumps(_history(h)), **params_of(model))
    _fit(_model(), SPLIT, out / "state.safetensors")
    (out / "full.safetensors").unlink()


if __name__ == "__main__":
    write_v1(sys.argv[1])
