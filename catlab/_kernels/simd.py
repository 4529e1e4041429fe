"""Sixteen float32 numbers as one value: the vector operations the register-tiled kernels need.

Numba compiles loops over arrays well, but it has no way to say "keep these
sixteen running sums in registers": a running sum kept in an array is loaded
and stored on every step, and LLVM does not promote arrays to registers. The
register-tiled convolution (:mod:`catlab._kernels.conv_tiled`) needs exactly
that, so this module gives Numba a type whose values are LLVM vectors,
``<16 x float>`` (one AVX-512 register; two AVX2 registers elsewhere), and
seven operations on it, each one to three LLVM instructions, and four that
move whole blocks or rows (the last four below):

===================  ==================================================
``vzero()``          the vector of sixteen zeros
``vsplat(s)``        the float32 ``s`` in all sixteen lanes
``vbcast(a, i)``     ``a[i]`` in all sixteen lanes (a broadcast load)
``vload(a, i)``      ``a[i : i + 16]`` of a 1-D C-contiguous float32 array
``vstore(a, i, v)``  ``a[i : i + 16] = v``
``vfma(a, b, c)``    ``a * b + c`` lane by lane, rounded once (fused)
``vpairsum(a, b)``   sums of neighbouring lanes: ``a[0]+a[1], a[2]+a[3],
                     ..., a[14]+a[15], b[0]+b[1], ..., b[14]+b[15]``
``vtranspose16(a,    ``out[j, 0:16] = a[0:16, j]`` for j < 16 (2-D C-contiguous
out)``               float32 arrays): sixteen rows loaded, transposed in
                     registers by 4 rounds of 16 two-register shuffles
``vtranspose16_at(   the same from columns ``c`` to ``c + 15`` of ``a``:
a, c, out)``         ``out[j, 0:16] = a[0:16, c + j]`` (a 16-by-16 block
                     of a wider matrix)
``copy_row(src, n,   ``dst[:n] = src[:n]``: 16 numbers a step, the last
dst)``               step masked (rows of 8 to 32 numbers, the padding
                     of small images, copy at 0.2 ns a number)
``split_pairs(src,   ``even[:ne] = src[0::2][:ne]``, ``odd[:no] =
n, even, ne, odd,    src[1::2][:no]``, reading ``src[:n]`` only (a row
no)``                split into its two stride phases): 32 numbers per
                     step, two loads, two shuffles and two stores, the
                     ends of the row by masked loads and stores
===================  ==================================================

Four rounds of ``vpairsum`` turn sixteen vectors into one whose lane ``r``
is the sum of vector ``r``'s lanes (a transposing reduction: 15 shuffles
and adds pairs instead of 240 scalar adds).

Like any Numba variable, a vector lives in registers between operations
(LLVM's ``mem2reg``), so a loop that updates a few of them with ``vfma``
keeps them there for its whole length.

Outside compiled code (``NUMBA_DISABLE_JIT=1``, used for coverage) the same
names are Python functions on length-16 NumPy arrays; ``vfma`` then rounds
twice. ``vbcast``, ``vload`` and ``vstore`` check their bounds there, and in
compiled code when ``NUMBA_BOUNDSCHECK=1``; otherwise they trust the caller
(and, unlike Numba's indexing, never wrap a negative index around: that check
on every load made the tiles across filters twice as slow).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic, models, overload, register_jitable, register_model

#: Lanes of one vector.
LANES = 16

_VEC = ir.VectorType(ir.FloatType(), LANES)


class Float32x16(types.Type):
    """Numba's type for sixteen float32 lanes held as one LLVM vector."""

    def __init__(self):
        super().__init__(name="Float32x16")


float32x16 = Float32x16()


@register_model(Float32x16)
class _Float32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _vector_pointer(context, builder, aryty, aryval, idx):
    """A ``<16 x float>*`` to element ``idx`` of a 1-D array."""
    ary = context.make_array(aryty)(context, builder, aryval)
    return builder.bitcast(builder.gep(ary.data, [idx]), _VEC.as_pointer())


