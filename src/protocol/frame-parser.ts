/**
 * The incremental frame parser (RFC 6455 §5.2): a state machine fed TCP reads of any size and split.
 *
 * Headers are parsed all-or-nothing: straight from the read when it holds the whole header, otherwise
 * from a 14-byte scratch buffer the bytes are copied into (the only copy the parser makes). Payloads are
 * never buffered here: each read's share of the payload is unmasked in place and handed on as a view
 * (`subarray`), so a frame that spans many reads reaches the handler as several pieces, as they arrive.
 * That is what lets the protocol validate UTF-8 at the first invalid byte and count message size before
 * holding the bytes.
 *
 * Every rule that can be checked from the header is checked before any payload is accepted: masking by
 * role, reserved bits, reserved opcodes, control frame size and fragmentation, the 64-bit length's most
 * significant bit, and the size limit.
 */
import { MAX_CONTROL_PAYLOAD } from '../constants.ts';
import { MessageTooBig, ProtocolError } from '../errors.ts';
import { readMaskKey, unmask } from './mask.ts';

/** Which side of the connection this parser reads for. A server reads client frames, which are masked. */
export type Role = 'server' | 'client';

/** Receives a parsed frame as a start, zero or more payload pieces (already unmasked), and an end. */
export interface FrameHandler {
  frameStart(opcode: number, fin: boolean, rsv: number, length: number): void;
  framePayload(piece: Buffer): void;
  frameEnd(): void;
}

export interface FrameParserOptions {
  /** `server` requires masked frames, `client` requires unmasked frames (RFC 6455 §5.1). */
  role: Role;
  /** Largest payload length accepted in one frame; a larger declared length is refused with 1009. */
  maxFrameSize: number;
  /** RSV bits (0x40 RSV1, 0x20 RSV2, 0x10 RSV3) a negotiated extension allows; 0 without extensions. */
  allowedRsv?: number;
}

/**
 * Node's internal Buffer constructor: a view made with it skips the argument checks of `subarray`,
 * which is measurable when a read holds thousands of small frames.
 */
const FastBuffer = (Buffer as unknown as { [Symbol.species]: new (buffer: ArrayBufferLike, byteOffset: number, length: number) => Buffer })[
  Symbol.species
];

const READ_HEADER = 0;
const READ_PAYLOAD = 1;
/** After a violation, or after `stop()`: input is ignored. */
const STOPPED = 2;

/** Bytes 2..13 of the largest header: 8-byte length and 4-byte key. */
const MAX_HEADER_SIZE = 14;

export class FrameParser {
  private readonly handler: FrameHandler;
  private readonly expectMasked: boolean;
  private readonly maxFrameSize: number;
  private readonly forbiddenRsv: number;

  private state: number = READ_HEADER;
  /** Header bytes carried over from a read that ended inside a header. */
  private scratch: Buffer | null = null;
  private scratchLength = 0;
  private maskKey = 0;
  private masked = false;
  private remaining = 0;
  /** Position within the current payload, for the masking key's phase. */
  private payloadOffset = 0;

  constructor(handler: FrameHandler, options: FrameParserOptions) {
    this.handler = handler;
    this.expectMasked = options.role === 'server';
    if (!(options.maxFrameSize >= 0)) throw new RangeError('maxFrameSize must be a non-negative number');
    this.maxFrameSize = options.maxFrameSize;
    this.forbiddenRsv = 0x70 & ~(options.allowedRsv ?? 0);
  }

  /**
   * Parses `chunk`, calling the handler for everything it completes. The parser takes ownership of the
   * chunk: masked payloads are unmasked in place. Throws ProtocolError or MessageTooBig (or whatever the
   * handler throws) at the first violation; after that the parser ignores all input.
   */
  push(chunk: Buffer): void {
    if (this.state === STOPPED) return;
    try {
      this.parse(chunk);
    } catch (error) {
      this.state = STOPPED;
      throw error;
    }
  }

  /**
   * Stops parsing, from inside a handler call too: the rest of the current chunk and all later input
   * are ignored (RFC 6455 §5.5.1: nothing after a close frame is processed).
   */
  stop(): void {
    this.state = STOPPED;
  }

  /** True once stopped by a violation or by `stop()`. */
  get stopped(): boolean {
    return this.state === STOPPED;
  }

