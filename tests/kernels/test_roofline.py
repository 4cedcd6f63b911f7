"""The byte and flop counts of bench/roofline.py on cases small enough to count by hand; the
expected numbers are worked out in the comments next to them."""
from fractions import Fraction

import pytest

from bench import roofline as rl


def test_in_range_offsets_average_over_positions():
    # 3 pixels, K=3: positions 0, 1, 2 keep 2, 3, 2 of the offsets -1, 0, 1.
    assert rl.mean_in_range_offsets(3, 3) == pytest.approx(7 / 3)
    assert rl.mean_in_range_offsets(1, 7) == 1
    assert rl.mean_in_range_offsets(5, 1) == 1


def test_in_grid_taps_and_window_counts_on_a_3x3_grid():
    dense = rl.conv_shape(1, 3, 3, 9, 32, 3)
    assert rl.mean_in_grid_taps(dense) == pytest.approx(49 / 9)
    # Every pixel holds a point: the window count is the in-grid tap count.
    assert rl.mean_window_count(dense) == pytest.approx(49 / 9)
    assert rl.mean_window_count(rl.conv_shape(1, 3, 3, 1, 32, 3)) == 1
    # 5 of 9 pixels: each of the 40/9 other in-grid taps is occupied with probability 4/8.
    assert rl.mean_window_count(rl.conv_shape(1, 3, 3, 5, 32, 3)) == pytest.approx(1 + 20 / 9)


def test_warp_sectors():
    assert rl.warp_sectors(32, 4) == 4  # 128 contiguous bytes
    assert rl.warp_sectors(32, 8) == 8  # every other float: 256 bytes
    assert rl.warp_sectors(32, 36) == 32  # a (C, 3*3) weight read along C
    assert rl.warp_sectors(32, 196) == 32  # a (C, 7*7) weight read along C
    assert rl.warp_sectors(4, 4) == 1
    # Lane 1 reads bytes 30..33, across the first sector boundary.
    assert rl.warp_sectors(2, 30) == 2


def test_neighbor_map_bytes():
    assert rl.neighbor_map_bytes(rl.conv_shape(1, 3, 3, 9, 32, 3)) == 4 * (9 + 3 * 9)


def test_sparse_conv_floor_on_a_dense_3x3_grid():
    shape = rl.conv_shape(1, 3, 3, 9, 32, 3)
    # x and y 9*32 floats each, weight 32*9 floats, bias 32 floats, map 144 bytes.
    fwd = rl.sparse_conv_floor(shape)
    assert fwd.bytes == 2 * 1152 + 1152 + 128 + 144
    # 2*32 flops per present tap (49 taps over the 9 points) plus scale and bias per output.
    assert fwd.flops == pytest.approx(2 * 32 * 49 + 9 * 64)
    # bwd reads grad_out and x and writes grad_x (3 feature tensors), reads the weight and
    # writes grad_w (2 weight-sized tensors), writes grad_bias and reads the map.
    bwd = rl.sparse_conv_floor(shape, backward=True)
    assert bwd.bytes == 3 * 1152 + 2 * 1152 + 128 + 144
    assert bwd.flops == pytest.approx(4 * 32 * 49 + 9 * 64)


def test_before_kernel_sectors_of_one_lonely_point():
    shape = rl.conv_shape(1, 1, 1, 1, 32, 3)
    # One warp: coords 2 + one lookup + (32 weight sectors + 4 x sectors) for the one present
    # tap + counts 1 + bias 4 + out 4 = 48 sectors.
    fwd = rl.sparse_conv_before(shape)
    assert fwd.bytes == 48 * 32
    assert fwd.flops == 2 * 32 + 2 * 32
    # grad_x: 2 + 1 + (counts 1 + weight 32 + g 4) + store 4 = 44; grad_w: 3 rows of
    # (coords 2 + counts 1 + g 4) + 1 lookup + 4 = 26; 3 blocks (one per kernel row) of
    # 3 taps x 32 lanes 36 bytes apart = 288 atomic sectors; then the zero-fill of grad_w
    # (32*9 floats) and the bias sum reading grad_out (32 floats).
    assert rl.grad_w_blocks(shape) == 3
    bwd = rl.sparse_conv_before(shape, backward=True)
    assert bwd.bytes == (44 + 26 + 288) * 32 + 4 * 32 * 9 + 4 * 32


