/**
 * The farthest back-reference in a raw DEFLATE stream (RFC 1951), to check that a server compresses
 * within the window it negotiated (RFC 7692 §7.1.2.1: server_max_window_bits).
 *
 * zlib's inflate cannot be asked this: it checks a distance against its window plus whatever it has
 * already written in the same call, so a reference far beyond a 512-byte window passes as long as it
 * lands in the message being inflated. This walks the stream's blocks and Huffman codes without
 * producing any output and returns the largest distance it meets.
 */

/** Reads a DEFLATE stream's bits, least significant first within each byte (RFC 1951 §3.1.1). */
class BitReader {
  private readonly data: Uint8Array;
  private position = 0;
  private buffer = 0;
  private count = 0;

  constructor(data: Uint8Array) {
    this.data = data;
  }

  /** The next `n` bits (at most 16) as a number, the first bit read the least significant. */
  bits(n: number): number {
    while (this.count < n) {
      if (this.position >= this.data.length) throw new RangeError('the DEFLATE stream ends inside a block');
      this.buffer |= this.data[this.position++]! << this.count;
      this.count += 8;
    }
    const value = this.buffer & ((1 << n) - 1);
    this.buffer >>>= n;
    this.count -= n;
    return value;
  }

  /** Drops the bits left in the current byte (RFC 1951 §3.2.4: stored blocks start on a byte). */
  alignToByte(): void {
    this.buffer = 0;
    this.count = 0;
  }

  skipBytes(n: number): void {
    if (this.position + n > this.data.length) throw new RangeError('the DEFLATE stream ends inside a stored block');
    this.position += n;
  }

  /** Every byte read and no bit left over. */
  get finished(): boolean {
    return this.position === this.data.length && this.count === 0;
  }
}

/** A canonical Huffman code (RFC 1951 §3.2.2): how many codes of each length, and the symbols in code order. */
interface HuffmanCode {
  readonly counts: Uint16Array;
  readonly symbols: Uint16Array;
}

const MAX_CODE_LENGTH = 15;

function huffmanCode(lengths: Uint8Array): HuffmanCode {
  const counts = new Uint16Array(MAX_CODE_LENGTH + 1);
  for (const length of lengths) counts[length]!++;
  counts[0] = 0;
  const offsets = new Uint16Array(MAX_CODE_LENGTH + 2);
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) offsets[length + 1] = offsets[length]! + counts[length]!;
  const symbols = new Uint16Array(lengths.length);
  lengths.forEach((length, symbol) => {
    if (length !== 0) symbols[offsets[length]!++] = symbol;
  });
  return { counts, symbols };
}

/**
 * Decodes one symbol bit by bit: codes of one length are consecutive numbers, so a code of length `n`
 * is valid when it is below the first code of that length plus the number of such codes.
 */
function decodeSymbol(reader: BitReader, code: HuffmanCode): number {
  let value = 0;
  let first = 0;
  let index = 0;
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    value |= reader.bits(1);
    const count = code.counts[length]!;
    if (value - first < count) return code.symbols[index + value - first]!;
    index += count;
    first = (first + count) << 1;
    value <<= 1;
  }
  throw new RangeError('an invalid Huffman code in the DEFLATE stream');
}

// RFC 1951 §3.2.5: the base and extra bits of length codes 257-285 and distance codes 0-29.
const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DISTANCE_BASE = [
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289,
  16385, 24577,
];
const DISTANCE_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
/** RFC 1951 §3.2.7: the order in which the code length code's lengths are sent. */
const CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
const END_OF_BLOCK = 256;

/** RFC 1951 §3.2.6: the fixed codes of BTYPE 01. */
const FIXED_LITERALS = huffmanCode(Uint8Array.from({ length: 288 }, (_, symbol) => (symbol < 144 ? 8 : symbol < 256 ? 9 : symbol < 280 ? 7 : 8)));
const FIXED_DISTANCES = huffmanCode(new Uint8Array(30).fill(5));

/** RFC 1951 §3.2.7: a dynamic block's literal/length and distance codes, from its header. */
function dynamicCodes(reader: BitReader): [HuffmanCode, HuffmanCode] {
  const literalCount = reader.bits(5) + 257;
  const distanceCount = reader.bits(5) + 1;
  const codeLengthCount = reader.bits(4) + 4;
  const codeLengthLengths = new Uint8Array(19);
  for (let i = 0; i < codeLengthCount; i++) codeLengthLengths[CODE_LENGTH_ORDER[i]!] = reader.bits(3);
  const codeLengthCode = huffmanCode(codeLengthLengths);
  const lengths = new Uint8Array(literalCount + distanceCount);
  for (let i = 0; i < lengths.length; ) {
    const symbol = decodeSymbol(reader, codeLengthCode);
    if (symbol < 16) {
      lengths[i++] = symbol;
      continue;
    }
    let repeat: number;
    let length = 0;
    if (symbol === 16) {
      if (i === 0) throw new RangeError('a DEFLATE code length repeats a length before the first');
      length = lengths[i - 1]!;
      repeat = 3 + reader.bits(2);
    } else {
      repeat = symbol === 17 ? 3 + reader.bits(3) : 11 + reader.bits(7);
    }
    if (i + repeat > lengths.length) throw new RangeError('DEFLATE code lengths run past their count');
    lengths.fill(length, i, i + repeat);
    i += repeat;
  }
  return [huffmanCode(lengths.subarray(0, literalCount)), huffmanCode(lengths.subarray(literalCount))];
}

/**
 * The largest distance of any back-reference in `stream` (0 when there is none). The stream ends with
 * its last byte after a stored block, or with a block that has BFINAL set. Throws RangeError on a
 * stream that is cut short or malformed.
 */
export function farthestDistance(stream: Uint8Array): number {
  const reader = new BitReader(stream);
  let farthest = 0;
  for (;;) {
    const final = reader.bits(1) === 1;
    const type = reader.bits(2);
    if (type === 0) {
      reader.alignToByte();
      const length = reader.bits(16);
      if ((reader.bits(16) ^ 0xffff) !== length) throw new RangeError('a stored DEFLATE block whose NLEN is not the complement of LEN');
      reader.skipBytes(length);
    } else {
      if (type === 3) throw new RangeError('a DEFLATE block of the reserved type 11');
      const [literals, distances] = type === 1 ? [FIXED_LITERALS, FIXED_DISTANCES] : dynamicCodes(reader);
      for (;;) {
        const symbol = decodeSymbol(reader, literals);
        if (symbol < END_OF_BLOCK) continue;
        if (symbol === END_OF_BLOCK) break;
        const lengthIndex = symbol - 257;
        if (lengthIndex >= LENGTH_BASE.length) throw new RangeError(`the invalid DEFLATE length code ${symbol}`);
        reader.bits(LENGTH_EXTRA[lengthIndex]!);
        const distanceCode = decodeSymbol(reader, distances);
        if (distanceCode >= DISTANCE_BASE.length) throw new RangeError(`the invalid DEFLATE distance code ${distanceCode}`);
        const distance = DISTANCE_BASE[distanceCode]! + reader.bits(DISTANCE_EXTRA[distanceCode]!);
        if (distance > farthest) farthest = distance;
      }
    }
    if (final || reader.finished) return farthest;
  }
}
