"""How `runtime.scans` cuts time: remainder first, cache-sized chunks for narrow batches."""

from checked_rl.runtime import scans


def test_time_sizes_put_the_remainder_first_so_that_it_is_scanned_last() -> None:
    assert scans.time_sizes(10, 4) == [2, 4, 4]
    assert scans.time_sizes(8, 4) == [4, 4]
    assert scans.time_sizes(3, 4) == [3]


def test_chunks_are_cache_sized_for_narrow_batches_and_one_piece_for_wide_ones() -> None:
    narrow, wide = scans.ROW_SCAN_MIN_ENVS - 1, scans.ROW_SCAN_MIN_ENVS
    assert scans.chunk_steps(narrow) == scans.CHUNK_ELEMENTS // narrow
    assert scans.chunk_steps(wide) == max(1, scans.PIECE_ELEMENTS // wide)
    assert scans.steps_within(100, 0) == 100
    assert scans.steps_within(10, 100) == 1
