"""§4.1 sampling: crop ratios, central crop, linear resize == F.interpolate, determinism, GPU-resident == CPU."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slnl.data import load
from slnl.data.sampling import GPUResidentLoader, crop_windows, epoch_order, hash_uniform, resize_positions


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A small store (varied lengths, 2 persons, non-trivial values) written through the npz converter."""
    from slnl.data.prepare import prepare_dataset

    rng = np.random.default_rng(0)
    N, C, T, V, M = 40, 3, 50, 7, 2
    nf = rng.integers(1, T + 1, N)
    nf[:3] = [1, 2, T]
    x = rng.normal(size=(N, C, T, V, M)).astype(np.float32)
    for i, n in enumerate(nf):
        x[i, :, n:] = 0
    d = tmp_path_factory.mktemp("samp")
    np.savez(d / "s.npz", x=x, labels=rng.integers(0, 4, N), num_frames=nf,
             names=np.array([f"c{i}" for i in range(N)]), class_names=np.array(list("abcd")),
             xsub_train=np.arange(N) % 4 != 0, xsub_test=np.arange(N) % 4 == 0)
    prepare_dataset("npz", d / "s.npz", d / "st", quiet=True)
    return d / "st", x, nf


def test_epoch_order_is_a_pure_permutation():
    a = epoch_order(100, seed=3, epoch=5)
    assert sorted(a.tolist()) == list(range(100))
    assert np.array_equal(a, epoch_order(100, 3, 5))
    assert not np.array_equal(a, epoch_order(100, 3, 6)) and not np.array_equal(a, epoch_order(100, 4, 5))


def test_hash_uniform_range_and_independence():
    u = hash_uniform(0, 0, np.arange(20000), 0)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.003
    v = hash_uniform(0, 0, np.arange(20000), 1)
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.03
    assert np.array_equal(hash_uniform(0, 0, [7, 3], 0), [u[7], u[3]])  # per-sample: batch composition is irrelevant


def test_train_crop_ratio_uniform_in_half_to_one():
    n = np.full(20000, 1000)
    start, length = crop_windows(n, True, seed=1, epoch=2, index=np.arange(20000))
    r = length / n
    assert r.min() >= 0.5 and r.max() <= 1.0 and abs(r.mean() - 0.75) < 0.005
    assert (start >= 0).all() and (start + length <= n).all()
    # start uniform over the feasible positions
    frac = start / (n - length + 1)
    assert abs(frac.mean() - 0.5) < 0.01
    # short clips: length in [1, n], inside the clip
    n = np.array([1, 2, 3])
    s, L = crop_windows(n, True, index=[0, 1, 2])
    assert (L >= 1).all() and (s + L <= n).all()


def test_test_crop_is_central_095():
    s, L = crop_windows([100, 64, 1, 7], False)
    assert L.tolist() == [95, 61, 1, 7] and s.tolist() == [2, 1, 0, 0]


@pytest.mark.parametrize("length,T", [(50, 64), (95, 64), (7, 64), (1, 64), (300, 64), (64, 64), (130, 128)])
def test_resize_equals_interpolate_linear(length, T):
    rng = np.random.default_rng(length)
    clip = torch.from_numpy(rng.normal(size=(1, 12, length)).astype(np.float32))  # (B, channels, time)
    ref = F.interpolate(clip, size=T, mode="linear", align_corners=False)
    i0, i1, w = resize_positions(np.array([0]), np.array([length]), T)
    w = torch.from_numpy(w[0])
    ours = clip[..., torch.from_numpy(i0[0])] * (1 - w) + clip[..., torch.from_numpy(i1[0])] * w
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    if length == T:  # identity when no resize is needed
        torch.testing.assert_close(ours, clip)


def test_dataset_item_is_crop_then_resize(store):
    root, x, nf = store
    ds = load(root, "CS", "train", T=16, seed=9)
    ds.set_epoch(3)
    assert ds.num_classes == 4 and len(ds) == 30 and ds.x.shape == (40, 3, 50, 7, 2)
    for i in [0, 5, len(ds) - 1]:
        row = ds.indices[i]
        (s,), (L,) = crop_windows(nf[row], True, 9, 3, [row])
        ref = F.interpolate(torch.from_numpy(x[row, :, s : s + L]).permute(0, 2, 3, 1).reshape(1, -1, L), size=16,
                            mode="linear", align_corners=False).reshape(3, 7, 2, 16).permute(0, 3, 1, 2)
        got, label = ds[i]
        assert got.dtype == torch.float32 and got.shape == (3, 16, 7, 2) and label == int(ds.labels[row])
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    # a pure function of (seed, epoch, sample): same value again, in any order; another epoch differs
    a = ds[4][0]
    ds[0], ds[9]
    assert torch.equal(ds[4][0], a)
    ds.set_epoch(4)
    assert not torch.equal(ds[4][0], a)
    # test subset: central crop, independent of epoch
    te = load(root, "xsub", "test", T=16)
    assert not te.train and torch.equal(te[2][0], (te.set_epoch(7), te[2][0])[1])


def test_gpu_resident_loader_equals_cpu_path(store):
    root, _, _ = store
    for subset in ("train", "test"):
        ds = load(root, "xsub", subset, T=24, seed=5)
        gl = GPUResidentLoader(ds, batch_size=7, device="cpu", dtype=torch.float32, shuffle=True, seed=11)
        assert len(gl) == -(-len(ds) // 7)
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            gl.set_epoch(epoch)
            cpu = torch.utils.data.DataLoader(ds, batch_size=7, sampler=epoch_order(len(ds), 11, epoch).tolist())
            n = 0
            for (xg, yg), (xc, yc) in zip(gl, cpu, strict=True):
                assert torch.equal(xg, xc) and torch.equal(yg, yc)  # bit-identical in float32
                n += len(yg)
            assert n == len(ds)
    # batch(positions) serves explicit positions with the same crops; set_epoch on the loader reaches the dataset
    gl.set_epoch(3)
    assert ds.epoch == 3
    xb, yb = gl.batch([4, 0, 2])
    assert torch.equal(xb, torch.stack([ds[i][0] for i in (4, 0, 2)])) and yb.tolist() == [ds[i][1] for i in (4, 0, 2)]
    gl = GPUResidentLoader(ds, batch_size=7, device="cpu", drop_last=True, shuffle=False)
    batches = list(gl)
    assert len(batches) == len(gl) == len(ds) // 7 and batches[0][0].dtype == torch.float32  # float16: asked for
    assert GPUResidentLoader(ds, batch_size=7, device="cpu", dtype=torch.float16).data.dtype == torch.float16
    assert torch.equal(batches[0][1], torch.as_tensor(ds.labels[ds.indices[:7]]))


def test_unknown_split_and_aliases(store):
    root, _, _ = store
    with pytest.raises(KeyError, match="available: xsub"):
        load(root, "xview")
    assert len(load(root, "cs", "test")) == 10


def test_pickle_sends_the_path_not_the_array(store):
    import pickle

    root, _, _ = store
    ds = load(root, "xsub", "train", T=16, seed=2)
    ds.set_epoch(5)
    blob = pickle.dumps(ds)
    assert len(blob) < ds.x.nbytes / 4  # the memory map is not copied
    back = pickle.loads(blob)
    assert isinstance(back.x, np.memmap) and back.epoch == 5
    assert torch.equal(back[3][0], ds[3][0])
