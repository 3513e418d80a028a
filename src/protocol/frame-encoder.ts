/**
 * Frame encoding (RFC 6455 §5.2). A frame is handed to a FrameSink as a header and, for payloads large
 * enough that copying would cost more than a second write, the payload itself: large payloads are never
 * concatenated with their header. Server frames are unmasked; client frames are masked with a fresh key
 * from `node:crypto` (§5.3), into a new buffer so the caller's payload is left untouched.
 */
import { randomFillSync } from 'node:crypto';
import { Opcode } from '../constants.ts';
import { mask } from './mask.ts';

/** Receives encoded frames: `payload` is null when the header buffer already holds the whole frame. */
export interface FrameSink {
  writeFrame(header: Buffer, payload: Uint8Array | null): void;
  /**
   * Optional: a frame whose payload is several buffers, in order (a received message forwarded
   * without joining it). Without this method such payloads are joined and passed to writeFrame.
   */
  writeFrameSegments?(header: Buffer, segments: readonly Uint8Array[]): void;
}

/** Payloads up to this size are copied behind their header into one buffer (one write, one syscall). */
export const COPY_THRESHOLD = 1024;

/** Random masking keys are drawn from the system CSPRNG in batches (RFC 6455 §5.3, §10.3). */
const keyPool = new Uint32Array(1024);
let keyPoolIndex = keyPool.length;

/** A fresh, unpredictable 32-bit masking key (RFC 6455 §5.3: MUST be unpredictable). */
export function randomMaskKey(): number {
  if (keyPoolIndex === keyPool.length) {
    randomFillSync(keyPool);
    keyPoolIndex = 0;
  }
  return keyPool[keyPoolIndex++]!;
}

/** Header size for a payload of `length` bytes (RFC 6455 §5.2: 7-bit, 16-bit or 64-bit length). */
export function frameHeaderSize(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 0x10000 ? 4 : 10) + (masked ? 4 : 0);
}

/**
 * Writes a frame header at the start of `target` and returns its size. RFC 6455 §5.2: the length uses
 * the minimal encoding; `rsv1` is for a negotiated extension such as permessage-deflate.
 */
export function writeFrameHeader(
  target: Uint8Array,
  opcode: number,
  fin: boolean,
  length: number,
  maskKey: number | null,
  rsv1 = false,
): number {
  target[0] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  const maskBit = maskKey === null ? 0 : 0x80;
  let offset: number;
  if (length < 126) {
    target[1] = maskBit | length;
    offset = 2;
  } else if (length < 0x10000) {
    target[1] = maskBit | 126;
    target[2] = length >>> 8;
    target[3] = length & 0xff;
    offset = 4;
  } else {
    target[1] = maskBit | 127;
    // RFC 6455 §5.2: 64-bit length, most significant bit 0. JavaScript lengths fit in 53 bits.
    const high = Math.floor(length / 0x100000000);
    const low = length >>> 0;
    target[2] = 0;
    target[3] = (high >>> 16) & 0xff;
    target[4] = (high >>> 8) & 0xff;
    target[5] = high & 0xff;
    target[6] = low >>> 24;
    target[7] = (low >>> 16) & 0xff;
    target[8] = (low >>> 8) & 0xff;
    target[9] = low & 0xff;
    offset = 10;
  }
  if (maskKey !== null) {
    target[offset] = maskKey >>> 24;
    target[offset + 1] = (maskKey >>> 16) & 0xff;
    target[offset + 2] = (maskKey >>> 8) & 0xff;
    target[offset + 3] = maskKey & 0xff;
    offset += 4;
  }
  return offset;
}

/**
 * Encodes one frame of `payload` into `sink`. `masked` is the client role. Small payloads are copied
 * behind the header; large ones are passed through (server) or masked into a new buffer (client).
 */
export function encodeFrame(
  sink: FrameSink,
  opcode: number,
  payload: Uint8Array,
  fin = true,
  masked = false,
  rsv1 = false,
): void {
  const length = payload.length;
  const key = masked ? randomMaskKey() : null;
  const headerSize = frameHeaderSize(length, masked);
  if (length <= COPY_THRESHOLD) {
    const frame = Buffer.allocUnsafe(headerSize + length);
    writeFrameHeader(frame, opcode, fin, length, key, rsv1);
    if (key === null) frame.set(payload, headerSize);
    else mask(payload, key, frame, headerSize);
    sink.writeFrame(frame, null);
    return;
  }
  const header = Buffer.allocUnsafe(headerSize);
  writeFrameHeader(header, opcode, fin, length, key, rsv1);
  if (key === null) {
    sink.writeFrame(header, payload);
  } else {
    const masked = Buffer.allocUnsafe(length);
    mask(payload, key, masked);
    sink.writeFrame(header, masked);
  }
}

