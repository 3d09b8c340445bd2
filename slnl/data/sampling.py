"""§4.1 sampling: crop windows, linear resize along time, the CPU dataset and the GPU-resident loader.

The paper (§4.1, "Implementation Details"): *"we randomly crop sequences with a ratio uniformly drawn from [0.5, 1]
for training, and centrally crop sequences with a fixed ratio of 0.95 for inference. [...] we resized the sequence
to a fixed length 64/128 (NTU/Kinetics) with bilinear interpolation along the frame dimension."*

Concretely, for a clip with ``n`` valid frames (``num_frames`` in the store; padding beyond it is never read):

* training: ratio ``r ~ U[0.5, 1]``, crop length ``L = clip(rint(r * n), 1, n)``, start
  ``s = floor(u * (n - L + 1))`` with ``u ~ U[0, 1)``;
* inference: ``L = clip(rint(0.95 * n), 1, n)``, ``s = (n - L) // 2`` (central);
* resize frames ``[s, s + L)`` to ``T`` by linear interpolation along time with half-pixel centres, i.e. exactly
  ``torch.nn.functional.interpolate(mode="linear", align_corners=False)`` ("bilinear" in the paper: the joint axis is
  left untouched, so the 2-D bilinear resize of a ``(T, V)`` map reduces to linear along ``T``).

Determinism. ``r`` and ``u`` are a pure function of ``(seed, epoch, sample)`` where ``sample`` is the sample's row in
the store (not its position in a split or a batch): a counter-based hash (SplitMix64) of the four integers
``(seed, epoch, row, stream)`` mapped to ``[0, 1)``. No random state is carried from one sample to the next, so the CPU
dataset (any number of DataLoader workers, any batch order), the GPU-resident loader and a resumed run all see the
same crops. The shuffle order is ``epoch_order(n, seed, epoch)``, the one function the engine (which splits each
step's positions among ranks itself) and ``GPUResidentLoader`` use.

Velocity is *not* computed here: the model computes it from positions (``slnl.models.transform.velocity``), so the
data pipeline never has to agree with the model on how velocity frames are aligned.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from .store import Store

TRAIN_RATIO = (0.5, 1.0)  # §4.1: training crop ratio ~ U[0.5, 1]
TEST_RATIO = 0.95  # §4.1: central crop ratio at inference

_M64 = (1 << 64) - 1


# ---------------------------------------------------------------------------------------------------------- random
def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014), vectorised over uint64 arrays; wraps modulo 2**64 by design."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_uniform(seed: int, epoch: int, index: np.ndarray | Sequence[int] | int, stream: int) -> np.ndarray:
    """Uniform numbers in ``[0, 1)``, a pure function of ``(seed, epoch, index, stream)`` (vectorised over index)."""
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64)).astype(np.uint64)
    h = _splitmix64(np.full(idx.shape, int(seed) & _M64, dtype=np.uint64))
    h = _splitmix64(h ^ np.uint64(int(epoch) & _M64))
    h = _splitmix64(h ^ idx)
    h = _splitmix64(h ^ np.uint64(int(stream) & _M64))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def epoch_order(n: int, seed: int = 0, epoch: int = 0) -> np.ndarray:
    """The shuffled order of ``n`` samples for one epoch: a pure function of ``(seed, epoch)``.

    The single definition of "shuffle" in slnl: the engine (CPU DataLoader positions), ``GPUResidentLoader`` and a
    resumed run all call this, so they visit samples in the same order.
    """
    if seed < 0 or epoch < 0:
        raise ValueError(f"epoch_order: seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch), 0x0DE5])))
    return rng.permutation(int(n)).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------- crops
def crop_windows(
    num_frames: np.ndarray | Sequence[int] | int,
    train: bool,
    seed: int = 0,
    epoch: int = 0,
    index: np.ndarray | Sequence[int] | int | None = None,
    ratio: tuple[float, float] = TRAIN_RATIO,
    test_ratio: float = TEST_RATIO,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``(start, length)`` per sample (int64 arrays) following §4.1; see the module docstring for the formulas.

    ``index`` is the sample's row in the store (the identity the randomness is keyed on); required when ``train``.
    """
    n = np.atleast_1d(np.asarray(num_frames, dtype=np.int64))
    if (n < 1).any():
        raise ValueError(f"crop_windows: every clip needs >= 1 valid frame, got num_frames={n[n < 1][:5].tolist()}")
    if train:
        if index is None:
            raise ValueError("crop_windows(train=True) needs the samples' store rows as `index`")
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        lo, hi = ratio
        r = lo + (hi - lo) * hash_uniform(seed, epoch, idx, 0)
        length = np.clip(np.rint(r * n).astype(np.int64), 1, n)
        u = hash_uniform(seed, epoch, idx, 1)
        start = np.minimum(np.floor(u * (n - length + 1)).astype(np.int64), n - length)
    else:
        length = np.clip(np.rint(test_ratio * n).astype(np.int64), 1, n)
        start = (n - length) // 2
    return start, length


