/**
 * The permessage-deflate transform of one connection (RFC 7692 §6–§7.2): compresses messages before
 * they are framed and decompresses received ones before their text is validated.
 *
 * Memory is the point of the design. Every call runs one synchronous zlib pass on a context made for
 * it and freed at once, so no zlib context (hundreds of KiB at default settings) is held between
 * messages. Context takeover (§7.1.1) is kept instead as the LZ77 history itself: the last
 * 2^window-bits bytes of the messages that went through, handed to zlib as a preset dictionary, which
 * for raw deflate is exactly the sliding window (`inflateSetDictionary`/`deflateSetDictionary`). A
 * connection thus costs nothing while idle without takeover, and at most 2^bits bytes (32 KiB at 15
 * bits) per direction with it.
 *
 * Inflating stops as soon as the output passes the size limit (zlib's `maxOutputLength`, checked after
 * every output chunk): a small message that would inflate to gigabytes fails with 1009 having
 * allocated at most the limit and one chunk.
 */
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { kMaxLength } from 'node:buffer';
import { InvalidPayloadData, MessageTooBig } from '../errors.ts';
import { encodeUnmaskedFrame, type EncodedFrame, type PreparedMessage } from './frame-encoder.ts';
import type { Role } from './frame-parser.ts';
import type { DeflateParameters, DeflateSettings } from './permessage-deflate.ts';

/** RFC 7692 §7.2.1/§7.2.2: the tail of a sync flush, stripped by the sender and put back by the receiver. */
const FLUSH_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** Output chunks of an inflate: at least this large... */
const MIN_INFLATE_CHUNK = 1024;
/** ...and at most this large (a chunk is allocated whole, so it bounds the overshoot past the limit). */
const MAX_INFLATE_CHUNK = 256 * 1024;
/** Compressed output chunks: deflate output exceeds its input by a few bytes per block at worst. */
const MAX_DEFLATE_CHUNK = 256 * 1024;

/** zlib's MIN_LOOKAHEAD: a window this much larger than the data lets every match be found. */
const MIN_LOOKAHEAD = 262;

/**
 * zlib settings sized to what one call compresses: a window no larger than the history plus the data
 * needs, and a memory level to match (zlib's default pairs memLevel 8 with a 15-bit window). zlib
 * allocates and clears its window, hash table and pending buffer for every call (about 256 KiB at
 * 15 bits and memLevel 8), so a 1 KiB message compressed with 11 bits and memLevel 4 costs a
 * sixteenth of that, and finds the same matches: a window larger than the data has nothing to point to.
 */
function sizedWindowBits(bytes: number, maxWindowBits: number): number {
  let bits = 9;
  while (bits < maxWindowBits && 2 ** bits < bytes + MIN_LOOKAHEAD) bits++;
  return bits;
}

/**
 * The LZ77 history of one direction: the last `capacity` bytes that went through the compressor (or
 * came out of the decompressor), kept in one buffer grown as needed up to the window size.
 */
class History {
  private readonly capacity: number;
  private buffer: Buffer | null = null;
  private length = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** The window as a dictionary for the next zlib call, or undefined when empty. */
  get bytes(): Buffer | undefined {
    return this.length === 0 ? undefined : this.buffer!.subarray(0, this.length);
  }

  append(data: Uint8Array): void {
    const added = data.length;
    if (added === 0) return;
    const capacity = this.capacity;
    if (added >= capacity) {
      this.reserve(capacity);
      this.buffer!.set(data.subarray(added - capacity), 0);
      this.length = capacity;
      return;
    }
    const total = this.length + added;
    if (total <= capacity) {
      this.reserve(total);
      this.buffer!.set(data, this.length);
      this.length = total;
      return;
    }
    // Full: keep the newest bytes of the old window in front of the new ones.
    this.reserve(capacity);
    const kept = capacity - added;
    this.buffer!.copyWithin(0, this.length - kept, this.length);
    this.buffer!.set(data, kept);
    this.length = capacity;
  }

  private reserve(size: number): void {
    const buffer = this.buffer;
    if (buffer !== null && buffer.length >= size) return;
    // Doubling up to the window: a connection that only ever sees short messages keeps a short history.
    const grown = Math.min(this.capacity, Math.max(size, (buffer?.length ?? 0) * 2));
    // Not from Node's shared pool: the history lives as long as the connection.
    const next = Buffer.allocUnsafeSlow(grown);
    if (buffer !== null && this.length > 0) buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }
}

/** A zlib result that is a small view of a large chunk is copied out, so it does not pin the chunk. */
function compact(view: Buffer): Buffer {
  return view.buffer.byteLength > 2 * view.length + 4096 ? Buffer.from(view) : view;
}

function isZlibTooLarge(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ERR_BUFFER_TOO_LARGE';
}

export class PerMessageDeflate {
  /** The agreed parameters (RFC 7692 §7.1). */
  readonly parameters: DeflateParameters;
  /** Messages shorter than this are sent uncompressed. */
  readonly threshold: number;
  private readonly level: number;
  private readonly memLevel: number;
  /** Window bits of received messages (the peer's compressor). */
  private readonly inflateWindowBits: number;
  /** Window bits zlib compresses with (see the constructor for 8). */
  private readonly deflateWindowBits: number;
  /** null when the peer starts every message with an empty window (no context takeover). */
  private readonly inflateHistory: History | null;
  private readonly deflateHistory: History | null;
  /** Compressed prepared messages are shared between connections without history and the same zlib settings. */
  private readonly shareable: boolean;