def test_after_kernel_sectors_of_one_lonely_point():
    shape = rl.conv_shape(1, 1, 1, 1, 32, 3)
    weight_pass = 2 * 4 * 32 * 9  # the binding's transpose of the kernel: read and write
    # 8 threads of 4 channels: coords 2 + the one in-grid tap probed twice (count, list) 2 +
    # (weight row 4 + x row 4) for the one present tap + counts 1 + out 4 + bias 4 (one block).
    fwd = rl.sparse_conv_after(shape)
    assert fwd.bytes == 21 * 32 + weight_pass
    # grad_x: 2 + 2 + (counts 1 + weight 4 + g 4) + store 4 = 17; grad_w: 3 rows of
    # (coords 2 + counts 1 + g row 4) + 1 lookup + x row 4 = 26; 3 blocks (one per kernel row)
    # of 3 taps x one 4-sector row of atomics = 36; the zero-fill of grad_w, the bias sum, and
    # the kernel transposed there and grad_w back.
    assert rl.grad_w_blocks(shape, rl.VECTOR) == 3
    bwd = rl.sparse_conv_after(shape, backward=True)
    assert bwd.bytes == (17 + 26 + 36) * 32 + 4 * 32 * 9 + 4 * 32 + 2 * weight_pass


def test_grad_w_blocks_at_the_headline_size():
    # C=64: one channel tile of 64, 4 point rows a block; ceil(2048 / (7 * 4)) = 74 chunks
    # wanted, chunk = ceil(16384 / 74) = 222 points, 74 chunks; 74 * 7 rows * 4 elements.
    assert rl.grad_w_blocks(rl.conv_shape(4, 256, 256, 16384, 64, 7)) == 2072
    # After the redesign, 16 threads of 4 channels a point and 16 point rows a block: the
    # same 64 points a chunk at least, hence the same blocks.
    assert rl.grad_w_blocks(rl.conv_shape(4, 256, 256, 16384, 64, 7), rl.VECTOR) == 2072


def test_models_order_floor_after_before():
    for size in (16, 32):
        for density in (Fraction(1), Fraction(1, 4), Fraction(1, 16)):
            shape = rl.conv_shape(4, size, size, rl.points_at(size, density), 64, 7)
            for backward in (False, True):
                floor = rl.sparse_conv_floor(shape, backward).bytes
                after = rl.sparse_conv_after(shape, backward).bytes
                before = rl.sparse_conv_before(shape, backward).bytes
                assert floor < after < before, (size, density, backward)


def test_knn_tile_size_holds_about_four_points():
    assert rl.knn_tile_size(256, 256, 16384) == 4  # 16 pixels a tile at density 1/4
    assert rl.knn_tile_size(4, 4, 16) == 2  # dense: 2x2 tiles hold the 4 points


def test_knn_and_grid_to_points_floors():
    # 2 points, 1 channel onto a 1x1 grid, k=1: x 8 bytes, coords 16, output 4; 2 flops.
    knn = rl.knn_to_grid_costs(1, 2, 2, 1, 1, 1)["floor"]
    assert (knn.bytes, knn.flops) == (28, 2)
    # 2 points sampling a 2x2 grid of 1 channel: grid 16, coords 16, output 8; 7 flops a value.
    sample = rl.grid_to_points_costs(1, 2, 2, 1, 2)
    assert (sample["floor"].bytes, sample["floor"].flops) == (40, 14)
    # bwd: zero-fill 16, read grad_out 8 and coords 16, atomics read and write the grid 32.
    assert rl.grid_to_points_costs(1, 2, 2, 1, 2, backward=True)["passes"].bytes == 72