def _is_float32_vector_array(arr) -> bool:
    return isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.float32 and arr.layout == "C"


@intrinsic
def _load(typingctx, arr, idx):
    if not (_is_float32_vector_array(arr) and isinstance(idx, types.Integer)):
        return None
    sig = float32x16(arr, types.intp)

    def codegen(context, builder, sig, args):
        return builder.load(_vector_pointer(context, builder, sig.args[0], args[0], args[1]), align=4)

    return sig, codegen


@intrinsic
def _store(typingctx, arr, idx, v):
    if not (_is_float32_vector_array(arr) and isinstance(idx, types.Integer) and v == float32x16):
        return None
    sig = types.void(arr, types.intp, float32x16)

    def codegen(context, builder, sig, args):
        builder.store(args[2], _vector_pointer(context, builder, sig.args[0], args[0], args[1]), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _bcast(typingctx, arr, idx):
    if not (_is_float32_vector_array(arr) and isinstance(idx, types.Integer)):
        return None
    sig = float32x16(arr, types.intp)

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        value = builder.load(builder.gep(ary.data, [args[1]]), align=4)
        one = builder.insert_element(ir.Constant(_VEC, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined), lanes)

    return sig, codegen


@intrinsic
def _zero(typingctx):
    sig = float32x16()

    def codegen(context, builder, sig, args):
        return ir.Constant(_VEC, None)  # zeroinitializer

    return sig, codegen


@intrinsic
def _splat(typingctx, s):
    if not isinstance(s, types.Float):
        return None
    sig = float32x16(types.float32)

    def codegen(context, builder, sig, args):
        one = builder.insert_element(ir.Constant(_VEC, ir.Undefined), args[0], ir.Constant(ir.IntType(32), 0))
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined), lanes)

    return sig, codegen


@intrinsic
def _fma(typingctx, a, b, c):
    if not (a == float32x16 and b == float32x16 and c == float32x16):
        return None
    sig = float32x16(float32x16, float32x16, float32x16)

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_VEC, [_VEC, _VEC, _VEC])
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.v{LANES}f32")
        return builder.call(fn, args)

    return sig, codegen


_EVEN = ir.Constant(ir.VectorType(ir.IntType(32), LANES), list(range(0, 2 * LANES, 2)))
_ODD = ir.Constant(ir.VectorType(ir.IntType(32), LANES), list(range(1, 2 * LANES, 2)))


@intrinsic
def _pairsum(typingctx, a, b):
    if not (a == float32x16 and b == float32x16):
        return None
    sig = float32x16(float32x16, float32x16)

    def codegen(context, builder, sig, args):
        even = builder.shuffle_vector(args[0], args[1], _EVEN)
        odd = builder.shuffle_vector(args[0], args[1], _ODD)
        return builder.fadd(even, odd)

    return sig, codegen


def _interleave_masks(k):
    """Shuffle masks of one transposing round: blocks of ``k`` lanes taken alternately from two vectors,
    the even blocks of each (``lo``) or the odd ones (``hi``); rounds with k = 8, 4, 2, 1 on the pairs of
    rows (i, i + k), i & k == 0, transpose sixteen rows."""
    lo, hi = [], []
    for j in range(LANES):
        q, o = divmod(j, k)
        p, side = divmod(q, 2)
        lo.append(2 * p * k + o + LANES * side)
        hi.append((2 * p + 1) * k + o + LANES * side)
    return lo, hi


def _round_intrinsic(k):
    lo, hi = (ir.Constant(ir.VectorType(ir.IntType(32), LANES), m) for m in _interleave_masks(k))
    pair = types.UniTuple(float32x16, 2)

    @intrinsic
    def _round(typingctx, a, b):
        if not (a == float32x16 and b == float32x16):
            return None

        def codegen(context, builder, sig, args):
            out = (builder.shuffle_vector(args[0], args[1], lo), builder.shuffle_vector(args[0], args[1], hi))
            return context.make_tuple(builder, sig.return_type, out)

        return pair(float32x16, float32x16), codegen

    return _round


