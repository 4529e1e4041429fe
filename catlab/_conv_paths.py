"""Which convolution kernels run, and how their work is split among threads.

:mod:`catlab.functional` validates the arguments and allocates the outputs;
this module picks kernels from :mod:`catlab._kernels.conv`,
:mod:`catlab._kernels.conv_tiled` and :mod:`catlab._winograd` and runs them on
catlab's threads (:mod:`catlab._threads`). All compute the same convolution;
they differ in speed only.

============  =====================================================  ===================================
path          condition                                              kernels
============  =====================================================  ===================================
tiled         float32 on a CPU with AVX-512 or AVX2 + FMA            ``conv2d_tiled_forward`` (tiles
              (``TILED``; tile sizes per ``WIDE_REGISTERS``), a      across positions) or
              stride no longer than the kernel's extent and at most
              ``TILED_MAX_EXTRA`` of extra wide columns; takes       ``conv2d_ftiled_forward`` (across
              precedence over every path below. The backward pass    filters, small images; see
              also needs stride 1 or dilation 1, and finite x, dy    :func:`tiled_kind`);
              and weight (else the paths below)                      ``conv2d_tiled_weight_grad``, and
                                                                     dx as tiled forward passes of dy
                                                                     (stride 1) or
                                                                     ``conv2d_tiled_input_grad`` (every
                                                                     stride phase; across dx channels:
                                                                     ``conv2d_ftiled_input_grad``, see
                                                                     :func:`input_grad_kind`)
direct        stride 1, one group, C_in <= ``DIRECT_MAX_CHANNELS``   ``conv2d_direct_forward``,
              and C_out <= ``DIRECT_MAX_FILTERS``; the forward pass  ``conv2d_direct_backward``
              only with fewer samples than threads (else wide:
              measured twice as fast on LeNet's first layer)
wide          not direct, a sample per thread (or a small layer), a  ``conv2d_wide_forward``,
              no longer than the kernel's extent, and the padded     ``conv2d_wide_backward``
              width (of a stride phase) adds at most
              ``WIDE_MAX_EXTRA`` of extra columns; 1x1 stride-1
              unpadded kernels skip the copy (a plain product)
product       1x1, stride 1, no padding, one group, the work of one  NumPy's ``matmul`` per sample
              chunk (:func:`plain_product`); after tiled             (:func:`_forward_product`,
                                                                     :func:`_backward_product`)
im2col        everything else (fewer samples than threads: then      ``conv2d_im2col_forward``,
              row blocks; strides longer than the kernel)            ``conv2d_im2col_backward``,
                                                                     ``conv2d_im2col_scatter``
winograd      forward only, taking precedence over wide and im2col: ``winograd2_chunk``,
              3x3, stride 1, dilation 1, one group, symmetric       ``winograd4_chunk``
              padding, finite x and weight, and                     (:mod:`catlab._winograd`)
              :func:`catlab._winograd.use_winograd` (F(2x2, 3x3);
              >= 16 channels and outputs of 32x32, or 15x15 with
              32 channels or a batch of one)
============  =====================================================  ===================================

The tiled kernels keep a tile of outputs (8 filters by 32 wide positions, or 16 positions by 16
filters, ...) as 16 vectors of 16 float32 sums in registers and read the padded input in place: no
columns, no BLAS. On the batch-64 layers of ``python -m catlab.bench`` (two threads, runs before and
after) their forward passes took 0.4-1.0 of the BLAS paths' time (VGG 64->64 3x3: 13.1 ms against
Winograd's 18.7 ms; LeNet's second layer: equal), and most backward passes less. Their forward
results do not depend on the thread count; the weight gradient's batch sums are added in chunk order.

Winograd's F(2x2, 3x3) and F(4x4, 3x3) do 2.25 and 4 times fewer multiplications than the
direct sum; their float32 round-off is about 2.5e-7 and 8e-6 of the output's largest value (im2col:
4e-7). A non-finite input or weight would spread over a whole tile through the transforms, so such
calls keep the other paths, where inf and NaN propagate as in PyTorch.

The direct kernels loop over the few channels without any matrix product;
the wide and im2col kernels unroll receptive fields into a workspace and
call BLAS (kept single-threaded, see :mod:`catlab._threads`). Weight and bias
gradients are summed over the batch in per-chunk buffers added up in chunk
order, so results depend on the thread count only, never on timing.

Geometry names: ``sh, sw`` stride, ``ph, pw`` top/left padding, ``dil_h,
dil_w`` dilation, ``R, S`` kernel height and width, ``P, Q`` output height
and width, ``T`` the thread count.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from . import _threads, _winograd
from ._kernels import conv as _conv
from ._kernels import conv_tiled as _tiled
from ._kernels import parallel as _par
from ._kernels import simd as _simd

#: The direct (no im2col) kernels are used up to this many input channels and
#: filters (stride 1, one group); above them, im2col + BLAS was faster here.
DIRECT_MAX_CHANNELS = 3
DIRECT_MAX_FILTERS = 8

#: The "wide column" kernels compute each output row at the width of a padded
#: stride phase, Wph = ceil(((Q-1)*sw + dil_w*(S-1) + 1) / sw) (Q + dil_w*(S-1)
#: for stride 1; extra columns discarded), which turns im2col into contiguous
#: copies; used when that adds at most this share of extra work.
WIDE_MAX_EXTRA = 0.5

#: With fewer samples than threads, the wide kernels still run (on the samples' threads
#: only) up to this many forward multiply-adds: measured at batch 1 on 2 threads, the
#: whole-sample wide kernels took 0.5-0.7 of the time of 2 row blocks of im2col up to
#: about 2e7 (forward and backward), and lost above.
WIDE_ONE_THREAD_WORK = 2e7

#: A convolution is split among threads only in chunks of at least this many
#: multiply-adds (about 15-30 us of work; ten times more when catlab's pool of Python
#: threads runs the chunks, see :func:`catlab._threads.chunks_for`). Starting Numba's
#: threads costs about 2 us while they still spin after the last call (up to 100 us idle,
#: measured on 2 vCPUs, AMD EPYC, KVM) and about 30 us once they sleep (1 ms idle). On a
#: quiet machine, batch-1 forward passes of 1-2.5e6 multiply-adds ran 0.7-0.9x the time in
#: two chunks (64x8x8 -> 64 3x3: 0.65 of the kernel's time; 7x7 16x16x16 -> 16: 0.72);
#: this was 2e6 when measured on a busy machine, where one chunk was 10-30% faster.
MIN_CHUNK_WORK = 1e6


#: Whether Numba compiles for AVX-512 (a 16-float vector is one register, 32 of them) or only AVX2 with
#: FMA (a vector is two 8-float registers, 16 of them): it decides which tiles fit in the registers.
WIDE_REGISTERS = _simd.host_has_avx512()

#: The register-tiled kernels (:mod:`catlab._kernels.conv_tiled`) take every float32 forward they can
#: (module table) on CPUs with AVX-512, or AVX2 and FMA (then with the smaller tiles of 6 filters by 16
#: positions, :func:`tiled_block`); elsewhere the other paths.
TILED = WIDE_REGISTERS or _simd.host_has_avx2_fma()

#: The tiled kernels compute the wide layout's extra columns too; used up to this share of them.
TILED_MAX_EXTRA = 0.5

#: Below this many forward multiply-adds the backward pass keeps the other paths, and so does the
#: forward pass of the few-channel layers the direct kernels take (LeNet's first layer): measured at batch 1
#: on 2 threads (AVX2), the tiled backward took 1.1-1.8x their time from 580 to 3.5e5 multiply-adds (more
#: steps per call: the weights' check, the flipped filters, two kernels) and 0.7-0.8x from 4.1e5 up. Other
#: forward passes take the tiled kernels at any size: 0.5-0.6x the time of the wide and im2col kernels down
#: to a 4x4 image of 4 channels (12 us against 20). Keeping LeNet at batch 2 off the tiled kernels also
#: keeps the cold start (``catlab.bench``'s compile times: every kernel the first LeNet step needs, compiled
#: afresh) from compiling them: 18 s with them off, 32 s with the tiled forward and backward on (a busy
#: machine; 12 s quiet).
TILED_MIN_WORK = 5e5


class Geometry(NamedTuple):
    """Stride, top/left padding, dilation and output size of one convolution (2-D view)."""

    sh: int
    sw: int
    ph: int
    pw: int
    dil_h: int
    dil_w: int
    P: int
    Q: int


def use_direct(C, K, groups, sh, sw) -> bool:
    """Whether a convolution takes the direct small-channel kernels (forward and backward)."""
    return C <= DIRECT_MAX_CHANNELS and K <= DIRECT_MAX_FILTERS and groups == 1 and sh == 1 and sw == 1


def wide_extra(P, Q, R, S, sh, sw, dil_h, dil_w) -> float:
    """The wide layout's matrix-product size over the plain one: L / (P*Q), L = (P-1)*Wph + Q."""
    Wph = ((Q - 1) * sw + dil_w * (S - 1) + sw) // sw
    return ((P - 1) * Wph + Q) / (P * Q)


