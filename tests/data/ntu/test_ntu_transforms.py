"""Tests of graphfuse.data.ntu.transforms.UniformSample against hand-worked PYSKL cases."""

from __future__ import annotations

import numpy as np
import pytest

from graphfuse.data.ntu.transforms import UniformSample


class StubRng:
    """A stand-in for numpy's Generator returning fixed draws and recording the calls."""

    def __init__(self, integers=None, choice=None) -> None:
        self._integers, self._choice, self.calls = integers, choice, []

    def integers(self, high):
        self.calls.append(("integers", np.asarray(high).tolist()))
        return self._integers(np.asarray(high))

    def choice(self, a, size, replace=True):
        self.calls.append(("choice", a, size, replace))
        return np.asarray(self._choice)


# ---------------------------------------------------------------- hand-worked, training mode
def test_train_short_sequence_loops_from_random_start() -> None:
    # n=3 < L=5: start drawn in [0, 3); start 2 -> 2,3,4,5,6 mod 3
    rng = StubRng(integers=lambda high: 2)
    got = UniformSample(5).frame_indices(3, rng)
    assert got.tolist() == [2, 0, 1, 2, 0]
    assert rng.calls == [("integers", 3)]


def test_train_between_l_and_2l_skips_chosen_gaps() -> None:
    # n=6, L=4: choose n-L=2 of the L+1=5 gaps; gaps {0, 3} -> step [1,0,0,1,0],
    # cumsum [1,1,1,2,2][:-1] -> [0,1,2,3] + [1,1,1,2] = [1,2,3,5]
    rng = StubRng(choice=[0, 3])
    got = UniformSample(4).frame_indices(6, rng)
    assert got.tolist() == [1, 2, 3, 5]
    assert rng.calls == [("choice", 5, 2, False)]


def test_train_long_sequence_one_frame_per_segment() -> None:
    # n=10, L=4: boundaries i*10//4 = [0,2,5,7,10] -> segments of sizes [2,3,2,3]
    last = StubRng(integers=lambda high: high - 1)
    assert UniformSample(4).frame_indices(10, last).tolist() == [1, 4, 6, 9]
    assert last.calls == [("integers", [2, 3, 2, 3])]
    first = StubRng(integers=lambda high: np.zeros_like(high))
    assert UniformSample(4).frame_indices(10, first).tolist() == [0, 2, 5, 7]


# ---------------------------------------------------------------- hand-worked, test mode
def test_test_mode_short_sequence_loops_from_zero() -> None:
    assert UniformSample(5, test_mode=True).frame_indices(3).tolist() == [0, 1, 2, 0, 1]
    assert UniformSample(4, test_mode=True).frame_indices(1).tolist() == [0, 0, 0, 0]


def test_test_mode_reproduces_pyskl_seed_255_draws() -> None:
    # PYSKL test mode: np.random.seed(255); ratio = rand(); off = randint(1); then the regime's
    # draws. Replay that sequence with an independent RandomState.
    rs = np.random.RandomState(255)
    rs.rand(), rs.randint(1)
    want = np.array([0, 2, 5, 7]) + rs.randint(np.array([2, 3, 2, 3]))
    assert UniformSample(4, test_mode=True).frame_indices(10).tolist() == want.tolist()

    rs = np.random.RandomState(255)
    rs.rand(), rs.randint(1)
    gaps = rs.choice(5, 2, replace=False)
    step = np.zeros(5, int)
    step[gaps] = 1
    want = np.arange(4) + np.cumsum(step)[:-1]
    assert UniformSample(4, test_mode=True).frame_indices(6).tolist() == want.tolist()


def test_test_mode_is_deterministic_and_ignores_rng() -> None:
    us = UniformSample(16, test_mode=True)
    a = us.frame_indices(100)
    b = us.frame_indices(100, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, UniformSample(16, test_mode=True, seed=0).frame_indices(100))


# ---------------------------------------------------------------- invariants
@pytest.mark.parametrize("test_mode", [False, True])
@pytest.mark.parametrize("n", [1, 7, 16, 17, 31, 32, 33, 100, 300])
def test_indices_stay_in_valid_frames(n: int, test_mode: bool) -> None:
    L = 16
    us = UniformSample(L, test_mode=test_mode)
    for s in range(20):
        idx = us.frame_indices(n, np.random.default_rng(s))
        assert idx.dtype == np.int64 and idx.shape == (L,)
        assert idx.min() >= 0 and idx.max() < n
        if n >= L:
            d = np.diff(idx)
            assert np.all(d >= 1)
            if n < 2 * L:
                assert np.all(d <= 2)
            else:
                bounds = np.arange(L + 1) * n // L
                assert np.all((idx >= bounds[:-1]) & (idx < bounds[1:]))


