"""catlab.filters: hand-made kernels and stimuli, against hand-computed answers and scipy/skimage."""

import numpy as np
import pytest

from catlab import filters as Fi
from catlab import functional as F


def test_box_kernel_sums_to_one_and_blurs_an_impulse():
    k = Fi.box_kernel(3)
    assert k.shape == (3, 3) and np.isclose(k.sum(), 1.0)
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 9.0
    y = F.conv2d(x, k[None, None], padding=1)[0, 0]
    expected = np.zeros((5, 5))
    expected[1:4, 1:4] = 1.0  # 9 spread evenly over the 3x3 neighbourhood
    np.testing.assert_allclose(y, expected)


def test_gaussian_kernel_matches_formula_by_hand():
    k = Fi.gaussian_kernel(3, 1.0)
    e = np.exp(-0.5)
    g = np.array([e, 1.0, e])
    np.testing.assert_allclose(k, np.outer(g, g) / (1 + 2 * e) ** 2)


def test_gaussian_kernel_matches_scipy_filter_response():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = np.zeros((9, 9))
    x[4, 4] = 1.0
    ref = ndimage.gaussian_filter(x, sigma=1.5, truncate=(4 - 0.0) / 1.5, mode="constant")
    k = Fi.gaussian_kernel(9, 1.5)
    # scipy normalises the 1-D kernel over the same 9 taps, so the impulse response is our kernel
    np.testing.assert_allclose(ref, k, atol=1e-12)


def test_sobel_responds_to_a_left_to_right_step_with_the_right_sign():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, :, 3:] = 1.0  # dark left, bright right
    gx = F.conv2d(x, Fi.sobel_x()[None, None])[0, 0]
    gy = F.conv2d(x, Fi.sobel_y()[None, None])[0, 0]
    # windows centred on columns 1, 2, 3: the step is seen by the windows at columns 2 and 3
    np.testing.assert_array_equal(gx, np.array([[0.0, 4.0, 4.0]] * 3))
    np.testing.assert_array_equal(gy, np.zeros((3, 3)))


def test_sobel_matches_skimage_sign_convention():
    skf = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(0)
    img = rng.random((12, 12))
    ours = F.conv2d(img[None, None], Fi.sobel_x()[None, None])[0, 0]
    # skimage.filters.sobel_v finds vertical edges (change along columns), kernel normalised by 4
    ref = skf.sobel_v(img)[1:-1, 1:-1] * 4
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_gabor_zero_mean_unit_norm_and_rotation():
    g0 = Fi.gabor_kernel(15, 0.0, 6.0)
    assert abs(g0.sum()) < 1e-12 and np.isclose((g0**2).sum(), 1.0)
    np.testing.assert_allclose(Fi.gabor_kernel(15, np.pi / 2, 6.0), g0.T, atol=1e-12)
    # rotating by 90 degrees on screen (anticlockwise) is np.rot90
    g30 = Fi.gabor_kernel(15, np.pi / 6, 6.0)
    g120 = Fi.gabor_kernel(15, np.pi / 6 + np.pi / 2, 6.0)
    np.testing.assert_allclose(np.rot90(g30), g120, atol=1e-12)


def test_gabor_theta_zero_varies_along_columns_only_in_its_carrier():
    g = Fi.gabor_kernel(11, 0.0, 4.0, aspect=1e-9)  # envelope nearly flat along the stripes
    # each column is (almost) constant: the filter prefers vertical structure
    assert np.max(np.std(g, axis=0)) < 1e-6
    assert np.std(g[5]) > 0.05  # ...but varies across the columns


def test_gabor_prefers_the_bar_with_its_own_orientation():
    for theta in np.deg2rad([0, 30, 60, 90, 135]):
        g = Fi.gabor_kernel(21, theta, 8.0)
        angles = np.deg2rad(np.arange(0, 180, 15))
        responses = [np.sum(g * Fi.bar_stimulus((21, 21), a, 17, 3)) for a in angles]
        best = angles[int(np.argmax(responses))]
        assert np.isclose(best, theta)