def resize_positions(start: np.ndarray, length: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source frames and weights of a linear resize of frames ``[start, start+length)`` to ``T`` frames.

    Half-pixel centres (``align_corners=False``): output frame ``t`` reads source position
    ``p = (t + 0.5) * length / T - 0.5`` clamped to ``[0, length - 1]``; ``out[t] = x[i0] * (1 - w) + x[i1] * w`` with
    ``i0 = floor(p)``, ``i1 = min(i0 + 1, length - 1)``, ``w = p - i0`` (then shifted by ``start``). Returns ``i0, i1``
    (int64, shape ``(B, T)``) and ``w`` (float32, ``(B, T)``).
    """
    start = np.atleast_1d(np.asarray(start, dtype=np.int64))[:, None]
    length = np.atleast_1d(np.asarray(length, dtype=np.int64))[:, None]
    t = np.arange(T, dtype=np.float64)[None, :]
    p = np.clip((t + 0.5) * (length / T) - 0.5, 0.0, (length - 1).astype(np.float64))
    i0 = np.floor(p).astype(np.int64)
    i1 = np.minimum(i0 + 1, length - 1)
    w = (p - i0).astype(np.float32)
    return i0 + start, i1 + start, w


def lerp(x0: torch.Tensor, x1: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x0 * (1 - w) + x1 * w``: the one formula both loaders use, so their float32 results are bit-identical."""
    return x0 * (1 - w) + x1 * w


# ---------------------------------------------------------------------------------------------------------- dataset
class SkeletonDataset(torch.utils.data.Dataset):
    """One split/subset of a prepared store; item ``i`` is ``(x float32 (C, T, V, M), label int)``.

    ``x`` is the store's memory map (all rows); ``indices`` are this subset's rows. Only the cropped frames of a
    sample are read from disk. Call ``set_epoch(e)`` before each epoch (with DataLoader workers, create the iterator
    after it: non-persistent workers copy the dataset at iterator creation).
    """

    def __init__(
        self,
        x: np.ndarray,
        labels: np.ndarray,
        num_frames: np.ndarray,
        names: Sequence[str],
        indices: np.ndarray,
        class_names: Sequence[str],
        T: int = 64,
        train: bool = True,
        seed: int = 0,
        meta: dict | None = None,
        store_dir: str | None = None,
    ):
        self.x, self.labels, self.num_frames = x, labels, num_frames
        self.store_dir = None if store_dir is None else str(store_dir)
        self.names = list(names)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.T, self.train, self.seed, self.epoch = int(T), bool(train), int(seed), 0
        self.meta = meta or {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    # Pickling (spawn DataLoader workers, DDP): send the store's path, not the memory map's contents (pickling an
    # np.memmap copies the whole array into every worker).
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.store_dir is not None:
            state["x"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.x is None:
            self.x = np.load(Path(self.store_dir) / "x.npy", mmap_mode="r")

    def crop(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(start, length)`` of the crops of the samples at ``positions`` (positions in this subset) this epoch."""
        rows = self.indices[positions]
        return crop_windows(self.num_frames[rows], self.train, self.seed, self.epoch, rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = int(self.indices[i])
        start, length = self.crop(np.array([i]))
        i0, i1, w = resize_positions(start, length, self.T)
        s, L = int(start[0]), int(length[0])
        clip = torch.from_numpy(np.array(self.x[row, :, s : s + L], dtype=np.float32))  # (C, L, V, M), a copy
        wt = torch.from_numpy(w[0]).view(1, -1, 1, 1)
        out = lerp(clip[:, torch.from_numpy(i0[0] - s)], clip[:, torch.from_numpy(i1[0] - s)], wt)
        return out, int(self.labels[row])

    @property
    def subset_labels(self) -> np.ndarray:
        """Labels of this subset's samples, in subset order."""
        return np.asarray(self.labels[self.indices])

    def __repr__(self) -> str:
        return (f"SkeletonDataset({self.meta.get('dataset', '?')}, n={len(self)}, classes={self.num_classes}, "
                f"T={self.T}, train={self.train}, x={tuple(self.x.shape)})")


def load(
    store_dir: str | Path,
    split: str = "xsub",
    subset: str = "train",
    T: int = 64,
    train: bool | None = None,
    seed: int = 0,
) -> SkeletonDataset:
    """One split/subset of a prepared store as a ``SkeletonDataset``.

    ``train`` (default ``subset == "train"``) selects the random crop (ratio ~ U[0.5, 1]) vs. the central crop (0.95)
    of §4.1; every crop is resized to ``T`` frames. Crops are a pure function of ``(seed, epoch, store row)``.
    """
    st = Store(store_dir)
    rows = st.rows(split, subset)
    return SkeletonDataset(
        x=st.x, labels=st.labels, num_frames=st.num_frames, names=st.names, indices=rows,
        class_names=st.class_names, T=T, train=(subset == "train") if train is None else train, seed=seed,
        meta=st.meta, store_dir=str(st.root),
    )


# ---------------------------------------------------------------------------------------------------------- GPU
class GPUResidentLoader:
    """The whole split on ``device``; crop + resize done there in batches. Yields ``(x (B,C,T,V,M) dtype, y int64)``.

    Holds each sample's valid frames padded to the split's longest clip, laid out ``(N, T_max, C, V, M)`` so that a
    batch's frames are one gather. Crop windows and resize weights come from the same functions as the CPU dataset,
    computed on the host in float64 and applied on the device in float32 (then cast to ``dtype``): in float32 on CPU
    the batches equal ``SkeletonDataset``'s exactly. Crops use ``dataset.seed`` and ``dataset.train``; the shuffle
    uses ``seed`` via ``epoch_order(len(dataset), seed, epoch)``. ``batch(positions)`` serves an
    explicit list of positions (a caller that does its own ordering, e.g. per-rank slices of ``epoch_order``).
    ``set_epoch(e)`` sets both the shuffle epoch and the dataset's crop epoch.
    """

    def __init__(
        self,
        dataset: SkeletonDataset,
        batch_size: int,
        device: str | torch.device,
        dtype: torch.dtype = torch.float32,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        chunk: int = 1024,
    ):
        self.dataset, self.batch_size, self.device = dataset, int(batch_size), torch.device(device)
        self.dtype, self.shuffle, self.seed, self.drop_last = dtype, shuffle, int(seed), drop_last
        self.epoch = 0
        rows = dataset.indices
        nf = np.asarray(dataset.num_frames[rows], dtype=np.int64)
        self.T_max = int(nf.max()) if len(nf) else 1
        N = len(rows)
        C, _, V, M = dataset.x.shape[1:]
        self.data = torch.empty((N, self.T_max, C, V, M), dtype=dtype, device=self.device)
        for a in range(0, N, chunk):  # chunked so host memory stays ~chunk samples, whatever the split size
            block = np.asarray(dataset.x[np.sort(rows[a : a + chunk])][:, :, : self.T_max], dtype=np.float32)
            order = np.argsort(np.argsort(rows[a : a + chunk]))  # undo the sort (memmap reads faster in row order)
            block = block[order]
            for j, n in enumerate(nf[a : a + chunk]):
                block[j, :, n:] = 0.0  # nothing past the valid frames is ever gathered; keep it zero regardless
            self.data[a : a + len(block)] = torch.from_numpy(block.transpose(0, 2, 1, 3, 4)).to(self.device, dtype)
        self.labels = torch.as_tensor(np.asarray(dataset.labels[rows], dtype=np.int64), device=self.device)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle epoch here and crop epoch of the dataset (``dataset.set_epoch``), so one call sets both."""
        self.epoch = int(epoch)
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self) -> np.ndarray:
        n = len(self.dataset)
        return epoch_order(n, self.seed, self.epoch) if self.shuffle else np.arange(n, dtype=np.int64)

    def batch(self, positions: np.ndarray | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of the samples at ``positions`` (positions in the split) for the current epoch."""
        pos = np.asarray(positions, dtype=np.int64)
        T = self.dataset.T
        start, length = self.dataset.crop(pos)
        i0, i1, w = resize_positions(start, length, T)
        p = self._upload(pos)[:, None]
        x0 = self.data[p, self._upload(i0)].float()  # (B, T, C, V, M)
        x1 = self.data[p, self._upload(i1)].float()
        wt = self._upload(w).view(len(pos), T, 1, 1, 1)
        x = lerp(x0, x1, wt).permute(0, 2, 1, 3, 4).contiguous().to(self.dtype)
        return x, self.labels[p[:, 0]]

    def _upload(self, a: np.ndarray) -> torch.Tensor:
        # A copy from pageable host memory to a GPU waits for the GPU's queue to drain (cudaMemcpyAsync + stream
        # synchronisation), which would stall every training step; from pinned memory it is queued like a kernel
        # (PyTorch's pinned-memory allocator keeps the buffer until the copy has run).
        t = torch.from_numpy(np.ascontiguousarray(a))
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        for b in range(len(self)):
            yield self.batch(order[b * self.batch_size : (b + 1) * self.batch_size])
