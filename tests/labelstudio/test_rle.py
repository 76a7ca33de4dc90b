"""Brush RLE codec: known answers, bit-exactness with the SDK, general streams, refusals."""

import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from pipeline.core.errors import RLEError
from pipeline.labelstudio.rle import decode, decode_values, encode

# Header of the SDK's streams after the count: word size 8, field sizes 3, 4, 8, 16.
SDK_PARAMS = [57, 27]

KNOWN = [
    # 1 pixel = 4 values: "1 00 011" + 8-bit value, then 5 zero bits of padding.
    ([[0]], [0, 0, 0, 4, *SDK_PARAMS, 252, 96, 0]),
    ([[255]], [0, 0, 0, 4, *SDK_PARAMS, 252, 127, 224]),
    # 5 pixels = 20 values: "1 10 00010011" + value = 72 bits, aligned, so a whole zero byte follows.
    ([[3, 3, 3, 3, 3]], [0, 0, 0, 20, *SDK_PARAMS, 254, 19, 3, 0]),
    # Runs of 4 and 8 values: "1 00 011 00000001" "1 00 111 00000010".
    ([[1, 2, 2]], [0, 0, 0, 12, *SDK_PARAMS, 252, 96, 51, 129, 0]),
]


def sdk_decode(stream, height: int, width: int) -> np.ndarray:
    """The SDK's decode as a (height, width) label map: channel 3 of its flat RGBA values."""
    return decode_rle(stream).reshape(height, width, 4)[:, :, 3]


def pack(chunks, word_size: int = 8, sizes=(3, 4, 8, 16)) -> list[int]:
    """A general rle-pack stream, as the web editor writes: chunks are (repeated, size index, count, values)."""
    num = sum(count for _, _, count, _ in chunks)
    bits = f"{num:032b}{word_size - 1:05b}" + "".join(f"{size - 1:04b}" for size in sizes)
    for repeated, index, count, values in chunks:
        bits += f"{int(repeated)}{index:02b}{count - 1:0{sizes[index]}b}"
        bits += "".join(f"{value:0{word_size}b}" for value in values)
    bits += "0" * (-len(bits) % 8)
    return [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]


def assert_matches_sdk(mask: np.ndarray) -> None:
    stream = mask2rle(mask)
    assert encode(mask) == stream
    assert np.array_equal(decode(stream, *mask.shape), mask)
    assert np.array_equal(decode(stream, *mask.shape), sdk_decode(stream, *mask.shape))


def runs_row(lengths) -> np.ndarray:
    """(1, sum(lengths)) mask of runs with alternating values 0, 9."""
    return np.concatenate([np.full(n, 9 * (i % 2), np.uint8) for i, n in enumerate(lengths)])[None, :]


@pytest.mark.parametrize(("mask", "stream"), KNOWN)
def test_known_answers(mask, stream):
    mask = np.array(mask, dtype=np.uint8)
    assert mask2rle(mask) == stream
    assert encode(mask) == stream
    assert np.array_equal(decode(stream, *mask.shape), mask)


RNG = np.random.default_rng(7)
CASES = {
    "empty": np.zeros((37, 53), np.uint8),
    "full": np.full((64, 64), 255, np.uint8),
    "noise": RNG.integers(0, 256, (40, 30), dtype=np.uint8),
    "1x1": np.array([[200]], np.uint8),
    "odd 1x7": RNG.integers(0, 3, (1, 7), dtype=np.uint8),
    "odd 7x1": RNG.integers(0, 3, (7, 1), dtype=np.uint8),
    "odd 13x17": RNG.integers(0, 2, (13, 17), dtype=np.uint8),
    "run of 360000 values": np.zeros((300, 300), np.uint8),
    "run of exactly 2 x 65536 values": np.ones((128, 256), np.uint8),
    # Pixel runs at the field-size boundaries: 4/8, 16, 256/260, 65536/65540, 131072/131076 values.
    "field boundaries": runs_row([1, 2, 3, 4, 5, 64, 65, 16383, 16384, 16385, 32768, 32769, 1]),
}