_round8, _round4, _round2, _round1 = (_round_intrinsic(k) for k in (8, 4, 2, 1))

_I32V = ir.VectorType(ir.IntType(32), LANES)
_LANE_INDEX = ir.Constant(_I32V, list(range(LANES)))


def _first_lanes(builder, n):
    """The mask of lanes 0 .. n - 1 (all for n >= 16, none for n <= 0), from an intp ``n``."""
    n = builder.select(builder.icmp_signed(">", n, ir.Constant(n.type, LANES)), ir.Constant(n.type, LANES), n)
    n = builder.select(builder.icmp_signed("<", n, ir.Constant(n.type, 0)), ir.Constant(n.type, 0), n)
    n32 = builder.trunc(n, ir.IntType(32))
    one = builder.insert_element(ir.Constant(_I32V, ir.Undefined), n32, ir.Constant(ir.IntType(32), 0))
    splat = builder.shuffle_vector(one, ir.Constant(_I32V, ir.Undefined), ir.Constant(_I32V, [0] * LANES))
    return builder.icmp_signed("<", _LANE_INDEX, splat)


# LLVM's masked loads and stores; the names carry the typed pointer llvmlite writes (newer LLVMs remangle them)
_MASKED_LOAD = f"llvm.masked.load.v{LANES}f32.p0v{LANES}f32"
_MASKED_STORE = f"llvm.masked.store.v{LANES}f32.p0v{LANES}f32"


@intrinsic
def _load_first(typingctx, arr, idx, n):
    """Lanes 0 .. n - 1 from ``arr[idx:]``, zero in the others; memory past them is not read."""
    if not (_is_float32_vector_array(arr) and isinstance(idx, types.Integer) and isinstance(n, types.Integer)):
        return None
    sig = float32x16(arr, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, sig.args[0], args[0], args[1])
        mask = _first_lanes(builder, args[2])
        fnty = ir.FunctionType(_VEC, [ptr.type, ir.IntType(32), mask.type, _VEC])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _MASKED_LOAD)
        return builder.call(fn, [ptr, ir.Constant(ir.IntType(32), 4), mask, ir.Constant(_VEC, [0.0] * LANES)])

    return sig, codegen


@intrinsic
def _store_first(typingctx, arr, idx, v, n):
    """``arr[idx : idx + n] = v[:n]`` (n <= 16); memory past them is not written."""
    if not (_is_float32_vector_array(arr) and isinstance(idx, types.Integer) and v == float32x16):
        return None
    if not isinstance(n, types.Integer):
        return None
    sig = types.void(arr, types.intp, float32x16, types.intp)

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, sig.args[0], args[0], args[1])
        mask = _first_lanes(builder, args[3])
        fnty = ir.FunctionType(ir.VoidType(), [_VEC, ptr.type, ir.IntType(32), mask.type])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _MASKED_STORE)
        builder.call(fn, [args[2], ptr, ir.Constant(ir.IntType(32), 4), mask])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _evens_odds(typingctx, a, b):
    """(a[0], a[2], ..., b[14]; a[1], a[3], ..., b[15]): 32 numbers split by parity."""
    if not (a == float32x16 and b == float32x16):
        return None

    def codegen(context, builder, sig, args):
        out = (builder.shuffle_vector(args[0], args[1], _EVEN), builder.shuffle_vector(args[0], args[1], _ODD))
        return context.make_tuple(builder, sig.return_type, out)

    return types.UniTuple(float32x16, 2)(float32x16, float32x16), codegen


def _check(a, i):
    if i < 0 or i + LANES > a.shape[0]:
        raise IndexError("catlab simd: a vector of 16 lanes from index i runs past the array")


# --- the public names: Python on NumPy arrays, and their compiled versions ---------------------


