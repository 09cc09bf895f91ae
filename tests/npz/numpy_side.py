"""The NumPy side of the .npz interchange tests (NpzNumPy.* in tests/test_data_npz.cpp).

numpy_side.py write DIR   numpy.savez / numpy.savez_compressed files for xgrad to read
numpy_side.py check DIR   checks the files xgrad wrote into DIR
Any mismatch raises (non-zero exit status), naming the entry.
"""
import json
import sys

import numpy as np


def reference():
    """One array of each dtype xgrad stores, 0-d to 4-d; the C++ side builds the same."""
    return {
        "f4": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / np.float32(8),
        "f8": np.array([0.1, -2.5, 1e300, 5e-324]),
        "i1": np.array([-128, 0, 127], dtype=np.int8),
        "u1": np.array([0, 255], dtype=np.uint8),
        "i2": np.array([-32768, 32767], dtype=np.int16),
        "u2": np.array([0, 65535], dtype=np.uint16),
        "i4": np.array([-2**31, 2**31 - 1], dtype=np.int32),
        "u4": np.array([0, 2**32 - 1], dtype=np.uint32),
        "i8": np.array([-2**63, 2**63 - 1], dtype=np.int64),
        "u8": np.array([0, 2**64 - 1], dtype=np.uint64),
        "scalar": np.array(3.5),
        "four_d": np.arange(120, dtype=np.float64).reshape(2, 3, 4, 5) - 60,
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def model_state():
    """A state for Sequential(Linear(3, 4), ReLU, Linear(4, 2)) in float64."""
    return {
        "0.weight": np.arange(12, dtype=np.float64).reshape(4, 3) / 10,
        "0.bias": np.array([1.0, -1.0, 0.5, 0.25]),
        "2.weight": -np.arange(8, dtype=np.float64).reshape(2, 4),
        "2.bias": np.array([7.0, 8.0]),
    }


def same(name, got, want):
    assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    assert np.array_equal(got, want), (name, got, want)


def write(d):
    ref = reference()
    np.savez(d + "/plain.npz", **ref, be=np.array([1.25, -3.5], dtype=">f8"))
    np.savez_compressed(d + "/packed.npz", **ref)
    state = model_state()
    np.savez(d + "/state.npz", **state)
    # Every kind of mismatch at once: a bool bias, a transposed weight, a missing bias and
    # an extra array.
    bad = dict(state)
    bad["0.bias"] = np.array([True, False, True, False])
    bad["2.weight"] = state["2.weight"].T.copy()
    del bad["2.bias"]
    bad["3.weight"] = np.ones(2)
    np.savez(d + "/bad_state.npz", **bad)


def check(d):
    ref = reference()
    for f in ("dtypes.npz", "dtypes_z.npz"):
        with np.load(d + "/" + f) as z:
            assert sorted(z.files) == sorted(ref), (f, z.files)
            for k, want in ref.items():
                same(f + ":" + k, z[k], want)
    # nn::save of a float model: PyTorch-style keys, each array as save_npy wrote it too.
    with open(d + "/expected/keys.json") as f:
        keys = json.load(f)
    for f in ("model.npz", "model_z.npz"):
        with np.load(d + "/" + f) as z:
            assert sorted(z.files) == sorted(keys), (f, z.files, keys)
            for k in keys:
                same(f + ":" + k, z[k], np.load(d + "/expected/" + k + ".npy"))
                assert z[k].dtype == np.float32, (f, k, z[k].dtype)
    # A text entry beside the state (a checkpoint's layout) comes back as bytes.
    with np.load(d + "/with_text.npz") as z:
        assert json.loads(z["meta.json"].decode("utf-8")) == {"epoch": 3, "name": "mlp"}, z["meta.json"]
        same("with_text.npz:model.0.bias", z["model.0.bias"],
             np.load(d + "/expected/0.bias.npy"))

if __name__ == "__main__":
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2])