@pytest.mark.parametrize("name", CASES)
def test_bit_exact_with_sdk(name):
    assert_matches_sdk(CASES[name])


@pytest.mark.parametrize("dtype", [np.int64, np.int16, np.uint16, np.int8])
def test_encode_accepts_integer_dtypes(dtype):
    mask = RNG.integers(0, 100, (9, 11)).astype(dtype)
    assert encode(mask) == mask2rle(mask.astype(np.uint8))


def test_encode_reads_pixels_in_row_order_whatever_the_layout():
    mask = RNG.integers(0, 4, (20, 30), dtype=np.uint8)
    for view in (mask.T, np.asfortranarray(mask), mask[::2, ::3]):
        assert encode(view) == mask2rle(view)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=24)))
def test_random_masks_match_sdk(mask):
    assert_matches_sdk(mask)


@st.composite
def long_run_masks(draw):
    """Masks of a few values in runs of up to 40000 pixels."""
    runs = draw(st.lists(st.tuples(st.sampled_from([0, 1, 128, 255]), st.integers(1, 40000)), min_size=1, max_size=8))
    flat = np.concatenate([np.full(n, v, np.uint8) for v, n in runs])
    width = draw(st.integers(1, 400))
    return np.resize(flat, (max(1, flat.size // width), width))


@settings(max_examples=30, deadline=None)
@given(long_run_masks())
def test_long_run_masks_match_sdk(mask):
    assert_matches_sdk(mask)


@st.composite
def general_streams(draw):
    """Streams with literal chunks, any word size and field sizes; count padded to a multiple of 4."""
    word_size = draw(st.integers(1, 32))
    sizes = tuple(draw(st.lists(st.integers(1, 16), min_size=4, max_size=4)))
    value = st.integers(0, min(255, 2**word_size - 1))
    chunks = []
    for _ in range(draw(st.integers(0, 12))):
        index = draw(st.integers(0, 3))
        repeated = draw(st.booleans())
        count = draw(st.integers(1, 2 ** sizes[index] if repeated else min(2 ** sizes[index], 40)))
        values = [draw(value)] if repeated else draw(st.lists(value, min_size=count, max_size=count))
        chunks.append((repeated, index, count, values))
    num = sum(chunk[2] for chunk in chunks)
    chunks += [(False, 0, 1, [draw(value)]) for _ in range(-num % 4 if num else 4)]
    return pack(chunks, word_size, sizes)


@settings(max_examples=150, deadline=None)
@given(general_streams())
def test_general_streams_decode_like_sdk(stream):
    values = decode_rle(stream)
    assert np.array_equal(decode_values(stream), values)
    assert np.array_equal(decode(stream, 1, values.size // 4), sdk_decode(stream, 1, values.size // 4))


def test_editor_style_stream_with_literals_and_wide_words():
    # 16-bit words, a literal chunk of 6 values across pixels, then a run of 10.
    stream = pack([(False, 1, 6, [1, 2, 3, 4, 5, 6]), (True, 2, 10, [255])], word_size=16, sizes=(2, 4, 6, 16))
    assert decode_values(stream).tolist() == [1, 2, 3, 4, 5, 6] + [255] * 10
    assert decode(stream, 2, 2).tolist() == [[4, 255], [255, 255]]
    assert np.array_equal(decode(stream, 2, 2), sdk_decode(stream, 2, 2))


def test_run_past_the_count_is_clipped_like_sdk():
    stream = pack([(True, 0, 4, [7])])  # count 4
    stream[:4] = [0, 0, 0, 2]  # header now counts 2 values: the run of 4 overshoots
    assert decode_values(stream).tolist() == decode_rle(stream).tolist() == [7, 7]


@pytest.mark.parametrize("kind", [bytes, bytearray, tuple, np.array, lambda s: np.array(s, np.int64)])
def test_decode_accepts_stream_types(kind):
    mask = CASES["odd 13x17"]
    assert np.array_equal(decode(kind(mask2rle(mask)), 13, 17), mask)


def test_trailing_bytes_are_ignored_like_sdk():
    stream = mask2rle(CASES["noise"]) + [255, 0, 17]
    assert np.array_equal(decode(stream, 40, 30), sdk_decode(stream, 40, 30))


def test_refuses_count_other_than_height_width_4():
    stream = mask2rle(CASES["odd 13x17"])
    with pytest.raises(RLEError, match=r"counts 884 values, expected .* 936 .* original_height"):
        decode(stream, 13, 18)


def test_refuses_huge_count_fast_without_allocating():
    stream = pack([(True, 3, 65536, [1])])
    stream[:4] = [128, 0, 0, 0]  # the header claims 2**31 values
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(RLEError, match="counts 2147483648 values, expected"):
        decode(stream, 100, 100)
    with pytest.raises(RLEError, match="truncated"):
        decode(stream, 2**14, 2**15)  # the count matches the shape but the stream cannot hold it
    with pytest.raises(RLEError, match="truncated"):
        decode_values(stream)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20
    assert time.perf_counter() - start < 1.0


def test_refuses_every_truncation():
    stream = mask2rle(CASES["noise"])
    # The last byte may be padding only; dropping two or more always cuts a field.
    for cut in range(len(stream) - 1):
        with pytest.raises(RLEError, match="truncated|too short"):
            decode(stream[:cut], 40, 30)


@pytest.mark.parametrize(
    ("stream", "match"),
    [
        ([0, 0, 0, 4, 57, 300, 0], r"rle\[5\] = 300"),
        ([0, 0, -1], r"rle\[2\] = -1"),
        ([0, 1.5], r"rle\[1\] = 1.5"),
        ([0, "7"], r"rle\[1\] = '7'"),
        (np.array([0, 0, 0, 4, 256]), "rle\\[4\\] = 256"),
        (np.zeros(8, np.float32), "dtype float32"),
        (np.zeros((2, 8), np.uint8), r"flat RLE, got shape \(2, 8\)"),
        ("0,0,0,4", "got str"),
        ([], "too short"),
    ],
)
def test_refuses_bad_stream_items(stream, match):
    with pytest.raises(RLEError, match=match):
        decode(stream, 1, 1)


def test_refuses_values_wider_than_a_byte_like_sdk():
    stream = pack([(True, 0, 4, [256])], word_size=9)
    with pytest.raises(OverflowError):
        decode_rle(stream)
    with pytest.raises(RLEError, match=r"value 256 .*word size 9"):
        decode(stream, 1, 1)


def test_refuses_literal_past_the_count_like_sdk():
    stream = pack([(False, 1, 6, [1, 2, 3, 4, 5, 6])])
    stream[:4] = [0, 0, 0, 4]
    with pytest.raises(IndexError):
        decode_rle(stream)
    with pytest.raises(RLEError, match="runs to 6, past the header's count 4"):
        decode(stream, 1, 1)


@pytest.mark.parametrize(("height", "width", "match"), [(0, 5, "height must be positive"), (5, -1, "width must be")])
def test_refuses_bad_shape(height, width, match):
    with pytest.raises(RLEError, match=match):
        decode(mask2rle(np.zeros((5, 5), np.uint8)), height, width)


def test_refuses_non_int_shape():
    with pytest.raises(RLEError, match=r"width must be an int, got 2\.5"):
        decode(KNOWN[0][1], 1, 2.5)


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (np.zeros((2, 2, 4), np.uint8), r"2-D .* got shape \(2, 2, 4\)"),
        (np.zeros(5, np.uint8), "2-D"),
        (np.zeros((2, 2), np.float32), "dtype float32"),
        (np.zeros((2, 2), bool), "dtype bool"),
        (np.array([[0, 256]], np.int16), r"got 256 at \(0, 1\)"),
        (np.array([[-3, 0]]), r"got -3 at \(0, 0\)"),
        (np.zeros((0, 5), np.uint8), "at least one pixel"),
        (np.broadcast_to(np.uint8(0), (2**15, 2**15)), "at most 4294967295 values"),
    ],
)
def test_encode_refuses(mask, match):
    with pytest.raises(RLEError, match=match):
        encode(mask)