  private parse(chunk: Buffer): void {
    const end = chunk.length;
    let offset = 0;
    while (offset < end && this.state !== STOPPED) {
      if (this.state === READ_HEADER) {
        const next = this.readHeader(chunk, offset);
        if (next < 0) return; // header incomplete: what there was of it is in the scratch
        offset = next;
        if (this.stopped) return; // stop() called from frameStart
        if (this.remaining === 0) {
          this.state = READ_HEADER;
          this.handler.frameEnd();
          continue;
        }
        // The read ended with the header: the payload comes with the next read, not as an empty piece.
        if (offset === end) return;
      }
      const available = end - offset;
      const take = available < this.remaining ? available : this.remaining;
      const piece = offset === 0 && take === end ? chunk : new FastBuffer(chunk.buffer, chunk.byteOffset + offset, take);
      if (this.masked) unmask(piece, this.maskKey, this.payloadOffset);
      offset += take;
      this.payloadOffset += take;
      this.remaining -= take;
      if (this.remaining === 0) this.state = READ_HEADER;
      this.handler.framePayload(piece);
      if (this.remaining === 0) this.handler.frameEnd();
    }
  }

  /**
   * Reads a header from `chunk` at `offset` (completing one carried over in the scratch) and returns the
   * offset after what it consumed, or -1 when the chunk ended inside the header.
   */
  private readHeader(chunk: Buffer, offset: number): number {
    const available = chunk.length - offset;
    if (this.scratchLength === 0 && available >= 2) {
      const size = this.checkFirstBytes(chunk[offset]!, chunk[offset + 1]!);
      if (available >= size) {
        this.decodeHeader(chunk, offset);
        return offset + size;
      }
    }
    // The header straddles reads: gather it in the scratch, two bytes first to learn its size.
    const scratch = (this.scratch ??= Buffer.allocUnsafe(MAX_HEADER_SIZE));
    let position = offset;
    const end = chunk.length;
    while (this.scratchLength < 2 && position < end) scratch[this.scratchLength++] = chunk[position++]!;
    if (this.scratchLength < 2) return -1;
    const size = this.checkFirstBytes(scratch[0]!, scratch[1]!);
    const take = Math.min(size - this.scratchLength, end - position);
    chunk.copy(scratch, this.scratchLength, position, position + take);
    this.scratchLength += take;
    position += take;
    if (this.scratchLength < size) return -1;
    this.scratchLength = 0;
    this.decodeHeader(scratch, 0);
    return position;
  }

  /** Checks the first two header bytes and returns the full header size they announce. */
  private checkFirstBytes(byte0: number, byte1: number): number {
    const opcode = byte0 & 0x0f;
    // RFC 6455 §5.2: RSV1-3 MUST be 0 unless an extension defining them was negotiated.
    if ((byte0 & this.forbiddenRsv) !== 0) throw new ProtocolError('reserved bits set without an extension');
    // RFC 6455 §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved; an unknown opcode fails the connection.
    if ((opcode > 0x2 && opcode < 0x8) || opcode > 0xa) throw new ProtocolError(`reserved opcode 0x${opcode.toString(16)}`);
    const length7 = byte1 & 0x7f;
    if (opcode >= 0x8) {
      // RFC 6455 §5.5: control frames MUST NOT be fragmented and carry at most 125 bytes.
      if ((byte0 & 0x80) === 0) throw new ProtocolError('fragmented control frame');
      if (length7 > MAX_CONTROL_PAYLOAD) throw new ProtocolError('control frame payload over 125 bytes');
    }
    const masked = (byte1 & 0x80) !== 0;
    // RFC 6455 §5.1: a server MUST close on an unmasked client frame; a client on a masked server frame.
    if (masked !== this.expectMasked) {
      throw new ProtocolError(this.expectMasked ? 'client frame is not masked' : 'server frame is masked');
    }
    return (length7 < 126 ? 2 : length7 === 126 ? 4 : 10) + (masked ? 4 : 0);
  }

  /** Decodes a complete, already checked header at `offset` and announces the frame. */
  private decodeHeader(source: Buffer, offset: number): void {
    const byte0 = source[offset]!;
    const length7 = source[offset + 1]! & 0x7f;
    let length: number;
    let position = offset + 2;
    if (length7 < 126) {
      length = length7;
    } else if (length7 === 126) {
      length = (source[position]! << 8) | source[position + 1]!;
      position += 2;
    } else {
      const high = source.readUInt32BE(position);
      // RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0.
      if (high >= 0x80000000) throw new ProtocolError('64-bit payload length has its most significant bit set');
      length = high * 0x100000000 + source.readUInt32BE(position + 4);
      position += 8;
    }
    // Refuse an oversized frame from its header alone, before a byte of its payload is held.
    // Control frames are at most 125 bytes (checked above) and always accepted.
    if (length > this.maxFrameSize && (byte0 & 0x08) === 0) throw new MessageTooBig(`frame of ${length} bytes exceeds the ${this.maxFrameSize}-byte limit`);
    this.masked = this.expectMasked;
    if (this.masked) this.maskKey = readMaskKey(source, position);
    this.remaining = length;
    this.payloadOffset = 0;
    this.state = READ_PAYLOAD;
    this.handler.frameStart(byte0 & 0x0f, (byte0 & 0x80) !== 0, byte0 & 0x70, length);
  }
}