def vzero():
    """Sixteen float32 zeros."""
    return np.zeros(LANES, dtype=np.float32)


def vsplat(s):
    """The float32 ``s`` in all sixteen lanes."""
    return np.full(LANES, s, dtype=np.float32)


def vbcast(a, i):
    """``a[i]`` of a 1-D C-contiguous float32 array in all sixteen lanes (a broadcast load)."""
    if i < 0 or i >= a.shape[0]:
        raise IndexError("catlab simd: broadcast index out of range")
    return np.full(LANES, a[i], dtype=np.float32)


def vload(a, i):
    """``a[i : i + 16]`` of a 1-D C-contiguous float32 array, as one vector."""
    _check(a, i)
    return a[i : i + LANES].copy()


def vstore(a, i, v):
    """``a[i : i + 16] = v``."""
    _check(a, i)
    a[i : i + LANES] = v


def vfma(a, b, c):
    """``a * b + c``, lane by lane (rounded once when compiled)."""
    return (a * b + c).astype(np.float32)


def vpairsum(a, b):
    """Sums of neighbouring lanes, ``a``'s eight then ``b``'s: ``[a[0] + a[1], ..., b[14] + b[15]]``."""
    ab = np.concatenate([a, b]).astype(np.float32)
    return (ab[0::2] + ab[1::2]).astype(np.float32)


def vtranspose16(a, out):
    """``out[j, 0:16] = a[0:16, j]`` for j < 16; ``a`` and ``out`` 2-D C-contiguous float32, at least 16 by 16."""
    vtranspose16_at(a, 0, out)


def vtranspose16_at(a, c, out):
    """``out[j, 0:16] = a[0:16, c + j]`` for j < 16; ``a`` and ``out`` 2-D C-contiguous float32, ``a`` with at
    least 16 rows and ``c + 16`` columns, ``out`` at least 16 by 16."""
    if c < 0 or a.shape[0] < LANES or a.shape[1] < c + LANES or out.shape[0] < LANES or out.shape[1] < LANES:
        raise IndexError("catlab simd: vtranspose16 needs 16 rows of 16 lanes in both arrays")
    out[:LANES, :LANES] = a[:LANES, c : c + LANES].T


def copy_row(src, n, dst):
    """``dst[:n] = src[:n]`` (1-D arrays). Compiled for C-contiguous float32 arrays, 16 numbers a step with the
    last step masked: a short row takes one or two vector moves where a vectorised loop would run its
    scalar remainder (rows of 15 numbers entirely so); for any other arrays a plain loop."""
    if n > src.shape[0] or n > dst.shape[0]:
        raise IndexError("catlab simd: copy_row past an array")
    dst[:n] = src[:n]


@register_jitable
def _copy_row_vectors(src, n, dst):
    for t in range(0, n, LANES):
        _store_first(dst, t, _load_first(src, t, n - t), n - t)


@overload(copy_row)
def _ol_copy_row(src, n, dst):
    if not (_is_float32_vector_array(src) and _is_float32_vector_array(dst)):

        def plain(src, n, dst):
            for t in range(n):
                dst[t] = src[t]

        return plain
    if config.BOUNDSCHECK:

        def checked(src, n, dst):
            if n > src.shape[0] or n > dst.shape[0]:
                raise IndexError("catlab simd: copy_row past an array")
            _copy_row_vectors(src, n, dst)

        return checked
    return lambda src, n, dst: _copy_row_vectors(src, n, dst)


def split_pairs(src, n, even, ne, odd, no):
    """``even[:ne] = src[0:n:2][:ne]``, ``odd[:no] = src[1:n:2][:no]``: a row split into its two stride phases.

    ``ne`` and ``no`` may not exceed the numbers ``src[:n]`` holds for them. Compiled for 1-D C-contiguous
    float32 arrays, 32 numbers a step by vector loads, shuffles and stores (the row's end by masked ones,
    which touch no memory past it); for any other arrays a plain loop.
    """
    if ne > (n + 1) // 2 or no > n // 2 or ne > even.shape[0] or no > odd.shape[0] or n > src.shape[0]:
        raise IndexError("catlab simd: split_pairs past an array")
    even[:ne] = src[0:n:2][:ne]
    odd[:no] = src[1:n:2][:no]