def test_bar_stimulus_by_hand():
    horiz = Fi.bar_stimulus((5, 5), np.pi / 2, length=3, width=1)
    expected = np.zeros((5, 5))
    expected[2, 1:4] = 1.0
    np.testing.assert_allclose(horiz, expected, atol=1e-12)
    off = Fi.bar_stimulus((5, 5), 0.0, length=1, width=1, center=(0, 4))
    expected = np.zeros((5, 5))
    expected[0, 4] = 1.0
    np.testing.assert_allclose(off, expected, atol=1e-12)
    diag = Fi.bar_stimulus((31, 31), np.pi / 4, length=20, width=2)
    np.testing.assert_allclose(diag, diag.T[::-1, ::-1], atol=1e-12)  # symmetric about its own line
    assert 0 <= diag.min() and diag.max() <= 1
    assert np.isclose(diag.sum(), 40.0, rtol=0.05)  # area length * width


def test_paint_bar_blends_and_leaves_the_input_alone():
    img = np.full((5, 5), 0.2)
    out = Fi.paint_bar(img, 0.0, length=5, width=1)
    expected = np.full((5, 5), 0.2)
    expected[:, 2] = 1.0
    np.testing.assert_allclose(out, expected)
    np.testing.assert_array_equal(img, np.full((5, 5), 0.2))
    with pytest.raises(ValueError, match="image"):
        Fi.paint_bar(np.zeros((2, 2, 2)), 0.0, 1, 1)


def test_to_gray():
    img = np.zeros((2, 2, 3), dtype=np.uint8)
    img[0, 0] = (255, 0, 0)
    img[1, 1] = (255, 255, 255)
    g = Fi.to_gray(img)
    np.testing.assert_allclose(g, [[0.299, 0.0], [0.0, 1.0]])
    f = np.full((2, 2), 0.5)
    np.testing.assert_array_equal(Fi.to_gray(f), f)
    before = img.copy()
    Fi.to_gray(img)
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: Fi.box_kernel(0), ValueError, "size"),
        (lambda: Fi.box_kernel(2.5), TypeError, "size"),
        (lambda: Fi.gaussian_kernel(4, 1.0), ValueError, "odd"),
        (lambda: Fi.gaussian_kernel(5, -1.0), ValueError, "sigma"),
        (lambda: Fi.gabor_kernel(9, 0.0, 0.0), ValueError, "wavelength"),
        (lambda: Fi.gabor_kernel(1, 0.0, 4.0), ValueError, "too small"),
        (lambda: Fi.gabor_kernel(9, float("nan"), 4.0), ValueError, "theta"),
        (lambda: Fi.gabor_kernel(9, "0", 4.0), TypeError, "theta"),
        (lambda: Fi.bar_stimulus((0, 5), 0.0, 3, 1), ValueError, "shape"),
        (lambda: Fi.bar_stimulus((5, 5), 0.0, 3, 0), ValueError, "width"),
        (lambda: Fi.bar_stimulus((5, 5), 0.0, 3, 1, center=(1,)), ValueError, "center"),
        (lambda: Fi.to_gray(np.zeros((2, 2, 4))), ValueError, "(H, W, 3)"),
        (lambda: Fi.to_gray([[0.0]]), TypeError, "image"),
    ],
)
def test_bad_arguments_are_named(call, exc, words):
    with pytest.raises(exc, match=words.replace("(", r"\(").replace(")", r"\)")):
        call()


def _printed_gabor_formula(name):
    """The expression for ``name`` as printed in gabor_kernel's docstring, as Python."""
    import re

    doc = Fi.gabor_kernel.__doc__
    found = re.search(r"``" + re.escape(name) + r" = ([^`]+)``", doc)
    assert found, f"gabor_kernel's docstring no longer prints {name} = ..."
    expr = found.group(1).replace("^", "**")
    # implicit products of the printed maths: "2 pi a", "u cos(theta)", "aspect**2 b**2"
    expr = re.sub(r"(?<=[\w)]) +(?=[a-z(])", " * ", expr)
    for fn in ("exp", "cos", "sin"):
        expr = re.sub(rf"\b{fn}\(", f"np.{fn}(", expr)
    return re.sub(r"\bpi\b", "np.pi", expr)


