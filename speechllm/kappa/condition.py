"""Exact, fast condition numbers kappa = sigma_max / sigma_min of weight tensors, with a checked cache.

Route (all in float64, whatever the model's dtype):

1. Gram route, batched over tensors of equal shape: for W (m x n) the eigenvalues of the smaller Gram
   matrix (W^T W or W W^T) are sigma^2. ``eigvalsh`` has an absolute error of about c * u * sigma_max^2
   (u = 2^-53; c grows with the dimensions; we take c = m + n), so the relative error of kappa is about
   c * u * kappa^2 / 2: excellent for well-conditioned tensors, useless for ill-conditioned ones.
2. Tensors whose Gram estimate exceeds half of ``kappa_T = sqrt(2 * rtol / (c * u))`` (rtol = 1e-6; so
   above kappa ~ 500-940 at Llama-3-8B shapes, ~6900 at 32x64; measured Gram errors there are ~1e-10,
   the bound is conservative) are recomputed exactly: Householder QR
   W = QR (backward stable), then sigma_min = 1 / ||R^-1||_2 with R^-1 from a triangular solve and
   ||R^-1||_2^2 the largest eigenvalue of its Gram matrix. Both steps have errors of about c * u * kappa
   relative to sigma_min (first power of kappa, like an SVD), so kappa = 1e6 is good to ~1e-8, at the
   cost of a QR and a second eigvalsh instead of a full float64 SVD. If the true kappa exceeds kappa_T
   the Gram estimate cannot fall below kappa_T / sqrt(1 + 2 rtol), so the factor 2 is pure margin.
3. Numerical rank: kappa = inf when sigma_min <= sigma_max * max(m, n) * eps (NumPy's ``matrix_rank``
   tolerance), in both this route and the float64 SVD reference. Never NaN.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speechllm.errors import SelectionError

logger = logging.getLogger(__name__)

TARGET_RTOL = 1e-6  # relative accuracy of kappa we promise against a float64 SVD, up to kappa = 1e6
DEFAULT_MAX_BATCH_BYTES = 2 * 1024**3  # float64 working memory of one batch on the compute device
_U = 2.0**-53  # float64 unit roundoff
_EPS = torch.finfo(torch.float64).eps
_FINGERPRINT_VERSION = "speechllm-kappa-v1"  # bump when the kappa computation changes


class StaleKappaCacheError(SelectionError):
    """A kappa cache file does not belong to the model it is asked about."""


def _as_matrix(w: torch.Tensor) -> torch.Tensor:
    if w.ndim < 2 or w.numel() == 0:
        raise ValueError(
            f"condition numbers need a non-empty tensor with >= 2 dims, got shape {tuple(w.shape)}"
        )
    return w.detach().reshape(w.shape[0], -1)  # d_out, *rest -> d_out, prod(rest)


def _kappa_from_sigmas(s_max: float, s_min: float, m: int, n: int) -> float:
    if s_min <= s_max * max(m, n) * _EPS:  # numerically rank-deficient (includes all-zero matrices)
        return math.inf
    return s_max / s_min


def condition_number_matrix(w: torch.Tensor) -> float:
    """Reference kappa of one tensor: float64 ``svdvals`` (slow, exact)."""
    mat = _as_matrix(w).to(torch.float64)
    s = torch.linalg.svdvals(mat)  # descending
    return _kappa_from_sigmas(float(s[0]), float(s[-1]), *mat.shape)


def gram_kappa_limit(m: int, n: int, rtol: float = TARGET_RTOL) -> float:
    """Largest Gram-route kappa estimate trusted for an (m x n) matrix; above it the QR route runs."""
    return 0.5 * math.sqrt(2.0 * rtol / ((m + n) * _U))


def _bytes_per_matrix(m: int, n: int) -> int:
    q = min(m, n)
    return 8 * (m * n + 4 * q * q)  # float64 copy + Gram / eigvalsh workspace (QR route: R, I, R^-1, Gram)


def _sigma_min_qr(x: torch.Tensor, scale: float) -> float:
    """Exact-route sigma_min of a tall (p x q, p >= q) float64 matrix; ``scale`` ~ sigma_max."""
    r = torch.linalg.qr(x / scale, mode="r").R  # p, q -> q, q upper triangular
    if bool((r.diagonal() == 0).any()):
        return 0.0
    eye = torch.eye(r.shape[0], dtype=r.dtype, device=r.device)
    r_inv = torch.linalg.solve_triangular(r, eye, upper=True)  # q, q
    if not bool(torch.isfinite(r_inv).all()):
        return 0.0
    lam = float(torch.linalg.eigvalsh(r_inv.mT @ r_inv)[-1])  # ||R^-1||_2^2
    return scale / math.sqrt(lam) if lam > 0 and math.isfinite(lam) else 0.0


def _chunk_kappas(
    names: Sequence[str], tensors: Mapping[str, torch.Tensor], m: int, n: int, device: torch.device
) -> tuple[list[float], int]:
    """Kappas of equal-shape tensors (one batch) and how many took the QR route."""
    buf = torch.empty((len(names), m, n), dtype=torch.float64, device=device)  # B, m, n
    for i, name in enumerate(names):
        buf[i].copy_(_as_matrix(tensors[name]).to(device))  # move in the model's dtype, upcast on device
    finite = torch.isfinite(buf).flatten(1).all(dim=1).tolist()
    if not all(finite):
        bad = [name for name, ok in zip(names, finite, strict=True) if not ok]
        raise SelectionError(f"tensors with NaN or inf values have no condition number: {bad}; the model's "
                             "weights are broken: check the model source")
    x = buf if m >= n else buf.mT  # B, p, q with p >= q
    eig = torch.linalg.eigvalsh(x.mT @ x)  # B, q, q -> B, q (ascending)
    s_max = eig[:, -1].clamp(min=0).sqrt().tolist()
    s_min = eig[:, 0].clamp(min=0).sqrt().tolist()
    del eig
    limit = gram_kappa_limit(m, n)
    exact = 0
    kappas = []
    for i, (hi, lo) in enumerate(zip(s_max, s_min, strict=True)):
        if hi > 0 and not (lo > 0 and hi / lo <= limit):
            lo = _sigma_min_qr(x[i], hi)
            exact += 1
        kappas.append(_kappa_from_sigmas(hi, lo, m, n))
    return kappas, exact


def _resolve_device(device: str | torch.device | None, tensors: Mapping[str, torch.Tensor]) -> torch.device:
    if device is not None:
        return torch.device(device)
    first = next(iter(tensors.values()), None)
    if first is not None and first.device.type not in ("cpu", "meta"):
        return first.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def condition_numbers(
    tensors: Mapping[str, torch.Tensor],
    device: str | torch.device | None = None,
    show_progress: bool = False,
    *,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
) -> dict[str, float]:
    """Kappa of every tensor (>2-D reshaped to (d_out, rest)), in input order.

    Args:
        tensors: name -> tensor of any float dtype and device.
        device: where to compute; None: the tensors' GPU if they are on one, else CUDA if available, else CPU.
        show_progress: tqdm bar over tensors.
        max_batch_bytes: bound on the float64 working memory of one batch of equal-shape tensors.
    """
    dev = _resolve_device(device, tensors)
    groups: dict[tuple[int, int], list[str]] = {}
    for name, t in tensors.items():
        try:
            m, n = _as_matrix(t).shape
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        groups.setdefault((m, n), []).append(name)
    start, exact, out = time.perf_counter(), 0, {}
    with tqdm(total=len(tensors), desc="condition numbers", unit="tensor", disable=not show_progress) as bar:
        for (m, n), names in groups.items():
            per_batch = max(1, max_batch_bytes // _bytes_per_matrix(m, n))
            for lo in range(0, len(names), per_batch):
                chunk = names[lo : lo + per_batch]
                kappas, n_exact = _chunk_kappas(chunk, tensors, m, n, dev)
                out.update(zip(chunk, kappas, strict=True))
                exact += n_exact
                bar.update(len(chunk))
    logger.info(
        "condition numbers of %d tensors (%d shapes) on %s in %.1f s; %d recomputed by the QR route",
        len(out), len(groups), dev, time.perf_counter() - start, exact,
    )  # fmt: skip
    return {name: out[name] for name in tensors}


def _sample_bytes(t: torch.Tensor) -> bytes:
    w = t.detach().reshape(t.shape[0], -1)  # d_out, rest
    d_out, d_in = w.shape
    rows = torch.arange(d_out, device=w.device)
    cols = torch.linspace(0, d_in - 1, steps=min(d_in, 8), device=w.device).round().long()
    flat = w.reshape(-1)
    parts = [
        w[:, cols].reshape(-1),  # 8 evenly spaced columns of every row
        w[rows, (rows * 7919 + 1) % d_in],  # a skewed diagonal: every column when d_out >= d_in
        flat[:: max(1, flat.numel() // 65536)],  # a strided subset of all values
    ]
    sample = torch.cat(parts).cpu().contiguous()
    return sample.view(torch.uint8).numpy().tobytes()


def model_fingerprint(named: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, shapes, dtypes and a deterministic sample of each tensor's values.

    The sample (exact bytes in the tensor's own dtype, so identical on CPU and GPU) holds 8 evenly spaced
    columns and one skewed-diagonal element of every row, plus ~65k strided values: a change to any whole
    row (and, when d_out >= d_in, any whole column) is always detected, a change elsewhere only when it
    touches a sampled value. Cost: a few gathers per tensor, not a pass over all weights.
    """
    h = hashlib.sha256(_FINGERPRINT_VERSION.encode())
    for name in sorted(named):
        t = named[name]
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}\n".encode())
        h.update(_sample_bytes(t))
    return h.hexdigest()