def use_wide(N, T, sh, sw, P, Q, R, S, dil_h, dil_w, work=None) -> bool:
    """Whether a convolution takes the wide-column kernels (module table).

    Few extra columns, a stride no longer than the kernel's extent (else whole
    stride phases would be copied that no tap reads), and enough samples for
    every thread, or fewer samples but at most ``WIDE_ONE_THREAD_WORK``
    forward multiply-adds (``work``): the wide kernels split samples, not rows,
    and so few are faster whole than split into row blocks.
    """
    if sh > dil_h * (R - 1) + 1 or sw > dil_w * (S - 1) + 1:
        return False
    if N < T and (work is None or work > WIDE_ONE_THREAD_WORK):
        return False
    return wide_extra(P, Q, R, S, sh, sw, dil_h, dil_w) <= 1 + WIDE_MAX_EXTRA


def use_tiled(dtype, R, S, geo: Geometry, few=False) -> bool:
    """Whether a forward pass takes the register-tiled kernels (module table); ``few``: a few-channel layer
    (:func:`use_direct`) of less than ``TILED_MIN_WORK`` multiply-adds, which keeps the direct kernels."""
    if not TILED or dtype != np.float32 or few:
        return False
    sh, sw, ph, pw, dil_h, dil_w, P, Q = geo
    if sh > dil_h * (R - 1) + 1 or sw > dil_w * (S - 1) + 1:
        return False  # whole stride phases would be copied that no tap reads
    if (R, S, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0):
        return False  # a plain matrix product per sample: BLAS, on the input as it is, was 3x as fast
    return wide_extra(P, Q, R, S, sh, sw, dil_h, dil_w) <= 1 + TILED_MAX_EXTRA


def use_tiled_backward(dtype, R, S, geo: Geometry, work=None) -> bool:
    """Whether a backward pass takes the tiled kernels: as the forward, stride 1 or dilation 1 (the input
    gradient is then one forward convolution of dy with the flipped filters, or one per stride phase), and
    at least ``TILED_MIN_WORK`` forward multiply-adds (``work``, if given)."""
    sh, sw, _, _, dil_h, dil_w = geo[:6]
    if (sh, sw) != (1, 1) and (dil_h, dil_w) != (1, 1):
        return False
    if work is not None and work < TILED_MIN_WORK:
        return False
    return use_tiled(dtype, R, S, geo)