def test_spectral_passes_on_one_4x4_grid():
    # real plane 64 bytes, half spectrum 4 * 3 complex = 96 bytes: rfft2 160 + 192, multiply
    # 192, irfft2 192 + 160, and for reflect two reorders of 128 each.
    costs = rl.spectral_costs(1, 4, "reflect")
    assert costs["floor"].bytes == 128
    assert costs["passes"].bytes == 160 + 192 + 192 + 192 + 160 + 256
    assert rl.spectral_costs(1, 4, "periodic")["passes"].bytes == 896
    # 2 transforms of 2.5 * 16 * log2(16) and 6 flops for each of the 12 coefficients.
    assert costs["passes"].flops == 392
    assert rl.spectral_costs(1, 4, backward=True)["passes"].bytes == 2 * 1152


def test_neighbor_map_floor():
    # coords 8 bytes, lookup 4 pixels * 4 bytes, counts 4 bytes.
    assert rl.neighbor_map_costs(1, 2, 1)["floor"].bytes == 28


def test_roofline_seconds_and_bound():
    assert rl.roofline_seconds(rl.Cost(2e12, 0), "A100-80GB-SXM") == 1.0
    assert rl.roofline_seconds(rl.Cost(0, 67e12), "H100-SXM") == 1.0
    assert rl.bound(rl.Cost(1, 1e6), "A100-40GB") == "compute"
    assert rl.bound(rl.Cost(1e6, 1), "A100-40GB") == "memory"


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: rl.sparse_conv_before(rl.conv_shape(1, 8, 8, 8, 48, 3)), "channels"),
        (lambda: rl.sparse_conv_after(rl.conv_shape(1, 8, 8, 8, 48, 3)), "channels"),
        (lambda: rl.conv_shape(1, 8, 8, 8, 32, 4), "kernel_size"),
        (lambda: rl.conv_shape(1, 2, 2, 5, 32, 3), "points"),
        (lambda: rl.conv_shape(0, 2, 2, 1, 32, 3), "batch"),
        (lambda: rl.roofline_seconds(rl.Cost(1, 1), "V100"), "gpu"),
        (lambda: rl.spectral_costs(1, 4, "zero"), "boundary"),
        (lambda: rl.warp_sectors(32, 0), "stride_bytes"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=f"^{name} "):
        call()


def test_table_lists_every_op_without_a_gpu():
    rows = rl.model_rows((16,), (Fraction(1, 4),))
    assert {r.op for r in rows} == {"sparse_conv", "knn_to_grid", "grid_to_points", "build_neighbor_map", "mollify/wiener"}
    table = rl.format_table(rows)
    assert len(table.splitlines()) == len(rows) + 2


def test_measure_times_every_floor_row_cpu_twin():
    """The GPU timing path, run with the "cpu" backend on a tiny case: one time per floor row
    of the table, and the table then shows roofline / measured for exactly those rows."""
    import infdiff_kernels as ik

    if "cpu" not in ik.available_backends("cpu"):
        pytest.skip(f"the compiled CPU backend is not built here; available: {ik.available_backends('cpu')}")
    sizes, densities = (16,), (Fraction(1, 4),)
    times, timings = rl.measure(sizes, densities, "cpu", 1, backend="cpu")
    assert all(t.skipped is None for t in timings), [t.skipped for t in timings if t.skipped]
    floor_keys = {(r.op, r.size, r.density, r.mode) for r in rl.model_rows(sizes, densities) if r.model == "floor"}
    assert set(times) == floor_keys
    assert all(seconds > 0 for seconds in times.values())
    table = rl.format_table(rl.model_rows(sizes, densities), {"gpu": "H100-SXM", "times": times})
    assert table.splitlines()[0].rstrip().endswith("roofline/measured")
    fractions = [line.split()[-1] for line in table.splitlines()[2:] if " floor " in line]
    assert len(fractions) == len(floor_keys) and all(float(f) > 0 for f in fractions)


def test_main_without_a_gpu_writes_the_model(tmp_path, capsys):
    import json

    path = tmp_path / "roofline.json"
    assert rl.main(["--sizes", "16", "--densities", "1/4", "--device", "cpu", "--json", str(path)]) == 0
    assert "no CUDA device" in capsys.readouterr().out
    payload = json.loads(path.read_text())
    assert payload["family"] == "roofline"
    assert len(payload["model"]) == len(rl.model_rows((16,), (Fraction(1, 4),)))
    assert payload["timings"][0]["skipped"].startswith("no CUDA device")
