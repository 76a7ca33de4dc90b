"""Label Studio brush RLE codec, bit-exact with ``label_studio_sdk.converter.brush``.

The stream is thi.ng rle-pack, read most significant bit first:

    header  32 bits  count of values (height * width * 4: the mask as RGBA)
             5 bits  word size - 1
          4 x 4 bits run-length field sizes - 1
    chunks   1 bit   1 = one value repeated, 0 = literal values
             2 bits  index into the four field sizes
             s bits  number of values - 1
             w bits  the value (repeated) or each literal value

Shapes: a mask is (H, W) uint8; a stream holds H * W * 4 values, the label of
pixel p being value 4 * p + 3 (the SDK's channel 3).

Where the SDK is lax or fails with a bare Python error, this codec raises
``RLEError`` instead:
- decoding a value above 255 (word sizes over 8 bits): the SDK's uint8
  assignment raises OverflowError, so such streams never held a label map;
- a stream that ends inside a field (the SDK reads the short field or fails
  with ValueError), or whose literal chunk runs past the header's count (the
  SDK raises IndexError); a repeated run past the count is clipped, as both
  the SDK and thi.ng do; bits after the last chunk are ignored;
- stream items outside 0..255 (the SDK silently keeps their low 8 bits);
- encoding an empty mask (the SDK raises TypeError) or one of 2**30 pixels or
  more (the SDK writes a count wider than its 32-bit field).
"""

import operator
from typing import NoReturn

import numba
import numpy as np

from pipeline.core.errors import RLEError

CHANNELS = 4
HEADER_BITS = 53
MAX_VALUES = 2**32 - 1
# The SDK's fixed parameters after the count: word size 8, field sizes 3, 4, 8, 16.
_SDK_PARAMS = (7 << 16) | (2 << 12) | (3 << 8) | (7 << 4) | 15
_OK, _TRUNCATED, _WIDE_VALUE, _OVERRUN = 0, 1, 2, 3