def tiled_block(Kg) -> int:
    """Filters per tile of the tiles across positions: 8 or 4, the one that pads the group's Kg filters least
    (8 on a tie), where a vector is one register (``WIDE_REGISTERS``); else 6 (6 filters by 16 positions:
    12 of the 16 AVX2 registers hold the sums; 8 by 32 would need 32 and spill, measured 2x slower)."""
    if not WIDE_REGISTERS:
        return 6
    return 4 if -(-Kg // 4) * 4 < -(-Kg // 8) * 8 else 8


def tiled_filters(Kg, KB) -> int:
    """Filters the tiles across positions compute for ``Kg`` (the kept ones and those thrown away): whole
    blocks of ``KB``; with KB = 6 (AVX2) the last block is a tile of 2, 4 or 6 filters, whichever holds the
    filters left (:func:`catlab._kernels.conv_tiled._tile_run`: 20 filters are 6, 6, 6 and 2).

    Examples
    --------
    >>> tiled_filters(20, 6), tiled_filters(16, 6), tiled_filters(20, 8)
    (20, 16, 24)
    """
    if KB != 6:
        return -(-Kg // KB) * KB
    left = Kg % 6
    return Kg - left + (0 if left == 0 else 2 if left <= 2 else 4 if left <= 4 else 6)


#: Without AVX-512, the weight gradient takes vectors across filters where the group's filters fill at
#: least this share of their 16-filter vectors' lanes (measured on AVX2: 12 or 16 filters 0.5-0.85 of the
#: time of the 2-by-3 tiles, 20 filters equal, 8 filters 1.1, 6 filters 1.6-1.7).
FILTER_GRAD_MIN_FILL = 0.7


def grad_block(Kg) -> int:
    """Filters per tile of the tiled weight gradient for ``Kg`` filters per group: 4 (by 4 taps) where a
    vector is one register (``WIDE_REGISTERS``); else 16 (one vector across filters, by 6 taps, no lane
    sums to add up) where they fill ``FILTER_GRAD_MIN_FILL`` of the lanes, else 2 (by 3 taps). Each keeps
    12 of AVX2's 16 registers for sums; 4 by 4 would need 32.

    On AMD Zen 4 (``CPU_NAME`` ``znver4``, AVX-512) also 16 where they fill the lanes as much: measured at
    0.70-0.94 of the 4-by-4 tiles' backward time (2 threads; batch 64: ch 64x8x8 -> 64 3x3 0.84, 7x7
    16x16x16 -> 16 0.88, VGG 64x32x32 -> 64 0.94, stride-2 32x16x16 -> 64 0.87; batch 1: ch 64x8x8
    0.70, 32x16x16 -> 64 0.82)."""
    fills = Kg / (-(-Kg // 16) * 16) >= FILTER_GRAD_MIN_FILL
    if WIDE_REGISTERS:
        return 16 if fills and CPU_NAME == "znver4" else 4
    return 16 if fills else 2


#: LLVM's name of the CPU the kernels are compiled for: the speeds below differ between CPUs with the
#: same registers.
CPU_NAME = _simd.host_cpu_name()

#: The tiles with vectors across filters run at about this share of the speed of the tiles across
#: positions on the same useful work, for 16 and 32 filters per tile (they load one number per position
#: and tap: 17 loads per 16 multiply-adds with 16 filters, 10 with 32); measured on 8x8 to 16x16 images
#: on an Intel CPU with AVX-512 (two 512-bit fused multiply-add units: the loads are what limits).
FILTER_TILES_SPEED = {16: 0.55, 32: 0.8}

#: The same on AMD Zen 4 (LLVM's ``znver4``), which runs one 512-bit fused multiply-add per cycle (on
#: two 256-bit units), so the tiles' extra loads mostly hide behind them: measured on 18 layers at batch
#: 64 (2 threads), 16 filters per tile ran at 0.72-0.96 (median 0.89) of the positions' speed, 32 at
#: 0.70-0.79 (median 0.75); ch 64x8x8 -> 64 3x3 took 0.82 of the time with 16 filters per tile than with
#: 32, LeNet's second layer 0.78 and ch 16x8x8 -> 16 0.81 of the time with 16 than across positions.
FILTER_TILES_SPEED_ZEN4 = {16: 0.89, 32: 0.75}

#: ... except that on Zen 4, once the tiles across 16 filters stored their output as vectors and read
#: strided inputs without a phase split, they ran as fast as the tiles across positions per computed
#: number wherever a filter block's packed weights (``taps`` x 16 x 4 bytes) fit the 32 KiB first-level
#: cache, ``FILTER_TILES_L1_TAPS`` taps or fewer: measured on 14 layers at batch 64 (one thread) at 0.84-1.19
#: (median 1.0) of their speed, against 0.88 for VGG's 576 taps (64x32x32 -> 64 3x3: 1.067x the time of
#: the tiles across positions, whose wide rows keep 94% of their work).
FILTER_TILES_SPEED_ZEN4_L1 = 1.0
FILTER_TILES_L1_TAPS = 512

#: The same without AVX-512, for the tiles of 6 positions by 16 filters against those of 6 filters by 16
#: positions (both 8 loads per 12 register multiply-adds): measured on AVX2 (AMD Zen 3) at 0.69-1.05 of
#: the positions' time where 16, 32 or 64 filters fill the vectors (7x7 16->16 0.69, VGG 0.84, LeNet c2
#: 0.79, stride-2 5x5 16->32 1.05), 1.17 with 20 filters: weighed equal.
FILTER_TILES_SPEED_AVX2 = 1.0

#: ... and only for at least this many output positions in the batch: packing the filters tap by tap costs
#: about 1 ns per weight (40 us for 64 filters of 64x3x3 measured on AVX2, NumPy's copies 51 us),
#: which at batch 1 made them 1.1-1.3x slower than the tiles across positions, which read the weights as
#: they are (8x8 to 32x32 images, 16-64 channels; one 16x8x8 layer the other way, 0.83x). With AVX-512
#: (Zen 4) at batch 1: 1.1-2.2x slower (ch 64x8x8 -> 64 3x3: 160 us with 32 filters per tile, 73 us
#: across positions; s2 32x16x16 -> 64 83 against 72).
FILTER_TILES_MIN_POSITIONS = 2048


def filter_tiles_speed(KV, taps=None) -> float:
    """The speed of the tiles across ``KV`` filters against the tiles across positions on this CPU, for
    filters of ``taps`` weights each (Cg*R*S; if given: on Zen 4 at most ``FILTER_TILES_L1_TAPS`` of them
    run 16 filters per tile at ``FILTER_TILES_SPEED_ZEN4_L1``)."""
    if not WIDE_REGISTERS:
        return FILTER_TILES_SPEED_AVX2
    if CPU_NAME != "znver4":
        return FILTER_TILES_SPEED[KV]
    if KV == 16 and taps is not None and taps <= FILTER_TILES_L1_TAPS:
        return FILTER_TILES_SPEED_ZEN4_L1
    return FILTER_TILES_SPEED_ZEN4[KV]


def tiled_kind(Kg, R, S, geo: Geometry, N=None, taps=None) -> tuple[str, int]:
    """``("positions", KB)`` or ``("filters", KV)``: which tiled forward kernel, and its filters per tile.

    Each computes some positions or filters it throws away (the wide rows and whole tiles of positions;
    filters up to a whole tile, :func:`tiled_filters`); the kind that keeps the larger share of its work,
    weighed by its speed (:func:`filter_tiles_speed` for filters of ``taps`` weights, if given; with
    AVX-512 and more than 16 filters, tiles of 16 and of 32 filters are both weighed).
    For fewer than ``FILTER_TILES_MIN_POSITIONS`` positions in the ``N`` samples (if given), the tiles
    across positions: packing the filters for the others costs about a nanosecond per weight, as much as
    the whole layer at batch 1 on small images.
    """
    sh, sw, _, _, dil_h, dil_w, P, Q = geo
    KB = tiled_block(Kg)
    if N is not None and N * P * Q < FILTER_TILES_MIN_POSITIONS:
        return "positions", KB
    Wph = ((Q - 1) * sw + dil_w * (S - 1) + sw) // sw
    L = (P - 1) * Wph + Q
    tile = _tiled.tile_size(KB)
    best, kind = P * Q / (-(-L // tile) * tile) * Kg / tiled_filters(Kg, KB), ("positions", KB)
    for KV in (16, 32) if WIDE_REGISTERS and Kg > 16 else (16,):
        PT = filter_tile_positions(KV)
        weighed = P * Q / (-(-(P * Q) // PT) * PT) * Kg / (-(-Kg // KV) * KV) * filter_tiles_speed(KV, taps)
        if weighed > best:
            best, kind = weighed, ("filters", KV)
    return kind


def filter_tile_positions(KV) -> int:
    """Positions per tile of the tiles across filters with KV filters: 16 for KV = 16 where a vector is one
    register (``WIDE_REGISTERS``), else 6 (12 of AVX2's 16 registers hold the sums); 8 for KV = 32 (which
    :func:`tiled_kind` chooses only with AVX-512)."""
    if KV == 32:
        return _tiled.FTILE_32
    return _tiled.FTILE_16 if WIDE_REGISTERS else _tiled.FTILE_6


def pack_filters(w4, groups, KB):
    """``wpk`` (G, nkb, Cg*R*S, KB): each group's filters in blocks of KB, tap by tap, zero past the last."""
    K, Cg, R, S = w4.shape
    wf = np.ascontiguousarray(w4, dtype=np.float32).reshape(-1)
    return _tiled.pack_filter_vectors(wf, groups, K // groups, Cg * R * S, KB)  # (G, nkb, Cg*R*S, KB)


def choose(N, C, K, groups, R, S, geo: Geometry, T) -> str:
    """The path name, ``"direct"``, ``"wide"`` or ``"im2col"``, for this call (see the module table)."""
    if use_direct(C, K, groups, geo.sh, geo.sw):
        return "direct"
    work = N * K * (C // groups) * R * S * geo.P * geo.Q  # forward multiply-adds
    if use_wide(N, T, geo.sh, geo.sw, geo.P, geo.Q, R, S, geo.dil_h, geo.dil_w, work):
        return "wide"
    return "im2col"


def winograd_tile(x4, w4, groups, geo: Geometry) -> int:
    """Winograd's tile size (2 or 4) for this forward call, or 0 to use the other paths (module table)."""
    N, C, H, W = x4.shape
    K, _, R, S = w4.shape
    symmetric = geo.P == H + 2 * geo.ph - R + 1 and geo.Q == W + 2 * geo.pw - S + 1
    if not symmetric or (geo.sh, geo.sw, geo.dil_h, geo.dil_w) != (1, 1, 1, 1):
        return 0
    m = _winograd.use_winograd(N, C, K, H, W, R, S, 1, (geo.ph, geo.pw), 1, groups)
    # one pass each; a sum that is not finite means an inf or NaN (or an overflow: then also no Winograd)
    if m and np.isfinite(np.sum(w4)) and np.isfinite(np.sum(x4)):
        return m
    return 0


def plain_product(N, C, K, groups, R, S, geo: Geometry, T) -> bool:
    """Whether a call is a 1x1 convolution without stride, padding or groups whose work fits one chunk: then
    each sample is one matrix product, done by NumPy's BLAS on the calling thread (:func:`_forward_product`).

    Measured at batch 1 (AVX2, 2 threads), 64x16x16 -> 32: forward 12 us for the product against 35 us for
    the wide kernel's call (the kernels' BLAS, the thread limit set and restored around it, per-call checks).
    """
    if groups != 1 or (R, S, geo.sh, geo.sw, geo.ph, geo.pw) != (1, 1, 1, 1, 0, 0):
        return False
    if not _threads.numpy_blas_limitable():
        return False  # NumPy's BLAS might start its own threads (see catlab._threads)
    return _threads.chunks_for(N, K * C * geo.P * geo.Q, T, MIN_CHUNK_WORK) == 1


def _forward_product(x4, w4, b):
    """y (N, K, P, Q) of a plain 1x1 convolution (:func:`plain_product`): w (K, C) @ x[n] (C, H*W) + b."""
    N, C, H, W = x4.shape
    K = w4.shape[0]
    with _threads.numpy_blas_single_threaded():
        y = np.matmul(w4.reshape(K, C), x4.reshape(N, C, H * W))  # (N, K, H*W)
    y += b.reshape(K, 1)
    return y.reshape(N, K, H, W)


def _backward_product(dy4, x4, w4):
    """(dx, dweight, db) of a plain 1x1 convolution (:func:`plain_product`), by NumPy's BLAS on this thread."""
    N, C, H, W = x4.shape
    K = w4.shape[0]
    dy3 = dy4.reshape(N, K, H * W)  # (N, K, H*W)
    x3 = x4.reshape(N, C, H * W)  # (N, C, H*W)
    with _threads.numpy_blas_single_threaded():
        dx = np.matmul(w4.reshape(K, C).T, dy3)  # (N, C, H*W)
        dweight = dy3[0] @ x3[0].T  # (K, C)
        for n in range(1, N):  # the batch sum in sample order
            dweight += dy3[n] @ x3[n].T
    db = dy3.sum(axis=(0, 2))  # (K,)
    return dx.reshape(N, C, H, W), dweight.reshape(w4.shape), db


def _row_blocks(N, T):
    """Blocks of output rows per sample so that ``T`` threads all get work: 1 when N >= T."""
    return 1 if N >= T else -(-T // N)


# ----------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------


def forward(x4, w4, b, groups, geo: Geometry):
    """y (N, K, P, Q) = the convolution of ``x4`` (N, C, H, W) with ``w4`` (K, Cg, R, S) plus ``b`` (K,)."""
    N, C = x4.shape[:2]
    K, Cg, R, S = w4.shape
    sh, sw, ph, pw, dil_h, dil_w, P, Q = geo
    T = _threads.num_threads()
    few = use_direct(C, K, groups, sh, sw) and N * K * Cg * R * S * P * Q < TILED_MIN_WORK
    if use_tiled(x4.dtype, R, S, geo, few):
        return _forward_tiled(x4, w4, b, groups, geo, T)
    if plain_product(N, C, K, groups, R, S, geo, T):
        return _forward_product(x4, w4, b)
    path = choose(N, C, K, groups, R, S, geo, T)
    if path == "direct" and N >= T and use_wide(N, T, sh, sw, P, Q, R, S, dil_h, dil_w):
        path = "wide"  # measured twice as fast with a sample per thread (module table)
    m = 0 if path == "direct" else winograd_tile(x4, w4, groups, geo)
    if m:
        return _winograd.conv2d_winograd(x4, w4, b, (ph, pw), m=m)  # (N, K, P, Q)
    if path == "direct":
        y = np.empty((N, K, P, Q), dtype=x4.dtype)  # (N, K, P, Q)
        kb = K if N >= T else -(-K // T)  # filters per item: split them when samples are few
        n = _threads.chunks_for(N * -(-K // kb), kb * C * R * S * P * Q, T, MIN_CHUNK_WORK)
        if n == 1:
            kb = K
        _threads.run_kernel(
            _conv.conv2d_direct_forward,
            _par.conv2d_direct_forward,
            N * -(-K // kb),
            n,
            (x4, w4, b, R, S, ph, pw, dil_h, dil_w, P, Q, kb),
            (y,),
        )
        return y
    G = groups
    w3 = w4.reshape(G, K // G, Cg * R * S)  # (G, Kg, Cg*R*S)
    y4 = np.empty((N, G, K // G, P * Q), dtype=x4.dtype)  # (N, G, Kg, P*Q)
    if path == "wide":
        n = _threads.chunks_for(N * G, (K // G) * Cg * R * S * P * Q, T, MIN_CHUNK_WORK)
        _threads.run_kernel(
            _conv.conv2d_wide_forward,
            _par.conv2d_wide_forward,
            N * G,
            n,
            (x4, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q),
            (y4,),
            blas=True,
        )
    else:
        nb = _row_blocks(N, T)
        n = _threads.chunks_for(N * G * nb, (K // G) * Cg * R * S * P * Q / nb, T, MIN_CHUNK_WORK)
        if n == 1:
            nb = 1
        _threads.run_kernel(
            _conv.conv2d_im2col_forward,
            _par.conv2d_im2col_forward,
            N * G * nb,
            n,
            (x4, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, nb),
            (y4,),
            blas=True,
        )
    return y4.reshape(N, K, P, Q)


def _forward_tiled(x4, w4, b, groups, geo: Geometry, T):
    """The forward pass on the register-tiled kernels; items (sample, group, part of the positions)."""
    N = x4.shape[0]
    K, Cg, R, S = w4.shape
    sh, sw, ph, pw, dil_h, dil_w, P, Q = geo
    G, Kg = groups, K // groups
    kind, KB = tiled_kind(Kg, R, S, geo, N=N * G, taps=Cg * R * S)
    # fewer samples than threads: each (sample, group) in parts (the tiled kernels' units of a tile of
    # positions by a block of filters; the tiles across filters split their tiles of positions)
    parts = 1 if N * G >= T else -(-T // (N * G))
    work = Kg * Cg * R * S * P * Q  # multiply-adds per (sample, group)
    n = _threads.chunks_for(N * G * parts, work / parts, T, MIN_CHUNK_WORK)
    if n == 1:
        parts = 1
    y4 = np.empty((N, G, Kg, P * Q), dtype=np.float32)  # (N, G, Kg, P*Q)
    geometry = (R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q)
    if kind == "positions":  # the filter matrix as it is
        w3 = np.ascontiguousarray(w4).reshape(G, Kg, Cg * R * S)  # (G, Kg, Cg*R*S)
        kernel, parallel, before = _tiled.conv2d_tiled_forward, _par.conv2d_tiled_forward, (x4, w3, b, *geometry, KB)
    else:  # packed tap by tap
        wpk = pack_filters(w4, G, KB)  # (G, nkb, Cg*R*S, KB)
        PT = filter_tile_positions(KB)
        kernel, parallel = _tiled.conv2d_ftiled_forward, _par.conv2d_ftiled_forward
        before = (x4, wpk, b, *geometry, PT)
    _threads.run_kernel(kernel, parallel, N * G * parts, n, (*before, parts), (y4,))
    return y4.reshape(N, K, P, Q)


# ----------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------


def backward(dy4, x4, w4, groups, geo: Geometry):
    """(dx (N, C, H, W), dweight (K, Cg, R, S), dbias (K,)) for ``dy4`` (N, K, P, Q)."""
    N, C = x4.shape[:2]
    K, Cg, R, S = w4.shape
    sh, sw, ph, pw, dil_h, dil_w, P, Q = geo
    T = _threads.num_threads()
    if use_tiled_backward(x4.dtype, R, S, geo, N * K * Cg * R * S * P * Q):
        grads = _backward_tiled(dy4, x4, w4, groups, geo, T)
        if grads is not None:
            return grads
    if plain_product(N, C, K, groups, R, S, geo, T):
        return _backward_product(dy4, x4, w4)
    path = choose(N, C, K, groups, R, S, geo, T)
    db = np.empty(K, dtype=x4.dtype)  # (K,)
    if path == "direct":
        dx = np.empty(x4.shape, dtype=x4.dtype)  # (N, C, H, W), every sample written once
        dweight = np.empty(w4.shape, dtype=x4.dtype)  # (K, C, R, S)
        n = _threads.chunks_for(N, 2 * K * C * R * S * P * Q, T, MIN_CHUNK_WORK)
        _threads.run_kernel(
            _conv.conv2d_direct_backward,
            _par.conv2d_direct_backward,
            N,
            n,
            (x4, w4, dy4, R, S, ph, pw, dil_h, dil_w, P, Q),
            (dx,),
            sums=(dweight, db),
        )
        return dx, dweight, db
    G, Kg = groups, K // groups
    # (G, Cg*R*S, Kg): each group's filters transposed, contiguous for BLAS
    wT = np.ascontiguousarray(w4.reshape(G, Kg, Cg * R * S).transpose(0, 2, 1))
    dyg = dy4.reshape(N, G, Kg, P * Q)  # (N, G, Kg, P*Q)
    dweight = np.empty((G, Kg, Cg * R * S), dtype=x4.dtype)  # (G, Kg, Cg*R*S)
    if path == "wide":
        dx = np.empty(x4.shape, dtype=x4.dtype)  # (N, C, H, W), every (sample, group) written once
        n = _threads.chunks_for(N * G, 2 * Kg * Cg * R * S * P * Q, T, MIN_CHUNK_WORK)
        _threads.run_kernel(
            _conv.conv2d_wide_backward,
            _par.conv2d_wide_backward,
            N * G,
            n,
            (x4, wT, dyg, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q),
            (dx,),
            sums=(dweight, db),
            blas=True,
        )
        return dx, dweight.reshape(w4.shape), db
    dx = np.zeros(x4.shape, dtype=x4.dtype)  # (N, C, H, W), scatter-added into
    nb = _row_blocks(N, T)
    n = _threads.chunks_for(N * G * nb, 2 * Kg * Cg * R * S * P * Q / nb, T, MIN_CHUNK_WORK)
    if n == 1:
        nb = 1
    # nb > 1 (fewer samples than threads): column gradients of all N samples, scattered afterwards
    dcols_all = np.empty((N if nb > 1 else 0, G, Cg * R * S, P * Q), dtype=x4.dtype)
    _threads.run_kernel(
        _conv.conv2d_im2col_backward,
        _par.conv2d_im2col_backward,
        N * G * nb,
        n,
        (x4, wT, dyg, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, nb),
        (dcols_all, dx),
        sums=(dweight, db),
        blas=True,
    )
    if nb > 1:  # one input plane per item: no two chunks write the same plane
        _threads.run_kernel(
            _conv.conv2d_im2col_scatter,
            _par.conv2d_im2col_scatter,
            N * C,
            n,
            (dcols_all, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q),
            (dx,),
        )
    return dx, dweight.reshape(w4.shape), db


def flipped_filters(w4, groups):
    """wt (C, Kg, R, S), wt[g*Cg + c, k, r, s] = w4[g*Kg + k, c, R-1-r, S-1-s]: the filters of the stride-1
    input gradient, a forward convolution of dy (:func:`input_grad_tiled`).

    3x3 filters by :func:`catlab._kernels.conv_tiled.flipped_filters_3x3`; others by NumPy's copy through
    the transposed, reversed view (about 0.75 ns a weight; compiled loops over R*S taps were slower).
    """
    K, Cg, R, S = w4.shape
    if (R, S) == (3, 3):
        return _tiled.flipped_filters_3x3(w4, groups)
    wt = w4.reshape(groups, K // groups, Cg, R, S).transpose(0, 2, 1, 3, 4).reshape(groups * Cg, K // groups, R, S)
    return np.ascontiguousarray(wt[:, :, ::-1, ::-1])


def _dy_source(dy4, top, left, rows, cols, dil_h, dil_w):
    """(dy4 cropped where ``top`` or ``left`` is negative, the geometry of its forward pass) for
    :func:`_dy_forward`."""
    src = dy4
    if top < 0 or left < 0:
        src = np.ascontiguousarray(dy4[:, :, max(0, -top) :, max(0, -left) :])
    return src, Geometry(1, 1, max(0, top), max(0, left), dil_h, dil_w, rows, cols)


def _dy_forward(dy4, w_sub, groups, top, left, rows, cols, dil_h, dil_w, T):
    """``rows`` x ``cols`` outputs of the tiled forward pass of dy4 (N, K, P, Q) with the filters ``w_sub``
    (C, Kg, r, s), dy padded by ``top`` and ``left`` (cropped where negative) and by zeros below and right."""
    src, geo = _dy_source(dy4, top, left, rows, cols, dil_h, dil_w)
    C = w_sub.shape[0]
    return _forward_tiled(src, w_sub, np.zeros(C, dtype=np.float32), groups, geo, T)  # (N, C, rows, cols)


def _backward_pair(dy4, x4, w4, groups, geo: Geometry, FB):
    """One sample's tiled backward pass as two whole kernels at once on two threads
    (``parallel.conv2d_tiled_backward_pair``, or ``..._strided``): the weight gradient on one, the input
    gradient on the other (for a stride > 1, every stride phase as in :func:`input_grad_tiled`).

    Splitting each kernel between the two threads instead ran them one after the other, each cut in parts
    that re-pad their input: measured on 2 threads (AVX2) in one process, batch 1, the whole backward pass
    took 0.61-0.64 of that time for 64x8x8 -> 64 3x3, 0.68-0.75 for 32x16x16 -> 32 and -> 64, and 0.68-0.79
    for 16x15x15 -> 32 (two runs).
    Returns (dx, dweight (G, Kg, Cg*R*S), db, finite (1,)), or None where the stride-1 input gradient's
    forward pass would take the tiles across filters (the caller then runs the kernels in turn).
    """
    _, C, H, W = x4.shape
    K, Cg, R, S = w4.shape
    sh, sw, ph, pw, dil_h, dil_w, P, Q = geo
    G, Kg = groups, K // groups
    dweight = np.zeros((G, Kg, Cg * R * S), dtype=np.float32)  # (G, Kg, Cg*R*S)
    db = np.zeros(K, dtype=np.float32)  # (K,)
    finite = np.zeros(1, dtype=np.float32)
    if (sh, sw) != (1, 1):  # every stride phase of dx by one kernel (dilation 1: use_tiled_backward)
        phases, toffs, Hd, Wd, T0, L0, Tmax = _input_grad_layout(K, Cg, R, S, G, sh, sw, ph, pw, H, W, P, Q)
        across = _strided_kind(K, Cg, R, S, G, sh, sw, ph, pw, H, W, P, Q) == "filters"
        block = filter_tile_positions(16) if across else tiled_block(Cg)
        dx = np.empty((1, C, H, W), dtype=np.float32)  # (1, C, H, W), every phase written once
        before = (x4, dy4, R, S, sh, sw, ph, pw, P, Q, FB, dweight, db, finite, G)
        before += (np.ascontiguousarray(w4).reshape(-1), across, Tmax, toffs, phases, Hd, Wd, T0, L0, block)
        _threads.run_kernel(
            _tiled.conv2d_tiled_backward_pair_strided, _par.conv2d_tiled_backward_pair_strided, 2, 2, before, (dx,)
        )
        return dx, dweight, db, finite
    src, geo_dx = _dy_source(dy4, dil_h * (R - 1) - ph, dil_w * (S - 1) - pw, H, W, dil_h, dil_w)
    kind, KB = tiled_kind(Cg, R, S, geo_dx, N=G)
    if kind != "positions":
        return None
    w3 = flipped_filters(w4, G).reshape(G, Cg, Kg * R * S)  # (G, Cg, Kg*R*S): dx's "filters" per group
    dx4 = np.empty((1, G, Cg, H * W), dtype=np.float32)  # (1, G, Cg, H*W)
    before = (x4, dy4, R, S, ph, pw, dil_h, dil_w, P, Q, FB, dweight, db, finite)
    before += (src, w3, np.zeros(C, dtype=np.float32), geo_dx.ph, geo_dx.pw, H, W, KB)
    _threads.run_kernel(_tiled.conv2d_tiled_backward_pair, _par.conv2d_tiled_backward_pair, 2, 2, before, (dx4,))
    return dx4.reshape(1, C, H, W), dweight, db, finite


@functools.lru_cache(maxsize=64)
def _input_grad_layout(K, Cg, R, S, G, sh, sw, ph, pw, H, W, P, Q):
    """The stride phases of dx for the strided input gradient: (phases, toffs, Hd, Wd, T0, L0, Tmax).

    Phase (a, b) holds the rows h with (h + ph) % sh == a and the columns with (w + pw) % sw == b; they
    meet the taps r = a, a + sh, ... and s = b, b + sw, ... (Ra by Sb of them) and dy's rows
    (h + ph) // sh - r', columns likewise: a stride-1 convolution of dy, padded above by
    top = Ra - 1 - (h0 + ph) // sh (cropped where negative) and left likewise, with the sub-kernel
    flipped and transposed per group. One padded dy (Hd, Wd) serves every phase: dy[p, q] at row
    T0 + p, column L0 + q, T0 and L0 the largest of the phases' paddings. A phase no tap reaches (a
    stride longer than the kernel) has 0 taps: its dx is zero. Phases without rows or columns are left
    out. ``toffs`` (F, Tmax): where tap (k, r', s'), at (k*Ra + r')*Sb + s', starts in the padded dy;
    ``phases`` (F, 9): h0, w0, rows, cols, taps (the kernels read these five), then a, b, top, left.

    All of it depends on the shapes only: it is kept for the last 64 of them (36 us a call at batch 1),
    and the arrays are shared by every call with these shapes (the kernels only read them). The filters
    are rearranged per call by compiled loops (:func:`catlab._kernels.conv_tiled.input_grad_filters` and
    ``input_grad_filter_vectors``: NumPy's strided copies and reshapes cost 40-130 us per call).
    """
    Kg = K // G
    found = []  # (h0, w0, rows, cols, a, b, Ra, Sb, top, left)
    for a in range(sh):
        h0 = (a - ph) % sh  # the first row h with (h + ph) % sh == a
        Ra, rows = len(range(a, R, sh)), len(range(h0, H, sh))
        for b in range(sw):
            w0 = (b - pw) % sw
            Sb, cols = len(range(b, S, sw)), len(range(w0, W, sw))
            if rows and cols:
                found.append((h0, w0, rows, cols, a, b, Ra, Sb, Ra - 1 - (h0 + ph) // sh, Sb - 1 - (w0 + pw) // sw))
    T0 = max([0] + [f[8] for f in found])
    L0 = max([0] + [f[9] for f in found])
    Hd = max([T0 + P] + [rows + Ra - 1 - top + T0 for _, _, rows, _, _, _, Ra, _, top, _ in found])
    Wd = max([L0 + Q] + [cols + Sb - 1 - left + L0 for _, _, _, cols, _, _, _, Sb, _, left in found])
    Tmax = max([1] + [Kg * f[6] * f[7] for f in found])
    # (F, 9): h0, w0, rows, cols, taps, then a, b, top, left for the compiled filling of wph and toffs
    phases = np.array(
        [(h0, w0, rows, cols, Kg * Ra * Sb, a, b, top, left) for h0, w0, rows, cols, a, b, Ra, Sb, top, left in found],
        dtype=np.intp,
    ).reshape(len(found), 9)
    toffs = _tiled.input_grad_taps(Kg, R, S, sh, sw, phases, Hd, Wd, T0, L0, Tmax)
    return phases, toffs, Hd, Wd, T0, L0, Tmax


def input_grad_tiled(dy4, w4, groups, geo: Geometry, H, W, T):
    """dx (N, C, H, W) on the tiled forward kernels (stride 1, or dilation 1 and any stride).

    dx[n, g*Cg + c, h, w] = sum over k, r, s of w[g*Kg + k, c, r, s] * dy[n, g*Kg + k, p, q] where
    h + ph = p*sh + r*dil_h and w + pw = q*sw + s*dil_w. With stride 1 that is a forward convolution of dy,
    padded by the kernel's extent minus the padding, with the filters transposed per group and flipped.
    With stride sh, the rows h with (h + ph) % sh == a only meet the taps r = a, a + sh, a + 2*sh, ... and
    dy's rows i, i - 1, i - 2, ... for i = (h + ph) // sh: a stride-1 convolution with that sub-kernel,
    flipped; likewise for the columns, so dx is sh*sw such convolutions, each written to its phase of dx,
    all done by one kernel (:func:`catlab._kernels.conv_tiled.conv2d_tiled_input_grad`, or its version with
    vectors across dx channels, see :func:`input_grad_kind`) from one padded copy of each sample's dy
    (separate passes padded dy once per phase and copied each result into dx: 1.1-1.5x the time at batch
    64; see :func:`_input_grad_layout`).
    """
    N, K, P, Q = dy4.shape
    _, Cg, R, S = w4.shape
    sh, sw, ph, pw, dil_h, dil_w = geo[:6]
    G, Kg = groups, K // groups
    C = G * Cg
    if (sh, sw) == (1, 1):
        w_flip = flipped_filters(w4, G)  # (C, Kg, R, S)
        return _dy_forward(dy4, w_flip, G, dil_h * (R - 1) - ph, dil_w * (S - 1) - pw, H, W, dil_h, dil_w, T)
    dx = np.empty((N, C, H, W), dtype=np.float32)  # (N, C, H, W), every phase written once
    phases, toffs, Hd, Wd, T0, L0, Tmax = _input_grad_layout(K, Cg, R, S, G, sh, sw, ph, pw, H, W, P, Q)
    wf = np.ascontiguousarray(w4).reshape(-1)
    if _strided_kind(K, Cg, R, S, G, sh, sw, ph, pw, H, W, P, Q) == "filters":
        filters = _tiled.input_grad_filter_vectors(wf, K, Cg, R, S, G, sh, sw, phases, Tmax)  # (G, F, ncv, Tmax, 16)
        nkb, block = filters.shape[2], filter_tile_positions(16)
        kernel, parallel = _tiled.conv2d_ftiled_input_grad, _par.conv2d_ftiled_input_grad
    else:
        filters = _tiled.input_grad_filters(wf, K, Cg, R, S, G, sh, sw, phases, Tmax)  # (G, F, Cg, Tmax)
        block = tiled_block(Cg)
        nkb = -(-Cg // block)
        kernel, parallel = _tiled.conv2d_tiled_input_grad, _par.conv2d_tiled_input_grad
    parts = 1 if N * G >= T else min(nkb, -(-T // (N * G)))
    work = Cg * Kg * R * S * P * Q  # multiply-adds per (sample, group), about those of the forward pass
    n = _threads.chunks_for(N * G * parts, work / parts, T, MIN_CHUNK_WORK)
    if n == 1:
        parts = 1
    _threads.run_kernel(
        kernel,
        parallel,
        N * G * parts,
        n,
        (np.ascontiguousarray(dy4), filters, toffs, phases, Hd, Wd, T0, L0, sh, sw, block, parts),
        (dx,),
    )
    return dx


@functools.lru_cache(maxsize=64)
def _strided_kind(K, Cg, R, S, G, sh, sw, ph, pw, H, W, P, Q) -> str:
    """:func:`input_grad_kind` for these shapes, kept for the last 64 of them (10 us a call at batch 1)."""
    phases, _, _, Wd, *_ = _input_grad_layout(K, Cg, R, S, G, sh, sw, ph, pw, H, W, P, Q)
    return input_grad_kind(Cg, phases, Wd)


def input_grad_kind(Cg, phases, Wd) -> str:
    """``"positions"`` or ``"filters"``: which kernel computes a strided input gradient (as :func:`tiled_kind`).

    :func:`catlab._kernels.conv_tiled.conv2d_tiled_input_grad` computes whole tiles of wide positions per
    phase (rows ``Wd`` apart) for blocks of :func:`tiled_block` dx channels;
    :func:`catlab._kernels.conv_tiled.conv2d_ftiled_input_grad` tiles of :func:`filter_tile_positions`
    positions (none wide) for vectors of 16 channels. The kind that keeps the larger share of its work
    (weighed by each phase's taps), weighed by its speed as in :func:`tiled_kind`; ``phases`` as from
    :func:`_input_grad_layout`.
    """
    KB = tiled_block(Cg)
    tile = _tiled.tile_size(KB)
    PT = filter_tile_positions(16)
    useful = comp_pos = comp_filt = 0
    for _, _, rows, cols, taps, *_ in phases.tolist():
        L = (rows - 1) * Wd + cols
        useful += taps * rows * cols
        comp_pos += taps * -(-L // tile) * tile
        comp_filt += taps * -(-(rows * cols) // PT) * PT
    if useful == 0:
        return "positions"
    kept_positions = useful / comp_pos * Cg / tiled_filters(Cg, KB)
    kept_filters = useful / comp_filt * Cg / (-(-Cg // 16) * 16)
    return "filters" if kept_filters * filter_tiles_speed(16) > kept_positions else "positions"


def _weight_grad_rows(*args):
    """``conv2d_tiled_weight_grad`` for :func:`catlab._threads.run_kernel` with ``before`` = (its arguments up
    to ``parts``, dweight, db) and ``sums`` = (finite,): one sample's chunks add into the same dweight and db
    (distinct rows) and only the finiteness check is per chunk (as ``parallel.conv2d_tiled_weight_grad_rows``)."""
    *head, dweight, db, i0, i1, finite = args
    _tiled.conv2d_tiled_weight_grad(*head, i0, i1, dweight, db, finite)


def _backward_tiled(dy4, x4, w4, groups, geo: Geometry, T):
    """The backward pass on the tiled kernels: dweight and dbias, then dx by :func:`input_grad_tiled`.

    Returns None when x, dy or the weight holds an inf or NaN (or dbias overflows): the tiled kernels would
    multiply such values by the zeros of the padding and the dropped columns, which the other kernels and
    PyTorch never do, so the caller takes those instead.
    """
    N, C, H, W = x4.shape
    K, Cg, R, S = w4.shape
    sh, sw, ph, pw, dil_h, dil_w, P, Q = geo
    G, Kg = groups, K // groups
    if not _tiled.all_finite(w4.reshape(-1)):
        return None
    FB = grad_block(Kg)
    work = Kg * Cg * R * S * P * Q  # multiply-adds per (sample, group)
    if N == 1 and T == 2 and _threads.chunks_for(2, G * work, T, MIN_CHUNK_WORK) == 2:
        pair = _backward_pair(dy4, x4, w4, G, geo, FB)
        if pair is not None:
            dx, dweight, db, finite = pair
            if not (np.isfinite(finite[0]) and np.isfinite(np.sum(db))):
                return None
            return dx, dweight.reshape(w4.shape), db
    nkb = -(-Kg // FB)
    parts = 1 if N * G >= T else min(nkb, -(-T // (N * G)))
    n = _threads.chunks_for(N * G * parts, work / parts, T, MIN_CHUNK_WORK)
    if n == 1:
        parts = 1
    args = (x4, dy4, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, FB, parts)
    finite = np.empty(1, dtype=np.float32)  # 0, or NaN if x holds an inf or NaN
    if N == 1:  # the items are distinct (group, part)s writing distinct filters' rows: no per-chunk copies
        dweight = np.zeros((G, Kg, Cg * R * S), dtype=np.float32)  # (G, Kg, Cg*R*S)
        db = np.zeros(K, dtype=np.float32)  # (K,)
        _threads.run_kernel(
            _weight_grad_rows, _par.conv2d_tiled_weight_grad_rows, G * parts, n, (*args, dweight, db), sums=(finite,)
        )
    else:
        dweight = np.empty((G, Kg, Cg * R * S), dtype=np.float32)  # (G, Kg, Cg*R*S)
        db = np.empty(K, dtype=np.float32)  # (K,)
        _threads.run_kernel(
            _tiled.conv2d_tiled_weight_grad,
            _par.conv2d_tiled_weight_grad,
            N * G * parts,
            n,
            args,
            sums=(dweight, db, finite),
        )
    if not (np.isfinite(finite[0]) and np.isfinite(np.sum(db))):  # db: the sum of dy over all but channels
        return None
    dx = input_grad_tiled(dy4, w4, G, geo, H, W, T)  # (N, C, H, W)
    return dx, dweight.reshape(w4.shape), db
