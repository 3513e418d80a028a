/**
 * Test helpers for the protocol core: a byte-level frame builder and reader written independently of
 * src/protocol/frame-encoder.ts (so the encoder is checked against them, not against itself), a seeded
 * PRNG, chunk splitters and a ProtocolSink that records what the protocol writes.
 *
 * The FrameParser and Protocol take ownership of the chunks they are fed and unmask them in place:
 * `splitAt` and `randomSplits` always return fresh copies, and a test that feeds the same bytes twice
 * must copy them (`Buffer.from(x)`).
 */
import type { Message } from '../../src/protocol/message.ts';
import type { ProtocolEvent, ProtocolSink } from '../../src/protocol/protocol.ts';

/** The masking key of RFC 6455 §5.7's examples. */
export const RFC_MASK_KEY: Readonly<Uint8Array> = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

export interface FrameSpec {
  /** Default true. */
  fin?: boolean;
  /** RSV bits as a 3-bit number: 4 = RSV1, 2 = RSV2, 1 = RSV3. Default 0. */
  rsv?: number;
  opcode: number;
  /** Bytes, or a string encoded as UTF-8. Default empty. */
  payload?: Uint8Array | string;
  /** 4-byte masking key; default RFC_MASK_KEY (a client frame); null for an unmasked (server) frame. */
  maskKey?: Uint8Array | null;
  /** Length field size: 'minimal' (default) or a forced 7-, 16- or 64-bit encoding. */
  lengthEncoding?: 'minimal' | 7 | 16 | 64;
  /** Puts this value in the length field instead of the payload's length (to lie about the size). */
  declaredLength?: number | bigint;
}

/** Builds one frame byte by byte (RFC 6455 §5.2), masking the payload with a byte loop (§5.3). */
export function buildFrame(spec: FrameSpec): Buffer {
  const payload = toBytes(spec.payload ?? new Uint8Array(0));
  const fin = spec.fin ?? true;
  const rsv = spec.rsv ?? 0;
  const maskKey = spec.maskKey === undefined ? RFC_MASK_KEY : spec.maskKey;
  const length = BigInt(spec.declaredLength ?? payload.length);
  let encoding = spec.lengthEncoding ?? 'minimal';
  if (encoding === 'minimal') encoding = length < 126n ? 7 : length < 0x10000n ? 16 : 64;
  const bytes: number[] = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | (spec.opcode & 0x0f)];
  const maskBit = maskKey === null ? 0 : 0x80;
  if (encoding === 7) {
    if (length > 127n) throw new RangeError('a 7-bit length field holds at most 127');
    bytes.push(maskBit | Number(length));
  } else if (encoding === 16) {
    if (length > 0xffffn) throw new RangeError('a 16-bit length field holds at most 65535');
    bytes.push(maskBit | 126, Number(length >> 8n), Number(length & 0xffn));
  } else {
    bytes.push(maskBit | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) bytes.push(Number((length >> shift) & 0xffn));
  }
  if (maskKey !== null) {
    if (maskKey.length !== 4) throw new RangeError('a masking key is 4 bytes');
    bytes.push(...maskKey);
  }
  const frame = Buffer.alloc(bytes.length + payload.length);
  frame.set(bytes, 0);
  for (let i = 0; i < payload.length; i++) {
    frame[bytes.length + i] = maskKey === null ? payload[i]! : payload[i]! ^ maskKey[i % 4]!;
  }
  return frame;
}

/** An unmasked frame, as a server sends it. */
export function serverFrame(spec: Omit<FrameSpec, 'maskKey'>): Buffer {
  return buildFrame({ ...spec, maskKey: null });
}

function toBytes(payload: Uint8Array | string): Uint8Array {
  return typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
}

/** A frame read back from bytes by `readFrames`, its payload unmasked. */
export interface ReadFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  maskKey: Buffer | null;
  /** Header size in bytes, as found on the wire. */
  headerSize: number;
  payload: Buffer;
}

/** Reads a sequence of complete frames (RFC 6455 §5.2), independently of the library's parser. */
export function readFrames(bytes: Uint8Array): ReadFrame[] {
  const frames: ReadFrame[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < 2) throw new Error(`truncated frame header at ${offset}`);
    const byte0 = bytes[offset]!;
    const byte1 = bytes[offset + 1]!;
    let position = offset + 2;
    let length = byte1 & 0x7f;
    if (length === 126) {
      length = bytes[position]! * 256 + bytes[position + 1]!;
      position += 2;
    } else if (length === 127) {
      length = 0;
      for (let i = 0; i < 8; i++) length = length * 256 + bytes[position + i]!;
      position += 8;
    }
    const masked = (byte1 & 0x80) !== 0;
    let maskKey: Buffer | null = null;
    if (masked) {
      maskKey = Buffer.from(bytes.subarray(position, position + 4));
      position += 4;
    }
    if (position + length > bytes.length) throw new Error(`truncated frame payload at ${offset}`);
    const payload = Buffer.from(bytes.subarray(position, position + length));
    if (maskKey !== null) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ maskKey[i % 4]!;
    frames.push({
      fin: (byte0 & 0x80) !== 0,
      rsv: (byte0 >> 4) & 7,
      opcode: byte0 & 0x0f,
      masked,
      maskKey,
      headerSize: position - offset,
      payload,
    });
    offset = position + length;
  }
  return frames;
}