def test_gabor_docstring_formula_is_what_the_code_computes():
    # evaluate the docstring's formulas literally, pixel by pixel, for several
    # orientations and phases: a sign error in the printed rotation fails here
    a_expr, b_expr = _printed_gabor_formula("a"), _printed_gabor_formula("b")
    g_expr = _printed_gabor_formula("g(u, v)")
    size, wavelength, aspect = 11, 5.0, 0.5
    for theta in (0.0, 0.4, np.pi / 3, 2.0):
        for phase in (0.0, 1.0):
            g = np.zeros((size, size))
            for row in range(size):
                for col in range(size):
                    names = {
                        "np": np,
                        "theta": theta,
                        "phase": phase,
                        "aspect": aspect,
                        "wavelength": wavelength,
                        "sigma": 0.5 * wavelength,
                        "u": col - size // 2,
                        "v": row - size // 2,
                    }
                    names["a"] = eval(a_expr, names)
                    names["b"] = eval(b_expr, names)
                    g[row, col] = eval(g_expr, names)
            g -= g.mean()
            g /= np.sqrt((g**2).sum())
            code = Fi.gabor_kernel(size, theta, wavelength, phase=phase, aspect=aspect)
            np.testing.assert_allclose(code, g, atol=1e-12, err_msg=f"{theta=}, {phase=}")


def test_gabor_orientation_convention():
    # theta = 0: stripes are vertical, so an odd (phase pi/2) filter is an
    # antisymmetric left-right edge detector and symmetric top to bottom
    odd = Fi.gabor_kernel(11, 0.0, 6.0, phase=np.pi / 2)
    np.testing.assert_allclose(odd[:, ::-1], -odd, atol=1e-12)
    np.testing.assert_allclose(odd[::-1, :], odd, atol=1e-12)
    # cos(2 pi u / wavelength + pi / 2) = -sin(...): negative just right of the centre
    assert odd[5, 6] < 0 < odd[5, 4]
    # adding 90 degrees to theta is np.rot90 (anticlockwise on screen), any phase
    for theta in (0.0, 0.3, np.pi / 4, 1.2):
        for phase in (0.0, np.pi / 2, 1.0):
            g = Fi.gabor_kernel(13, theta, 5.0, phase=phase)
            g90 = Fi.gabor_kernel(13, theta + np.pi / 2, 5.0, phase=phase)
            np.testing.assert_allclose(g90, np.rot90(g), atol=1e-12)
    # theta = pi / 4 prefers the bar at +45 degrees, not the one at 135
    even = Fi.gabor_kernel(21, np.pi / 4, 8.0)
    bar45 = Fi.bar_stimulus((21, 21), np.pi / 4, 17, 3)
    bar135 = Fi.bar_stimulus((21, 21), 3 * np.pi / 4, 17, 3)
    assert np.sum(even * bar45) > 0.5 and abs(np.sum(even * bar135)) < 0.1
    # a bar at +45 degrees (anticlockwise from vertical) leans to the upper left:
    # the pixel up and to the left of the centre is on it, up-right is not
    assert bar45[10 - 5, 10 - 5] == 1.0 and bar45[10 - 5, 10 + 5] == 0.0


def test_disk_kernel_by_hand_and_its_symmetries():
    # radius 1 with 2x2 sub-pixels: the centre pixel's four sub-pixel centres
    # (+-0.25, +-0.25) are inside; each edge neighbour has two of four inside
    # (e.g. (0.75, +-0.25): 0.625 <= 1); a corner's nearest (0.75, 0.75) is out
    k = Fi.disk_kernel(1.0, oversample=2)
    expected = np.array([[0, 2, 0], [2, 4, 2], [0, 2, 0]]) / 12
    np.testing.assert_allclose(k, expected, atol=1e-15)
    big = Fi.disk_kernel(4.5)
    assert big.shape == (11, 11) and np.isclose(big.sum(), 1.0) and big.min() >= 0
    np.testing.assert_allclose(np.rot90(big), big, atol=1e-15)
    np.testing.assert_allclose(big[::-1], big, atol=1e-15)
    # the covered area tends to pi r^2 pixels
    area = np.count_nonzero(big == big.max()) + (big[big < big.max()].sum() / big.max())
    assert abs(area - np.pi * 4.5**2) < 0.02 * np.pi * 4.5**2


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: Fi.disk_kernel(0.0), ValueError, "radius"),
        (lambda: Fi.disk_kernel("2"), TypeError, "radius"),
        (lambda: Fi.disk_kernel(2.0, oversample=0), ValueError, "oversample"),
        (lambda: Fi.disk_kernel(2.0, oversample=2.0), TypeError, "oversample"),
    ],
)
def test_disk_kernel_bad_arguments_are_named(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