def encode(mask: np.ndarray) -> list[int]:
    """Encode a label map as a Label Studio brush RLE, equal to the SDK's ``mask2rle``.

    mask: (H, W) integer array with values 0..255. Returns the stream as a list of bytes.
    Raises RLEError for any other mask.
    """
    pixels = _mask_pixels(mask)
    # Run ends, found with vectorized numpy: a few times faster than a per-pixel loop.
    ends = np.append(np.flatnonzero(pixels[1:] != pixels[:-1]) + 1, pixels.size)
    # A run of k pixels costs at most 27 bits per 65536 values, so at most 27 * k bits.
    out = np.empty((HEADER_BITS + 27 * pixels.size + 8) // 8 + 1, dtype=np.uint8)
    return out[: _encode_into(pixels, ends, out)].tolist()


def decode(rle, height: int, width: int) -> np.ndarray:
    """Decode a brush RLE into its (height, width) uint8 label map (channel 3 of the SDK's ``decode_rle``).

    rle: list of ints 0..255, bytes, or a 1-D integer array, as in a result's ``value["rle"]``.
    Raises RLEError, before allocating the map, if the header does not count height * width * 4
    values or the stream cannot hold them; and for a corrupt stream (see the module docstring).
    """
    height, width = _positive_int(height, "height"), _positive_int(width, "width")
    data = _stream_bytes(rle)
    num, word_size, sizes = _header(data)
    if num != height * width * CHANNELS:
        raise RLEError(
            f"RLE header counts {num} values, expected height * width * {CHANNELS} = "
            f"{height * width * CHANNELS} for a {height}x{width} mask; pass the result's "
            "original_height and original_width"
        )
    _check_reachable(data, num, word_size, sizes)
    out = np.empty(height * width, dtype=np.uint8)
    _run_decode(data, num, word_size, sizes, out, step=CHANNELS, offset=CHANNELS - 1)
    return out.reshape(height, width)


def decode_values(rle) -> np.ndarray:
    """Decode every value of a brush RLE: (count,) uint8, equal to the SDK's ``decode_rle``."""
    data = _stream_bytes(rle)
    num, word_size, sizes = _header(data)
    _check_reachable(data, num, word_size, sizes)
    out = np.empty(num, dtype=np.uint8)
    _run_decode(data, num, word_size, sizes, out, step=1, offset=0)
    return out


def _mask_pixels(mask) -> np.ndarray:
    """Check a mask and return its pixels: (H * W,) uint8, C order like the SDK's ``ravel``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RLEError(f"expected a 2-D (height, width) mask, got shape {mask.shape}; pass one label map at a time")
    if mask.dtype.kind not in "iu":
        raise RLEError(
            f"expected an integer mask with values 0..255, got dtype {mask.dtype}; convert it with astype(np.uint8)"
        )
    if mask.size == 0:
        raise RLEError(f"expected a mask with at least one pixel, got shape {mask.shape}")
    if mask.size * CHANNELS > MAX_VALUES:
        raise RLEError(
            f"a brush RLE counts at most {MAX_VALUES} values in 32 bits, a {mask.shape} mask needs "
            f"{mask.size * CHANNELS}; split it into tiles of fewer than 2**30 pixels"
        )
    if mask.dtype != np.uint8:
        bad = (mask < 0) | (mask > 255)
        if bad.any():
            where = np.unravel_index(int(np.argmax(bad)), mask.shape)
            raise RLEError(f"mask values must be 0..255, got {mask[where]} at {tuple(map(int, where))}")
    return np.ascontiguousarray(mask, dtype=np.uint8).ravel()


def _positive_int(value, name: str) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise RLEError(f"{name} must be an int, got {value!r} ({type(value).__name__})") from None
    if number <= 0:
        raise RLEError(f"{name} must be positive, got {number}")
    return number


def _stream_bytes(rle) -> np.ndarray:
    """Check a stream's items and return them as (n,) uint8."""
    # A writable copy, so that every input reaches the parser as one array type (one compiled version).
    if isinstance(rle, (bytes, bytearray, list, tuple)):
        try:
            return np.frombuffer(bytearray(rle), dtype=np.uint8)  # a C loop that checks 0..255
        except (TypeError, ValueError):
            _raise_bad_item(rle)
    if not isinstance(rle, np.ndarray):
        raise RLEError(f"expected the RLE as a list of ints, bytes or a 1-D array, got {type(rle).__name__}")
    if rle.ndim != 1:
        raise RLEError(f"expected a flat RLE, got shape {rle.shape}; pass the result's value['rle'] unchanged")
    if rle.dtype.kind not in "iu":
        raise RLEError(f"expected an integer RLE array with items 0..255, got dtype {rle.dtype}")
    if rle.dtype != np.uint8 and ((rle < 0) | (rle > 255)).any():
        _raise_bad_item(rle.tolist())
    return np.ascontiguousarray(rle, dtype=np.uint8)


def _raise_bad_item(items) -> NoReturn:
    """Name the first item of a stream that is not an int 0..255."""
    for i, item in enumerate(items):
        if not isinstance(item, (int, np.integer)) or not 0 <= item <= 255:
            raise RLEError(
                f"RLE items must be ints 0..255, got rle[{i}] = {item!r}; pass the result's value['rle'] unchanged"
            )
    raise RLEError("expected the RLE as a flat list of ints 0..255")


def _header(data: np.ndarray) -> tuple[int, int, np.ndarray]:
    """Read (count, word size, (4,) run-length field sizes) from a stream's first 53 bits."""
    if data.size * 8 < HEADER_BITS:
        raise RLEError(f"RLE stream too short: the header alone needs 7 bytes, got {data.size}")
    bits = int.from_bytes(data[:7].tobytes(), "big") >> (56 - HEADER_BITS)
    sizes = np.array([((bits >> shift) & 15) + 1 for shift in (12, 8, 4, 0)], dtype=np.int64)
    return bits >> 21, ((bits >> 16) & 31) + 1, sizes


def _check_reachable(data: np.ndarray, num: int, word_size: int, sizes: np.ndarray) -> None:
    """Refuse a count the stream cannot hold, before allocating for it."""
    # Each chunk takes at least 3 + min(sizes) + word_size bits and yields at most 2**max(sizes) values.
    chunks = (data.size * 8 - HEADER_BITS) // (3 + int(sizes.min()) + word_size)
    if num > chunks * 2 ** int(sizes.max()):
        raise RLEError(
            f"RLE stream truncated: its header counts {num} values but {data.size} bytes hold at most "
            f"{chunks * 2 ** int(sizes.max())}; pass the whole value['rle']"
        )


def _run_decode(data, num, word_size, sizes, out, step, offset) -> None:
    """Decode values into ``out[(i - offset) // step]`` for each value index i with i % step == offset."""
    status, a, b = _decode_into(data, data.size * 8, num, word_size, sizes, step, offset, out)
    if status == _TRUNCATED:
        raise RLEError(
            f"RLE stream truncated: it ends after {data.size} bytes, at value {a} of {num}; pass the whole value['rle']"
        )
    if status == _WIDE_VALUE:
        raise RLEError(
            f"RLE value {a} at index {b} does not fit a uint8 label map (word size {word_size} bits); "
            "brush masks hold 0..255 and the SDK refuses this stream too"
        )
    if status == _OVERRUN:
        raise RLEError(
            f"RLE literal chunk at value {a} runs to {b}, past the header's count {num}: the stream is corrupt"
        )


@numba.njit(cache=True)
def _read_bits(data, pos, n):
    """The n-bit (n <= 32) big-endian unsigned integer starting at bit pos of data (n,) uint8."""
    value = 0
    while n > 0:
        avail = 8 - (pos & 7)
        take = avail if avail < n else n
        value = (value << take) | ((data[pos >> 3] >> (avail - take)) & ((1 << take) - 1))
        pos += take
        n -= take
    return value


@numba.njit(cache=True)
def _decode_into(data, nbits, num, word_size, sizes, step, offset, out):
    """Parse the chunks of data (n,) uint8; return (status, detail, detail)."""
    pos = HEADER_BITS
    i = 0
    while i < num:
        if pos + 3 > nbits:
            return _TRUNCATED, i, 0
        repeated = _read_bits(data, pos, 1)
        size = sizes[_read_bits(data, pos + 1, 2)]
        pos += 3
        if pos + size > nbits:
            return _TRUNCATED, i, 0
        j = i + 1 + _read_bits(data, pos, size)
        pos += size
        if repeated:
            if pos + word_size > nbits:
                return _TRUNCATED, i, 0
            value = _read_bits(data, pos, word_size)
            pos += word_size
            if value > 255:
                return _WIDE_VALUE, value, i
            end = min(j, num)  # a run past the count is clipped, like the SDK's slice
            out[(i - offset + step - 1) // step : (end - offset + step - 1) // step] = value
            i = end
        else:
            if j > num:
                return _OVERRUN, i, j
            if pos + (j - i) * word_size > nbits:
                return _TRUNCATED, i, 0
            for k in range(i, j):
                value = _read_bits(data, pos, word_size)
                pos += word_size
                if value > 255:
                    return _WIDE_VALUE, value, k
                if k % step == offset:
                    out[(k - offset) // step] = value
            i = j
    return _OK, 0, 0


@numba.njit(cache=True)
def _put_bits(out, k, acc, nacc, code, nbits):
    """Append the low nbits of code to out (bytes written: k, pending bits: acc, nacc < 8)."""
    acc = (acc << nbits) | code
    nacc += nbits
    while nacc >= 8:
        nacc -= 8
        out[k] = (acc >> nacc) & 255
        k += 1
    return k, acc & ((1 << nacc) - 1), nacc


@numba.njit(cache=True)
def _encode_into(pixels, ends, out):
    """Write the SDK's stream for pixels (N,) uint8 with run ends (R,) int64 into out; return its length in bytes."""
    k, acc, nacc = _put_bits(out, 0, 0, 0, pixels.size * CHANNELS, 32)
    k, acc, nacc = _put_bits(out, k, acc, nacc, _SDK_PARAMS, HEADER_BITS - 32)
    start = 0
    for end in ends:
        value = np.int64(pixels[start])
        # Every pixel is four equal values, so runs are never shorter than 4 and the
        # SDK's single-value literal chunk cannot occur.
        length = CHANNELS * (end - start)
        if length <= 8:
            index, size = 0, 3
        elif length <= 16:
            index, size = 1, 4
        elif length <= 256:
            index, size = 2, 8
        else:
            # The SDK writes long runs as chunks of 65536 and the rest in a 16-bit field, however short.
            while length > 65536:
                k, acc, nacc = _put_bits(out, k, acc, nacc, (((7 << 16) | 65535) << 8) | value, 27)
                length -= 65536
            index, size = 3, 16
        k, acc, nacc = _put_bits(out, k, acc, nacc, ((((4 | index) << size) | (length - 1)) << 8) | value, 11 + size)
        start = end
    # The SDK always pads with 1 to 8 zero bits, a whole byte when already aligned.
    k, acc, nacc = _put_bits(out, k, acc, nacc, 0, 8 - nacc)
    return k