/**
 * Encodes a text frame straight from a string: short strings are written behind the header without an
 * intermediate buffer. Lone surrogates become U+FFFD, as in the browser WebSocket API.
 */
export function encodeTextFrame(sink: FrameSink, text: string, fin = true, masked = false): void {
  // UTF-8 is never shorter than the UTF-16 length, so only strings of at most COPY_THRESHOLD code
  // units can fit behind the header; those are written there directly, with no intermediate buffer.
  if (!masked && text.length <= COPY_THRESHOLD) {
    const length = Buffer.byteLength(text, 'utf8');
    if (length <= COPY_THRESHOLD) {
      const headerSize = frameHeaderSize(length, false);
      const frame = Buffer.allocUnsafe(headerSize + length);
      writeFrameHeader(frame, Opcode.Text, fin, length, null);
      frame.write(text, headerSize, 'utf8');
      sink.writeFrame(frame, null);
      return;
    }
  }
  encodeFrame(sink, Opcode.Text, Buffer.from(text, 'utf8'), fin, masked);
}

/**
 * Splits a message into frames of at most `fragmentSize` payload bytes (RFC 6455 §5.4): the first frame
 * carries the opcode (and `rsv1`, for a compressed message), the rest are continuations, the last has
 * FIN set.
 */
export function encodeFragmented(
  sink: FrameSink,
  opcode: number,
  payload: Uint8Array,
  fragmentSize: number,
  masked = false,
  rsv1 = false,
): void {
  if (!(fragmentSize >= 1) || !Number.isInteger(fragmentSize)) {
    throw new RangeError('fragmentSize must be a positive integer');
  }
  if (payload.length <= fragmentSize) {
    encodeFrame(sink, opcode, payload, true, masked, rsv1);
    return;
  }
  for (let offset = 0; offset < payload.length; offset += fragmentSize) {
    const end = Math.min(offset + fragmentSize, payload.length);
    const first = offset === 0;
    // RFC 7692 §6.1: RSV1 marks a compressed message on its first frame only.
    encodeFrame(sink, first ? opcode : Opcode.Continuation, payload.subarray(offset, end), end === payload.length, masked, first && rsv1);
  }
}

/** An unmasked frame as a header and, for a payload too large to copy behind it, the payload. */
export interface EncodedFrame {
  readonly header: Buffer;
  /** The payload, or null when the header buffer holds the whole frame. */
  readonly payload: Uint8Array | null;
}

/** Encodes one final, unmasked (server-role) frame without a sink: for frames written to many sockets. */
export function encodeUnmaskedFrame(opcode: number, payload: Uint8Array, rsv1 = false): EncodedFrame {
  let frame: EncodedFrame | undefined;
  encodeFrame(
    {
      writeFrame(header, body) {
        frame = { header, payload: body };
      },
    },
    opcode,
    payload,
    true,
    false,
    rsv1,
  );
  return frame!;
}

/**
 * A message encoded once, for sending unchanged on many server connections (broadcast, or
 * `ws.send(prepared)` in a loop of your own): every connection is written the same header and payload
 * buffers, without a copy per connection. With permessage-deflate, it is also compressed at most once
 * per set of compression settings the connections agreed on. Made by `prepareMessage`.
 */
export class PreparedMessage implements EncodedFrame {
  /** The frame header (RFC 6455 §5.2), unmasked. */
  readonly header: Buffer;
  /** The payload, or null when the header buffer holds the whole frame. */
  readonly payload: Uint8Array | null;
  /** @internal Opcode.Text or Opcode.Binary. */
  readonly opcode: number;
  /** @internal The uncompressed payload. */
  readonly data: Uint8Array;
  /** @internal Compressed frames, by compression settings (see PerMessageDeflate.compressPrepared). */
  compressed: Map<number, EncodedFrame> | null = null;

  /** @internal */
  constructor(opcode: number, data: Uint8Array) {
    const frame = encodeUnmaskedFrame(opcode, data);
    this.header = frame.header;
    this.payload = frame.payload;
    this.opcode = opcode;
    // A small payload was copied behind the header: refer to that copy, not the caller's buffer.
    this.data = frame.payload ?? frame.header.subarray(frame.header.length - data.length);
  }

  /** The payload's length in bytes, uncompressed. */
  get byteLength(): number {
    return this.data.length;
  }
}

/** Encodes a server-role (unmasked) message once: a string is a text message, bytes a binary one. */
export function prepareMessage(data: string | Uint8Array): PreparedMessage {
  if (typeof data === 'string') return new PreparedMessage(Opcode.Text, Buffer.from(data, 'utf8'));
  return new PreparedMessage(Opcode.Binary, data);
}
