"""The paper's figure grids: layout (rows x H + gaps), cell contents, PNG files."""

import numpy as np
import pytest
from PIL import Image

from onegan_tf import figures

H = W = 8
PAD = figures.PAD


def _size(rows, cols):
    return rows * (H + PAD) - PAD, cols * (W + PAD) - PAD


def _images(n, value=0.0):
    return np.full((n, H, W, 3), value, np.float32)


def _cell(grid, row, col):
    return grid[row * (H + PAD): row * (H + PAD) + H, col * (W + PAD): col * (W + PAD) + W]


def test_generation_figure_has_rows_I_Ifg_Im_Ibg():
    gen = {"I": _images(5, -1.0), "I_fg": _images(5, 1.0), "I_m": np.full((5, H, W, 1), 0.5, np.float32),
           "I_bg": _images(5, 0.0)}
    grid = figures.generation_figure(gen)
    assert grid.shape == _size(4, 5) + (3,) and grid.dtype == np.uint8
    assert [int(_cell(grid, r, 0)[0, 0, 0]) for r in range(4)] == [0, 255, 128, 128]


@pytest.mark.parametrize("with_gt, rows", [(False, 5), (True, 6)])
def test_reconstruction_figure_rows(with_gt, rows):
    rec = {"I_hat": _images(3), "I_fg_hat": _images(3), "I_bg_hat": _images(3),
           "I_m_hat": np.ones((3, H, W, 1), np.float32)}
    gt = np.zeros((3, H, W, 1), np.float32) if with_gt else None
    grid = figures.reconstruction_figure(_images(3), rec, gt)
    assert grid.shape == _size(rows, 3) + (3,)
    assert (_cell(grid, rows - 1, 0) == 255).all()  # the predicted mask is the last row
    if with_gt:
        assert (_cell(grid, 4, 0) == 0).all()


def test_translation_figure_is_one_row_per_image_and_one_column_per_target():
    images, translated = _images(3, -1.0), np.stack([_images(3, t / 4) for t in range(4)])
    grid = figures.translation_figure(images, translated)
    assert grid.shape == _size(3, 5) + (3,)
    assert (_cell(grid, 2, 0) == 0).all()                               # first column: the real images
    assert int(_cell(grid, 1, 3)[0, 0, 0]) == round((2 / 4 + 1) / 2 * 255)  # column 1 + t: target t


def test_translation_figure_header_row_with_blank_corner():
    grid = figures.translation_figure(_images(2, -1.0), np.stack([_images(2)] * 3), header=_images(3, -1.0))
    assert grid.shape == _size(3, 4) + (3,)
    assert (_cell(grid, 0, 0) == 255).all() and (_cell(grid, 0, 1) == 0).all()


def test_translation_figure_checks_its_shapes():
    with pytest.raises(ValueError, match="targets"):
        figures.translation_figure(_images(2), _images(3))


def test_conditional_generation_figure_top_row_real_then_one_row_per_z():
    generated = np.stack([_images(4, 1.0)] * 5)
    grid = figures.conditional_generation_figure(_images(4, -1.0), generated)
    assert grid.shape == _size(6, 4) + (3,)
    assert (_cell(grid, 0, 3) == 0).all() and (_cell(grid, 5, 3) == 255).all()


@pytest.mark.parametrize("with_gt, rows", [(False, 3), (True, 4)])
def test_removal_figure_original_masked_background(with_gt, rows):
    mask = np.zeros((2, H, W, 1), np.float32)
    mask[:, :4] = 1.0
    gt = mask if with_gt else None
    grid = figures.removal_figure(_images(2, -1.0), mask, _images(2, 0.0), gt)
    assert grid.shape == _size(rows, 2) + (3,)
    masked_cell = _cell(grid, rows - 2, 0)
    assert (masked_cell[:4] == 255).all() and (masked_cell[4:] == 0).all()   # the hole is painted white
    assert (_cell(grid, rows - 1, 1) == 128).all()                          # last row: the background


def test_masked_paints_only_pixels_above_one_half():
    mask = np.array([0.2, 0.5, 0.51, 1.0], np.float32).reshape(1, 1, 4)
    out = figures.masked(np.full((1, 1, 4, 3), -1.0, np.float32), mask)
    assert out[0, 0, :, 0].tolist() == [-1.0, -1.0, 1.0, 1.0]


def test_save_png_round_trip(tmp_path):
    grid = figures.image_grid([_images(2, -1.0), _images(2, 1.0)])
    path = figures.save_png(str(tmp_path / "sub" / "g.png"), grid)
    assert np.array_equal(np.asarray(Image.open(path)), grid)
    assert not list((tmp_path / "sub").glob("*.tmp"))