def test_train_mode_covers_every_offset() -> None:
    us = UniformSample(4)
    seen = np.zeros(10, bool)
    for s in range(200):
        seen[us.frame_indices(10, np.random.default_rng(s))] = True
    assert seen.all()
    starts = {int(us.frame_indices(3, np.random.default_rng(s))[0]) for s in range(100)}
    assert starts == {0, 1, 2}


def test_call_samples_only_the_valid_part() -> None:
    x = np.full((3, 300, 25, 2), np.nan, dtype=np.float32)
    n = 40
    x[:, :n] = np.arange(n, dtype=np.float32)[None, :, None, None]
    for test_mode in (False, True):
        for L in (10, 30, 100):
            out = UniformSample(L, test_mode=test_mode)(x, n, np.random.default_rng(0))
            assert out.shape == (3, L, 25, 2) and np.isfinite(out).all()
            # each output frame is one input frame, whole
            assert np.all(out == out[:1, :, :1, :1])


def test_errors() -> None:
    x = np.zeros((3, 50, 25, 2), np.float32)
    with pytest.raises(ValueError, match="Generator"):
        UniformSample(8)(x, 20, None)
    with pytest.raises(ValueError, match="num_frames"):
        UniformSample(8, test_mode=True)(x, 51, None)
    with pytest.raises(ValueError, match="clip_len"):
        UniformSample(0)


# ---------------------------------------------------------------- FrameSubsample, Compose
def test_frame_subsample_keeps_every_kth_frame() -> None:
    from graphfuse.data.ntu.transforms import FrameSubsample

    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 10, 4, 2)).astype(np.float32)
    for k in (1, 2, 3, 4, 10, 11):
        out = FrameSubsample(k)(x, 7)
        want = np.stack([x[:, t] for t in range(10) if t % k == 0], axis=1)  # loop reference
        np.testing.assert_array_equal(out, want)
        assert out.shape[1] == -(-10 // k)
    fs = FrameSubsample(3)
    # valid frames ceil(n / k): frames 0, 3, 6 of 7 valid frames; 0, 3 of 6; 0 of 1
    assert [fs.valid_frames(n) for n in (7, 6, 1, 300)] == [3, 2, 1, 100]


def test_compose_subsample_then_uniform_sample() -> None:
    from graphfuse.data.ntu.transforms import Compose, FrameSubsample

    x = np.full((3, 300, 25, 2), np.nan, dtype=np.float32)
    n = 95
    x[:, :n] = np.arange(n, dtype=np.float32)[None, :, None, None]  # frame t holds the value t
    k, L = 3, 16
    tf = Compose([FrameSubsample(k), UniformSample(L, test_mode=True)])
    out = tf(x, n, None)
    # test mode: the clip of the 32 = ceil(95 / 3) kept frames, i.e. original frames 3 * i
    idx = UniformSample(L, test_mode=True).frame_indices(32)
    np.testing.assert_array_equal(out[0, :, 0, 0], 3 * idx)
    assert np.isfinite(out).all() and out.shape == (3, L, 25, 2)
    assert tf.valid_frames(n) == L
    # training mode: every sampled frame is a kept, valid frame, whatever the draw
    tf_train = Compose([FrameSubsample(k), UniformSample(L)])
    for seed in range(20):
        frames = tf_train(x, n, np.random.default_rng(seed))[0, :, 0, 0]
        assert np.all(frames % k == 0) and np.all(frames < n) and np.all(np.diff(frames) > 0)


def test_frame_subsample_errors() -> None:
    from graphfuse.data.ntu.transforms import FrameSubsample

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="frame stride"):
            FrameSubsample(bad)
    with pytest.raises(ValueError, match="C, T, V, M"):
        FrameSubsample(2)(np.zeros((3, 10, 25)), 5)
    with pytest.raises(ValueError, match="num_frames"):
        FrameSubsample(2)(np.zeros((3, 10, 25, 2)), 11)
