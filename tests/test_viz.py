"""Tests of catlab.viz: what each figure shows (array contents, counts, labels) and its errors."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from catlab import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


ORANGE = np.array(matplotlib.colors.to_rgb("tab:orange"))


def _orange_cells(ax):
    """(row, col) of every orange cell of the RGB image drawn on ax."""
    img = np.asarray(ax.get_images()[0].get_array())
    return {tuple(int(v) for v in rc) for rc in np.argwhere(np.all(np.isclose(img, ORANGE), axis=-1))}


@pytest.mark.parametrize(
    "W,F,S,P,D,out",
    [(7, 3, 1, 0, 1, 5), (7, 3, 2, 0, 1, 3), (32, 5, 1, 2, 1, 32), (10, 3, 2, 0, 1, 4), (7, 3, 1, 0, 2, 3)],
)
def test_conv_geometry_output_size(W, F, S, P, D, out):
    fig = viz.conv_geometry(W, F, S, P, D)
    assert fig.out_size == out
    assert fig.axes[1].get_title() == f"output {out}x{out}"
    img = np.asarray(fig.axes[0].get_images()[0].get_array())
    assert img.shape == (W + 2 * P, W + 2 * P, 3)
    assert np.all(img[P : P + W, P : P + W][~np.all(np.isclose(img[P : P + W, P : P + W], ORANGE), -1)] == 1.0)
    if P:
        assert np.allclose(img[0, -1], 0.85)  # a padding corner, grey
    assert len(_orange_cells(fig.axes[0])) == F * F  # the taps (position (0, 0))
    assert np.asarray(fig.axes[1].get_images()[0].get_array()).shape == (out, out, 3)


def test_conv_geometry_taps_positions():
    # output (1, 2), stride 2, dilation 2, filter 2x2 -> taps at rows 2,4 and columns 4,6
    fig = viz.conv_geometry(9, 2, stride=2, dilation=2, position=(1, 2))
    assert _orange_cells(fig.axes[0]) == {(2, 4), (2, 6), (4, 4), (4, 6)} == set(fig.taps)
    assert _orange_cells(fig.axes[1]) == {(1, 2)}


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(size=3, kernel_size=5), "spans 5"),
        (dict(size=7, kernel_size=3, position=(5, 0)), "position"),
        (dict(size=7, kernel_size=0), "kernel_size"),
        (dict(size=7, kernel_size=3, padding=-1), "padding"),
        (dict(size=7, kernel_size=3, stride=1.5), "stride"),
    ],
)
def test_conv_geometry_errors(kw, match):
    with pytest.raises((TypeError, ValueError), match=match):
        viz.conv_geometry(**kw)


def test_dot_product_value_and_images():
    rng = np.random.default_rng(0)
    patch, w = rng.normal(size=(3, 5, 5)), rng.normal(size=(3, 5, 5))
    fig = viz.dot_product(patch, w, bias=0.5)
    expected = sum(patch[c, i, j] * w[c, i, j] for c in range(3) for i in range(5) for j in range(5)) + 0.5
    assert fig.value == pytest.approx(expected, rel=1e-12)
    assert len(fig.axes) == 9
    np.testing.assert_array_equal(fig.axes[1].get_images()[0].get_array(), patch[1])
    np.testing.assert_array_equal(fig.axes[4].get_images()[0].get_array(), w[1])  # row 1 = weights
    np.testing.assert_allclose(fig.axes[8].get_images()[0].get_array(), patch[2] * w[2])


def test_dot_product_shape_mismatch():
    with pytest.raises(ValueError, match="weight"):
        viz.dot_product(np.ones((3, 5, 5)), np.ones((3, 3, 3)))
    with pytest.raises(ValueError, match="patch"):
        viz.dot_product(np.ones((5, 5)), np.ones((5, 5)))


def test_feature_maps_shows_each_channel():
    maps = np.random.default_rng(1).normal(size=(5, 4, 6))
    fig = viz.feature_maps(maps, ncols=3, title="layer")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 5 and len(fig.axes) == 6
    for i, ax in enumerate(visible):
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), maps[i])
    assert fig._suptitle.get_text() == "layer"


def test_feature_maps_rejects_4d():
    with pytest.raises(ValueError, match=r"maps: expected a 3-D array \(C, H, W\)"):
        viz.feature_maps(np.zeros((1, 2, 3, 4)))


def test_filters_rgb_scaled_to_unit_range():
    w = np.random.default_rng(2).normal(size=(4, 3, 5, 5))
    fig = viz.filters(w)
    img = fig.axes[2].get_images()[0].get_array()
    assert img.shape == (5, 5, 3)
    assert img.min() == pytest.approx(0.0) and img.max() == pytest.approx(1.0)
    np.testing.assert_allclose(img, ((w[2] - w[2].min()) / (w[2].max() - w[2].min())).transpose(1, 2, 0))


def test_filters_deep_grid_one_row_per_filter():
    w = np.arange(2 * 6 * 3 * 3, dtype=float).reshape(2, 6, 3, 3)
    fig = viz.filters(w)
    assert len(fig.axes) == 12
    np.testing.assert_array_equal(fig.axes[7].get_images()[0].get_array(), w[1, 1])


def test_image_grid_titles_and_errors():
    fig = viz.image_grid(np.zeros((2, 4, 4, 3)), titles=["x", "y"], ncols=5)
    assert [ax.get_title() for ax in fig.axes] == ["x", "y"]
    with pytest.raises(ValueError, match="titles"):
        viz.image_grid(np.zeros((2, 4, 4)), titles=["x"])


def test_confusion_matrix_known_counts():
    cm = viz.confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), num_classes=4)
    expected = np.zeros((4, 4), int)
    expected[0, 0] = expected[0, 1] = expected[1, 1] = expected[2, 0] = 1
    expected[2, 2] = 2
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == 6


@pytest.mark.parametrize(
    "yt,yp,exc,match",
    [
        (np.array([0.0, 1.0]), np.array([0, 1]), TypeError, "y_true"),
        (np.array([0, 1]), np.array([0, 1, 1]), ValueError, "y_pred"),
        (np.array([0, 5]), np.array([0, 1]), ValueError, r"\[0, 3\)"),
    ],
)
def test_confusion_matrix_errors(yt, yp, exc, match):
    with pytest.raises(exc, match=match):
        viz.confusion_matrix(yt, yp, num_classes=3)


def test_plot_confusion_matrix_cells():
    cm = np.array([[5, 0, 1], [2, 7, 0], [0, 0, 9]])
    fig = viz.plot_confusion_matrix(cm, class_names=["a", "b", "c"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [str(v) for v in cm.ravel()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion_matrix(np.zeros((2, 3)))


def test_plot_history_splits_loss_and_accuracy():
    fig = viz.plot_history({"train_loss": [3, 2, 1], "train_acc": [0.1, 0.5, 0.9], "test_acc": [0.2, 0.4, 0.8]})
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train_loss"]
    assert [line.get_label() for line in acc_ax.lines] == ["train_acc", "test_acc"]
    np.testing.assert_array_equal(acc_ax.lines[1].get_xydata(), [[1, 0.2], [2, 0.4], [3, 0.8]])
    with pytest.raises(ValueError, match="empty"):
        viz.plot_history({})


def test_mosaic_places_each_map_and_normalises():
    maps = np.stack([np.full((2, 3), 5.0), np.arange(6.0).reshape(2, 3), -np.arange(6.0).reshape(2, 3)])
    m = viz.mosaic(maps, ncols=2, pad=1)
    assert m.shape == (2 * 3 - 1, 2 * 4 - 1)
    np.testing.assert_array_equal(m[0:2, 0:3], 0.0)  # constant map -> 0
    np.testing.assert_allclose(m[0:2, 4:7], np.arange(6.0).reshape(2, 3) / 5)
    np.testing.assert_allclose(m[3:5, 0:3], 1 - np.arange(6.0).reshape(2, 3) / 5)
    assert np.isnan(m[2]).all() and np.isnan(m[:2, 3]).all() and np.isnan(m[3:, 4:]).all()
    with pytest.raises(ValueError, match="ncols"):
        viz.mosaic(maps, ncols=0)


def test_plot_history_integer_epoch_ticks():
    fig = viz.plot_history({"loss": [3.0, 2.0, 1.0]})
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks == [1.0, 2.0, 3.0]


def test_conv_geometry_title_formula_evaluates_to_the_output_size():
    """The formula printed in the title, evaluated as printed, gives the size shown (with dilation too)."""
    import re

    for size, k, s, p, d in [(7, 3, 1, 0, 1), (9, 3, 1, 0, 2), (10, 3, 2, 1, 1), (11, 3, 2, 2, 3)]:
        fig = viz.conv_geometry(size, k, stride=s, padding=p, dilation=d)
        title = fig._suptitle.get_text()
        expr, out = re.search(r"= (\(.*?\) / \d+ \+ 1) -> (\d+)", title).groups()
        value = eval(expr)  # noqa: S307  the printed arithmetic, evaluated as printed
        assert int(value) == int(out) == fig.out_size, title