@register_jitable
def _split_pairs_vectors(src, n, even, ne, odd, no):
    for t in range(0, max(ne, no), LANES):
        a = _load_first(src, 2 * t, n - 2 * t)  # src[2t : 2t + 16]
        b = _load_first(src, 2 * t + LANES, n - 2 * t - LANES)  # src[2t + 16 : 2t + 32]
        e, o = _evens_odds(a, b)
        _store_first(even, t, e, ne - t)
        _store_first(odd, t, o, no - t)


@overload(split_pairs)
def _ol_split_pairs(src, n, even, ne, odd, no):
    if not all(_is_float32_vector_array(t) for t in (src, even, odd)):

        def plain(src, n, even, ne, odd, no):
            for t in range(ne):
                even[t] = src[2 * t]
            for t in range(no):
                odd[t] = src[2 * t + 1]

        return plain
    if config.BOUNDSCHECK:

        def checked(src, n, even, ne, odd, no):
            if ne > (n + 1) // 2 or no > n // 2 or ne > even.shape[0] or no > odd.shape[0] or n > src.shape[0]:
                raise IndexError("catlab simd: split_pairs past an array")
            _split_pairs_vectors(src, n, even, ne, odd, no)

        return checked
    return lambda src, n, even, ne, odd, no: _split_pairs_vectors(src, n, even, ne, odd, no)


@overload(vzero)
def _ol_vzero():
    return lambda: _zero()


@overload(vsplat)
def _ol_vsplat(s):
    return lambda s: _splat(np.float32(s))


@overload(vload)
def _ol_vload(a, i):
    if config.BOUNDSCHECK:

        def checked(a, i):
            if i < 0 or i + LANES > a.shape[0]:
                raise IndexError("catlab simd: a vector of 16 lanes from index i runs past the array")
            return _load(a, i)

        return checked
    return lambda a, i: _load(a, i)


@overload(vstore)
def _ol_vstore(a, i, v):
    if config.BOUNDSCHECK:

        def checked(a, i, v):
            if i < 0 or i + LANES > a.shape[0]:
                raise IndexError("catlab simd: a vector of 16 lanes from index i runs past the array")
            _store(a, i, v)

        return checked
    return lambda a, i, v: _store(a, i, v)


@overload(vbcast)
def _ol_vbcast(a, i):
    if config.BOUNDSCHECK:

        def checked(a, i):
            if i < 0 or i >= a.shape[0]:
                raise IndexError("catlab simd: broadcast index out of range")
            return _bcast(a, i)

        return checked
    return lambda a, i: _bcast(a, i)


@overload(vfma)
def _ol_vfma(a, b, c):
    return lambda a, b, c: _fma(a, b, c)


@overload(vpairsum)
def _ol_vpairsum(a, b):
    return lambda a, b: _pairsum(a, b)


def _host_features(*names) -> bool:
    """Whether Numba compiles for the host CPU and it has every feature in ``names`` (LLVM's names)."""
    try:
        from llvmlite import binding

        name = config.CPU_NAME
        if name not in (None, "", "host"):
            return False
        features = binding.get_host_cpu_features()
        return all(bool(features.get(f, False)) for f in names)
    except Exception:  # pragma: no cover - a platform without host feature queries
        return False


def host_cpu_name() -> str:
    """LLVM's name of the CPU Numba compiles for (``"znver4"``, ``"skylake-avx512"``, ...), or ``""``."""
    try:
        from llvmlite import binding

        name = config.CPU_NAME
        if name not in (None, "", "host"):
            return str(name)
        return str(binding.get_host_cpu_name())
    except Exception:  # pragma: no cover - a platform without host queries
        return ""