// ---------------------------------------------------------------- seeded randomness

/** mulberry32: a small, fast, seeded 32-bit PRNG. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, max). */
  int(max: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** `length` random bytes. */
  bytes(length: number): Buffer;
  pick<T>(items: readonly T[]): T;
}

export function createRng(seed: number): Rng {
  const next = mulberry32(seed);
  const int = (max: number): number => Math.floor(next() * max);
  return {
    next,
    int,
    chance: (p) => next() < p,
    bytes(length) {
      const out = Buffer.allocUnsafe(length);
      for (let i = 0; i < length; i++) out[i] = int(256);
      return out;
    },
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new RangeError('pick from an empty list');
      return items[int(items.length)]!;
    },
  };
}

// ---------------------------------------------------------------- splitting a stream into reads

/** Cuts `buffer` at the given offsets (sorted, deduplicated, clamped); each piece is a fresh copy. */
export function splitAt(buffer: Uint8Array, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.filter((cut) => cut > 0 && cut < buffer.length))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let start = 0;
  for (const point of [...points, buffer.length]) {
    pieces.push(Buffer.from(buffer.subarray(start, point)));
    start = point;
  }
  return pieces;
}

/** Cuts `buffer` at random points (between 0 and `maxCuts` of them); each piece is a fresh copy. */
export function randomSplits(buffer: Uint8Array, rng: Rng, maxCuts = 8): Buffer[] {
  const count = buffer.length < 2 ? 0 : rng.int(Math.min(maxCuts, buffer.length - 1) + 1);
  const cuts: number[] = [];
  for (let i = 0; i < count; i++) cuts.push(1 + rng.int(buffer.length - 1));
  return splitAt(buffer, cuts);
}

/** Every byte as its own chunk (fresh copies). */
export function byteByByte(buffer: Uint8Array): Buffer[] {
  const pieces: Buffer[] = [];
  for (let i = 0; i < buffer.length; i++) pieces.push(Buffer.of(buffer[i]!));
  return pieces;
}

// ---------------------------------------------------------------- recording the protocol's output

export interface CollectingSink extends ProtocolSink {
  /** Each frame written, header and payload joined. */
  readonly frames: Buffer[];
  /** Each writeFrame call as given (payload null when the header holds the whole frame). */
  readonly writes: Array<{ header: Buffer; payload: Uint8Array | null }>;
  /** How many times endTransport was called. */
  readonly endCalls: number;
  /** How many times awaitTransportEnd was called (a client after the closing handshake). */
  readonly awaitCalls: number;
  /** Everything written, in order, as one buffer. */
  bytes(): Buffer;
  /** Order of output calls: 'frame', 'end' (endTransport) or 'await' (awaitTransportEnd). */
  readonly log: Array<'frame' | 'end' | 'await'>;
}

/** A ProtocolSink that records frames (copied at write time) and the calls that end the transport. */
export function collectingSink(): CollectingSink {
  const frames: Buffer[] = [];
  const writes: Array<{ header: Buffer; payload: Uint8Array | null }> = [];
  const log: Array<'frame' | 'end' | 'await'> = [];
  let endCalls = 0;
  let awaitCalls = 0;
  return {
    frames,
    writes,
    log,
    get endCalls() {
      return endCalls;
    },
    get awaitCalls() {
      return awaitCalls;
    },
    writeFrame(header: Buffer, payload: Uint8Array | null): void {
      writes.push({ header, payload });
      frames.push(payload === null ? Buffer.from(header) : Buffer.concat([header, payload]));
      log.push('frame');
    },
    endTransport(): void {
      endCalls++;
      log.push('end');
    },
    awaitTransportEnd(): void {
      awaitCalls++;
      log.push('await');
    },
    bytes(): Buffer {
      return Buffer.concat(frames);
    },
  };
}

// ---------------------------------------------------------------- comparing events

export type EventSummary =
  | { type: 'text' | 'binary'; data: string }
  | { type: 'close'; code: number; reason: string; initiator: string; error: string | null };

/** A plain, comparable description of an event (payload as hex, error as its class name). */
export function summarize(event: ProtocolEvent): EventSummary {
  if (event.type === 'close') {
    return { type: 'close', code: event.code, reason: event.reason, initiator: event.initiator, error: event.error?.name ?? null };
  }
  const message = event as Message;
  return { type: message.type, data: message.data.toString('hex') };
}

/** Pulls events until the close event (included) or until there are none. */
export function drainEvents(protocol: { nextEvent(): ProtocolEvent | undefined }): ProtocolEvent[] {
  const events: ProtocolEvent[] = [];
  for (;;) {
    const event = protocol.nextEvent();
    if (event === undefined) return events;
    events.push(event);
    if (event.type === 'close') return events;
  }
}