def _read_cache(path: Path) -> tuple[str, dict[str, float]]:
    try:
        data = json.loads(path.read_text())
        kappas = {k: float(v) for k, v in data["kappas"].items()}
        return str(data["fingerprint"]), kappas
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise StaleKappaCacheError(
            f"{path} is not a kappa cache ({err!r}); delete it or set another cache path"
        ) from None


def _write_cache(path: Path, fingerprint: str, kappas: Mapping[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "fingerprint": fingerprint,
        "kappas": {k: "inf" if math.isinf(v) else v for k, v in kappas.items()},
    }
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_or_compute_kappas(
    model: torch.nn.Module,
    names: Sequence[str],
    cache_path: str | Path | None,
    device: str | torch.device | None = None,
    show_progress: bool = False,
) -> dict[str, float]:
    """Kappas of ``names`` (parameters of ``model``, normally the LLM alone), cached in ``cache_path``.

    The cache is keyed by :func:`model_fingerprint` of all of the model's >= 2-D parameters. A cache with
    another fingerprint raises :class:`StaleKappaCacheError`; one with the same fingerprint that lacks some
    requested names is completed (the missing kappas are computed and the file rewritten atomically).
    """
    params = dict(model.named_parameters())
    unknown = [n for n in names if n not in params or params[n].ndim < 2]
    if unknown:
        raise ValueError(f"not >= 2-D parameters of the model (names as named_parameters() gives): {unknown}")
    fingerprint = model_fingerprint({n: p for n, p in params.items() if p.ndim >= 2})
    path = Path(cache_path) if cache_path is not None else None
    cached: dict[str, float] = {}
    if path is not None and path.exists():
        found, cached = _read_cache(path)
        if found != fingerprint:
            raise StaleKappaCacheError(
                f"kappa cache {path} was computed for another model (fingerprint {found[:12]}..., this model "
                f"{fingerprint[:12]}...); delete it or point the kappa cache path to another file"
            )
    missing = [n for n in names if n not in cached]
    if missing:
        cached.update(condition_numbers({n: params[n] for n in missing}, device, show_progress))
        if path is not None:
            _write_cache(path, fingerprint, cached)
            logger.info("wrote %d condition numbers to %s", len(cached), path)
    else:
        logger.info("reused %d condition numbers from %s", len(names), path)
    return {n: cached[n] for n in names}