def host_has_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512: one register per vector, 32 registers."""
    return _host_features("avx512f")


def host_has_avx2_fma() -> bool:
    """Whether Numba compiles for a CPU with AVX2 and FMA: a vector is two 8-float registers, 16 registers."""
    return _host_features("avx2", "fma")


@register_jitable
def _transpose16(a, c, out):
    r0, r1, r2, r3 = _load(a[0], c), _load(a[1], c), _load(a[2], c), _load(a[3], c)
    r4, r5, r6, r7 = _load(a[4], c), _load(a[5], c), _load(a[6], c), _load(a[7], c)
    r8, r9, r10, r11 = _load(a[8], c), _load(a[9], c), _load(a[10], c), _load(a[11], c)
    r12, r13, r14, r15 = _load(a[12], c), _load(a[13], c), _load(a[14], c), _load(a[15], c)
    r0, r8 = _round8(r0, r8)
    r1, r9 = _round8(r1, r9)
    r2, r10 = _round8(r2, r10)
    r3, r11 = _round8(r3, r11)
    r4, r12 = _round8(r4, r12)
    r5, r13 = _round8(r5, r13)
    r6, r14 = _round8(r6, r14)
    r7, r15 = _round8(r7, r15)
    r0, r4 = _round4(r0, r4)
    r1, r5 = _round4(r1, r5)
    r2, r6 = _round4(r2, r6)
    r3, r7 = _round4(r3, r7)
    r8, r12 = _round4(r8, r12)
    r9, r13 = _round4(r9, r13)
    r10, r14 = _round4(r10, r14)
    r11, r15 = _round4(r11, r15)
    r0, r2 = _round2(r0, r2)
    r1, r3 = _round2(r1, r3)
    r4, r6 = _round2(r4, r6)
    r5, r7 = _round2(r5, r7)
    r8, r10 = _round2(r8, r10)
    r9, r11 = _round2(r9, r11)
    r12, r14 = _round2(r12, r14)
    r13, r15 = _round2(r13, r15)
    r0, r1 = _round1(r0, r1)
    r2, r3 = _round1(r2, r3)
    r4, r5 = _round1(r4, r5)
    r6, r7 = _round1(r6, r7)
    r8, r9 = _round1(r8, r9)
    r10, r11 = _round1(r10, r11)
    r12, r13 = _round1(r12, r13)
    r14, r15 = _round1(r14, r15)
    _store(out[0], 0, r0)
    _store(out[1], 0, r1)
    _store(out[2], 0, r2)
    _store(out[3], 0, r3)
    _store(out[4], 0, r4)
    _store(out[5], 0, r5)
    _store(out[6], 0, r6)
    _store(out[7], 0, r7)
    _store(out[8], 0, r8)
    _store(out[9], 0, r9)
    _store(out[10], 0, r10)
    _store(out[11], 0, r11)
    _store(out[12], 0, r12)
    _store(out[13], 0, r13)
    _store(out[14], 0, r14)
    _store(out[15], 0, r15)


def _c_float32_matrices(*arrays) -> bool:
    return all(
        isinstance(t, types.Array) and t.ndim == 2 and t.dtype == types.float32 and t.layout == "C" for t in arrays
    )


@overload(vtranspose16)
def _ol_vtranspose16(a, out):
    if not _c_float32_matrices(a, out):
        return None
    return lambda a, out: vtranspose16_at(a, 0, out)


@overload(vtranspose16_at)
def _ol_vtranspose16_at(a, c, out):
    if not (_c_float32_matrices(a, out) and isinstance(c, types.Integer)):
        return None
    if config.BOUNDSCHECK:

        def checked(a, c, out):
            if c < 0 or a.shape[0] < LANES or a.shape[1] < c + LANES or out.shape[0] < LANES or out.shape[1] < LANES:
                raise IndexError("catlab simd: vtranspose16 needs 16 rows of 16 lanes in both arrays")
            _transpose16(a, c, out)

        return checked
    return lambda a, c, out: _transpose16(a, c, out)
