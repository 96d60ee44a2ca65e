"""The matting Laplacian (Levin, Lischinski & Weiss, "A Closed-Form Solution to Natural Image
Matting", PAMI 2008) and the photorealism term built on it (Luan et al., "Deep Photo Style
Transfer", CVPR 2017).

For an image I (here the content photo at the working resolution) and windows w_k of
(2r+1)² pixels (3x3 by default),

    L_ij = Σ_{k : i,j ∈ w_k} ( δ_ij − (1 + (I_i − μ_k)ᵀ (Σ_k + ε/|w_k| I₃)⁻¹ (I_j − μ_k)) / |w_k| ),

μ_k, Σ_k the mean and covariance of the window's colours. ``Vᵀ L V`` is small exactly when V
is, in every window, close to an affine function of I's colours, so Σ_c V_cᵀ L V_c over the
output's channels penalises colours and textures the photo's local structure does not explain.

The build is vectorised: windows gathered with NumPy stride tricks, all 3x3 inverses in one
batched ``inv``, each window's 9x9 block added to one of the 25 pixel-offset "diagonals" of L
with slice additions (processed in chunks of rows, so memory stays ~25·N floats), then the CSR
matrix assembled from the diagonals directly.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from numpy.lib.stride_tricks import sliding_window_view

DEFAULT_EPS = 1e-7


def matting_laplacian(image: np.ndarray | torch.Tensor, eps: float = DEFAULT_EPS, radius: int = 1,
                      chunk_pixels: int = 1 << 18) -> sp.csr_matrix:
    """The N x N matting Laplacian (N = H·W, row-major pixels) of an RGB image in [0, 1]
    (``H x W x 3`` array or ``1 x 3 x H x W`` / ``3 x H x W`` tensor), as float32 CSR."""
    img = _hwc(image)
    h, w = img.shape[:2]
    win = 2 * radius + 1
    size = win * win
    span = 2 * win - 1  # offsets between two pixels of one window: -2r..2r per axis
    diag = np.zeros((span, span, h, w), dtype=np.float64)  # diag[dy+2r, dx+2r, y, x] = L[(y,x), (y+dy,x+dx)]
    kh, kw = h - 2 * radius, w - 2 * radius  # window centres
    if kh > 0 and kw > 0:
        windows = sliding_window_view(img, (win, win), axis=(0, 1))  # kh, kw, 3, win, win (a view)
        offsets = [(ay, ax) for ay in range(win) for ax in range(win)]  # position in the window
        rows = max(1, chunk_pixels // kw)
        eye = np.eye(3)
        for y0 in range(0, kh, rows):
            y1 = min(kh, y0 + rows)
            pix = windows[y0:y1].reshape(-1, 3, size).transpose(0, 2, 1)  # K, 9, 3
            centred = pix - pix.mean(1, keepdims=True)
            cov = centred.transpose(0, 2, 1) @ centred / size
            inv = np.linalg.inv(cov + (eps / size) * eye)
            vals = -(1.0 + centred @ inv @ centred.transpose(0, 2, 1)) / size  # K, 9, 9
            idx = np.arange(size)
            vals[:, idx, idx] += 1.0
            vals = vals.reshape(y1 - y0, kw, size, size)
            for a, (ay, ax) in enumerate(offsets):
                for b, (by, bx) in enumerate(offsets):
                    diag[by - ay + win - 1, bx - ax + win - 1, y0 + ay:y1 + ay, ax:ax + kw] += vals[:, :, a, b]
    return _diagonals_to_csr(diag.astype(np.float32), h, w, win - 1)


def _hwc(image: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu().double()
        if t.ndim == 4:
            t = t[0]
        return t.permute(1, 2, 0).numpy()
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {arr.shape}")
    return arr


def _diagonals_to_csr(diag: np.ndarray, h: int, w: int, reach: int) -> sp.csr_matrix:
    n_pix = h * w
    grid_y, grid_x = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing="ij")
    dys, dxs = grid_y.ravel(), grid_x.ravel()
    ys, xs = np.divmod(np.arange(n_pix, dtype=np.int64), w)
    valid = ((ys[:, None] + dys) >= 0) & ((ys[:, None] + dys) < h) & ((xs[:, None] + dxs) >= 0) & ((xs[:, None] + dxs) < w)
    data = diag.reshape(len(dys), n_pix).T[valid]
    index_dtype = np.int32 if n_pix < 2**31 else np.int64
    cols = (np.arange(n_pix, dtype=np.int64)[:, None] + (dys * w + dxs)[None, :])[valid].astype(index_dtype)
    indptr = np.zeros(n_pix + 1, dtype=index_dtype)
    np.cumsum(valid.sum(1), out=indptr[1:])
    mat = sp.csr_matrix((data, cols, indptr), shape=(n_pix, n_pix))
    mat.sort_indices()
    return mat


def to_torch(mat: sp.csr_matrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor (float32)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")  # "beta state", "invariant checks"
        return torch.sparse_csr_tensor(
            torch.from_numpy(mat.indptr.astype(np.int64)), torch.from_numpy(mat.indices.astype(np.int64)),
            torch.from_numpy(mat.data.astype(np.float32)), size=mat.shape, device=device, check_invariants=False,
        )


def energy(mat: sp.csr_matrix, image: np.ndarray | torch.Tensor) -> float:
    """``Σ_c V_cᵀ L V_c / N`` of an RGB image (as the loss, without its weight)."""
    v = _hwc(image).reshape(-1, 3)
    return float((v * (mat @ v)).sum() / v.shape[0])


class _QuadraticForm(torch.autograd.Function):
    """``Σ_c V_cᵀ L V_c`` for symmetric sparse L; the gradient ``2 L V`` reuses the forward's ``L V``."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
        lv = mat @ v
        ctx.save_for_backward(lv)
        return (v * lv).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (lv,) = ctx.saved_tensors
        return 2.0 * grad * lv, None


class MattingLoss:
    """The photorealism term: ``Σ_c V_cᵀ L V_c / N`` for the output V, with L the matting
    Laplacian of ``guide`` (the content photo, ``1 x 3 x H x W``), built once."""

    def __init__(self, guide: torch.Tensor, eps: float = DEFAULT_EPS):
        self.shape = tuple(guide.shape[-2:])
        self.n = self.shape[0] * self.shape[1]
        self.matrix = to_torch(matting_laplacian(guide, eps=eps), guide.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"image is {tuple(x.shape[-2:])}, the matting Laplacian was built for {self.shape}")
        v = x[0].float().reshape(x.shape[1], self.n).t().contiguous()  # N x C
        return _QuadraticForm.apply(v, self.matrix) / self.n