  constructor(parameters: DeflateParameters, settings: DeflateSettings, role: Role) {
    this.parameters = parameters;
    this.threshold = settings.threshold;
    this.level = settings.level;
    this.memLevel = settings.memLevel;
    const server = role === 'server';
    // A server reads what the client compressed and writes what the server compresses; a client the reverse.
    this.inflateWindowBits = server ? parameters.clientMaxWindowBits : parameters.serverMaxWindowBits;
    const outboundBits = server ? parameters.serverMaxWindowBits : parameters.clientMaxWindowBits;
    // zlib cannot make a raw deflate stream with an 8-bit window and uses 9 bits instead. That is still
    // within an 8-bit (256-byte) window: zlib never matches farther back than the window size less
    // MIN_LOOKAHEAD (262 bytes), 250 bytes for 9 bits. So an agreed 8 is honoured with 9.
    this.deflateWindowBits = Math.max(9, outboundBits);
    const inboundTakeover = !(server ? parameters.clientNoContextTakeover : parameters.serverNoContextTakeover);
    const outboundTakeover = !(server ? parameters.serverNoContextTakeover : parameters.clientNoContextTakeover);
    this.inflateHistory = inboundTakeover ? new History(2 ** this.inflateWindowBits) : null;
    // The dictionary must fit the peer's window (2^outboundBits), not zlib's.
    this.deflateHistory = outboundTakeover ? new History(2 ** outboundBits) : null;
    this.shareable = !outboundTakeover;
  }

  /**
   * Decompresses a received message (its frames' payloads, in order, `length` bytes in all) into at
   * most `limit` bytes. Throws MessageTooBig (1009) past the limit and InvalidPayloadData (1007) for
   * data that is not a valid deflate stream.
   */
  decompress(pieces: readonly Buffer[], length: number, limit: number): Buffer {
    // RFC 7692 §7.2.2: append 00 00 ff ff to the payload, then inflate.
    const input = Buffer.allocUnsafe(length + FLUSH_TAIL.length);
    let offset = 0;
    for (const piece of pieces) {
      piece.copy(input, offset);
      offset += piece.length;
    }
    FLUSH_TAIL.copy(input, offset);
    let output: Buffer;
    try {
      output = inflateRawSync(input, {
        windowBits: this.inflateWindowBits,
        finishFlush: constants.Z_SYNC_FLUSH,
        dictionary: this.inflateHistory?.bytes,
        maxOutputLength: Math.max(1, Math.min(limit, kMaxLength)),
        chunkSize: Math.min(MAX_INFLATE_CHUNK, Math.max(MIN_INFLATE_CHUNK, length * 4)),
      });
    } catch (error) {
      if (isZlibTooLarge(error)) throw new MessageTooBig(`message inflates beyond the ${limit}-byte limit`);
      throw new InvalidPayloadData('invalid compressed data');
    }
    if (output.length > limit) throw new MessageTooBig(`message inflates beyond the ${limit}-byte limit`);
    // RFC 7692 §7.2.2: with context takeover the next message may refer back into this one.
    this.inflateHistory?.append(output);
    return compact(output);
  }

  /**
   * Compresses a message's payload (RFC 7692 §7.2.1): raw deflate with a sync flush, its 00 00 ff ff
   * tail removed. The result goes in a frame with RSV1 set.
   */
  compress(data: Uint8Array): Buffer {
    const history = this.deflateHistory;
    const dictionary = history?.bytes;
    const windowBits = sizedWindowBits((dictionary?.length ?? 0) + data.length, this.deflateWindowBits);
    const output = deflateRawSync(data, {
      level: this.level,
      memLevel: Math.min(this.memLevel, Math.max(1, windowBits - 7)),
      windowBits,
      finishFlush: constants.Z_SYNC_FLUSH,
      dictionary,
      chunkSize: Math.min(MAX_DEFLATE_CHUNK, Math.max(64, data.length + 64)),
    });
    history?.append(data);
    // A sync flush always ends with the empty stored block whose last four bytes are removed here.
    return compact(output.subarray(0, output.length - FLUSH_TAIL.length));
  }

  /**
   * The compressed frame of a prepared (broadcast) message for this connection: compressed once and
   * kept on the message for every connection with the same settings and no history, else compressed
   * for this connection alone.
   */
  compressPrepared(prepared: PreparedMessage): EncodedFrame {
    if (!this.shareable) return encodeUnmaskedFrame(prepared.opcode, this.compress(prepared.data), true);
    // The settings compress() derives for this message: connections that agree on them share the frame.
    const key = (this.level * 16 + this.memLevel) * 16 + sizedWindowBits(prepared.data.length, this.deflateWindowBits);
    const cache = (prepared.compressed ??= new Map());
    let frame = cache.get(key);
    if (frame === undefined) {
      frame = encodeUnmaskedFrame(prepared.opcode, this.compress(prepared.data), true);
      cache.set(key, frame);
    }
    return frame;
  }
}
