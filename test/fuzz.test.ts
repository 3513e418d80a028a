/**
 * A seeded, bounded fuzzer over the protocol core: valid frames with random bit
 * flips, truncations, length-field and header mutations, and plain random bytes, fed to Protocol in
 * both roles over random splits. Whatever the input:
 * - receive() never throws; failures become one close event whose error is a typed WebSocketException
 *   with code 1002, 1007 or 1009 (never 1011 / InternalError, never a TypeError or RangeError);
 * - no message larger than maxMessageSize is ever emitted, text messages are valid UTF-8, and the
 *   message assembly buffer never grows past the limit;
 * - what is written parses as frames: only pongs and at most one close frame (last), masked iff client;
 * - queuedBytes accounts exactly for the queued messages and returns to 0.
 * A wall-clock guard bounds the run; each case must also finish quickly (no pathological slowness).
 *
 * The same with permessage-deflate (RFC 7692) negotiated: data messages compressed by a peer codec
 * with random agreed parameters (context takeover or not, 8- to 15-bit windows), RSV1 now and then on
 * the wrong frame, and the same mutations, which now also corrupt compressed streams and histories.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidPayloadData, Message, MessageTooBig, ProtocolError } from '../src/index.ts';
import {
  isSendableCloseCode,
  Opcode,
  PerMessageDeflate,
  Protocol,
  resolveDeflateOptions,
  type DeflateParameters,
  type Role,
} from '../src/protocol/index.ts';
import { buildFrame, collectingSink, createRng, randomSplits, readFrames, type FrameSpec, type Rng } from './helpers/frames.ts';

const MAX_MESSAGE_SIZE = 64 * 1024;
/** Per-test wall-clock budget: the fuzzer stops generating when it is spent. */
const BUDGET_MS = 20_000;
/** A single case (a few frames) taking longer than this is a hang or a pathological slowdown. */
const CASE_LIMIT_MS = 2_000;

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function randomText(rng: Rng, maxChars: number): Buffer {
  const count = rng.int(maxChars + 1);
  let text = '';
  for (let i = 0; i < count; i++) {
    switch (rng.int(4)) {
      case 0:
        text += String.fromCodePoint(0x80 + rng.int(0x780));
        break;
      case 1: {
        const cp = 0x800 + rng.int(0xf000);
        text += String.fromCodePoint(cp >= 0xd800 && cp < 0xe000 ? cp + 0x800 : cp);
        break;
      }
      case 2:
        text += String.fromCodePoint(0x10000 + rng.int(0x100000));
        break;
      default:
        text += String.fromCharCode(0x20 + rng.int(0x5f));
    }
  }
  return Buffer.from(text, 'utf8');
}

function randomLength(rng: Rng): number {
  const roll = rng.next();
  if (roll < 0.1) return 0;
  if (roll < 0.6) return 1 + rng.int(20);
  if (roll < 0.9) return 21 + rng.int(180);
  if (roll < 0.99) return rng.pick([125, 126, 127, 200, 1000, 4000]);
  return rng.pick([65535, 65536, 70000]);
}

const maskFor = (rng: Rng, role: Role): Uint8Array | null =>
  // Now and then the wrong masking for the role (a 1002).
  (role === 'server') !== rng.chance(0.005) ? rng.bytes(4) : null;

function controlFrame(rng: Rng, role: Role): FrameSpec {
  const roll = rng.next();
  let opcode: number;
  let payload: Uint8Array;
  if (roll < 0.2) {
    opcode = Opcode.Close;
    const code = rng.chance(0.85) ? rng.pick([1000, 1001, 1003, 1008, 3000, 4999]) : rng.int(6000);
    payload = rng.chance(0.08)
      ? rng.bytes(rng.int(2))
      : Buffer.concat([Buffer.from([code >> 8, code & 0xff]), rng.chance(0.9) ? randomText(rng, 30) : rng.bytes(rng.int(10))]);
    if (payload.length > 125) payload = payload.subarray(0, 125);
  } else {
    opcode = roll < 0.7 ? Opcode.Ping : Opcode.Pong;
    payload = rng.bytes(rng.chance(0.98) ? rng.int(126) : 126 + rng.int(10));
  }
  return { opcode, fin: rng.chance(0.99), payload, maskKey: maskFor(rng, role) };
}

/** Splits `payload` at up to `parts - 1` random points (UTF-8 sequences may be cut anywhere). */
function fragments(rng: Rng, payload: Uint8Array, parts: number): Uint8Array[] {
  const cuts = Array.from({ length: parts - 1 }, () => rng.int(payload.length + 1)).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let start = 0;
  for (const cut of [...cuts, payload.length]) {
    out.push(payload.subarray(start, cut));
    start = cut;
  }
  return out;
}

/**
 * A mostly well-formed stream: messages in 1-4 fragments (text cut anywhere, even inside a UTF-8
 * sequence) with control frames between them, and now and then a frame that breaks a rule.
 */
function randomFrameSpecs(rng: Rng, role: Role, maxFrames: number, peer: PerMessageDeflate | null): FrameSpec[] {
  const specs: FrameSpec[] = [];
  while (specs.length < maxFrames) {
    const roll = rng.next();
    if (roll < 0.2) {
      specs.push(controlFrame(rng, role));
    } else if (roll < 0.23) {
      // A rule breaker: reserved opcode, RSV bits, or a continuation with nothing to continue.
      specs.push({
        opcode: rng.pick([0x3, 0x7, 0xb, 0xf, Opcode.Continuation]),
        rsv: rng.chance(0.5) ? 1 + rng.int(7) : 0,
        payload: rng.bytes(rng.int(20)),
        maskKey: maskFor(rng, role),
      });
    } else {
      const isText = rng.chance(0.55);
      let payload: Uint8Array;
      if (isText) {
        payload = rng.chance(0.93) ? randomText(rng, Math.ceil(randomLength(rng) / 2)) : rng.bytes(randomLength(rng));
      } else {
        const length = randomLength(rng);
        payload = length > 4000 ? Buffer.alloc(length, rng.int(256)) : rng.bytes(length);
      }
      // With deflate, most messages go compressed (RSV1 on the first frame), the rest as they are.
      const compressed = peer !== null && rng.chance(0.8);
      if (compressed) payload = peer.compress(payload);
      const parts = rng.chance(0.6) ? 1 : 2 + rng.int(3);
      const pieces = fragments(rng, payload, parts);
      for (const [i, piece] of pieces.entries()) {
        if (i > 0 && rng.chance(0.2)) specs.push(controlFrame(rng, role));
        // RSV1 on a continuation, or RSV1 without deflate, now and then: a 1002.
        const rsv1 = (compressed && i === 0) || rng.chance(0.005);
        specs.push({
          opcode: i === 0 ? (isText ? Opcode.Text : Opcode.Binary) : Opcode.Continuation,
          fin: i === pieces.length - 1,
          rsv: rsv1 ? 4 : 0,
          payload: piece,
          maskKey: maskFor(rng, role),
        });
      }
    }
  }
  return specs;
}

/** Applies 1-3 mutations aimed at headers and length fields, or anywhere. */
function mutate(rng: Rng, bytes: Buffer, boundaries: readonly number[]): Buffer {
  let out = Buffer.from(bytes);
  const mutations = 1 + rng.int(3);
  for (let m = 0; m < mutations && out.length > 0; m++) {
    const headerAt = Math.min(out.length - 1, rng.pick(boundaries) + rng.int(14));
    switch (rng.int(8)) {
      case 0: // bit flip in a header
        out[headerAt] = out[headerAt]! ^ (1 << rng.int(8));
        break;
      case 1: // bit flip anywhere
        {
          const at = rng.int(out.length);
          out[at] = out[at]! ^ (1 << rng.int(8));
        }
        break;
      case 2: // truncate
        out = out.subarray(0, rng.int(out.length));
        break;
      case 3: {
        // 7-bit length field rewritten (mask bit kept)
        const at = Math.min(out.length - 1, rng.pick(boundaries) + 1);
        out[at] = (out[at]! & 0x80) | rng.int(128);
        break;
      }
      case 4: {
        // extended length bytes overwritten with random values
        const start = rng.pick(boundaries) + 2;
        for (let i = start; i < Math.min(out.length, start + 8); i++) if (rng.chance(0.5)) out[i] = rng.int(256);
        break;
      }
      case 5: {
        // random bytes inserted
        const at = rng.int(out.length + 1);
        out = Buffer.concat([out.subarray(0, at), rng.bytes(1 + rng.int(16)), out.subarray(at)]);
        break;
      }
      case 6: {
        // a range deleted
        const at = rng.int(out.length);
        out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + rng.int(8)))]);
        break;
      }
      default: {
        // first byte of a frame replaced (opcode, FIN, RSV)
        const at = Math.min(out.length - 1, rng.pick(boundaries));
        out[at] = rng.int(256);
      }
    }
  }
  return out;
}

interface FuzzStats {
  cases: number;
  frames: number;
  messages: number;
  closes: Map<number, number>;
}

/** The parameters of one fuzzed deflate connection: every combination RFC 7692 §7.1 allows. */
function randomAgreement(rng: Rng): DeflateParameters {
  return {
    serverNoContextTakeover: rng.chance(0.5),
    clientNoContextTakeover: rng.chance(0.5),
    serverMaxWindowBits: 8 + rng.int(8),
    clientMaxWindowBits: 8 + rng.int(8),
  };
}

const DEFLATE_SETTINGS = resolveDeflateOptions({ threshold: 0 })!;

/** Both ends of a deflate connection: the protocol's codec, and the peer's that compresses its input. */
interface DeflatePair {
  readonly local: PerMessageDeflate;
  readonly peer: PerMessageDeflate;
}

function deflatePair(rng: Rng, role: Role): DeflatePair {
  const agreement = randomAgreement(rng);
  return {
    local: new PerMessageDeflate(agreement, DEFLATE_SETTINGS, role),
    peer: new PerMessageDeflate(agreement, DEFLATE_SETTINGS, role === 'server' ? 'client' : 'server'),
  };
}

/** Builds one case: a few frames (valid, mutated) or random bytes. Returns the bytes and a frame count. */
function generateCase(rng: Rng, role: Role, deflate: DeflatePair | null = null): { bytes: Buffer; frames: number } {
  if (rng.chance(0.1)) return { bytes: rng.bytes(rng.int(200)), frames: 1 };
  const specs = randomFrameSpecs(rng, role, 1 + rng.int(8), deflate?.peer ?? null);
  const count = specs.length;
  const parts: Buffer[] = [];
  const boundaries: number[] = [];
  let offset = 0;
  for (const spec of specs) {
    const frame = buildFrame(spec);
    boundaries.push(offset);
    offset += frame.length;
    parts.push(frame);
  }
  const bytes = Buffer.concat(parts);
  return { bytes: rng.chance(0.5) ? mutate(rng, bytes, boundaries) : bytes, frames: count };
}

/** Feeds one case and checks every invariant. */
function runCase(rng: Rng, role: Role, bytes: Buffer, stats: FuzzStats, deflate: PerMessageDeflate | null = null): void {
  const sink = collectingSink();
  const protocol = new Protocol(sink, { role, maxMessageSize: MAX_MESSAGE_SIZE, deflate });
  const label = () => `${role} case ${stats.cases}: ${bytes.subarray(0, 64).toString('hex')}${bytes.length > 64 ? '…' : ''} (${bytes.length} bytes)`;
  const pullEarly = rng.chance(0.3);
  const events: Array<Message | { type: 'close'; code: number; reason: string; error: Error | null }> = [];
  for (const chunk of randomSplits(bytes, rng, 10)) {
    try {
      protocol.receive(chunk);
    } catch (error) {
      assert.fail(`receive() threw ${String(error)} for ${label()}`);
    }
    assert.ok(protocol.queuedBytes >= 0);
    if (pullEarly && events.at(-1)?.type !== 'close') {
      let event;
      while ((event = protocol.nextEvent()) !== undefined) {
        events.push(event);
        if (event.type === 'close') break;
      }
    }
  }
  const transportEnded = rng.chance(0.5);
  if (transportEnded) protocol.receiveEnd();

  // queuedBytes accounts for what is queued: at least the payload bytes, at most a small overhead more.
  const queued = protocol.queuedBytes;
  let queuedPayload = 0;
  let queuedCount = 0;
  for (;;) {
    const last = events.at(-1);
    if (last !== undefined && last.type === 'close') break;
    const event = protocol.nextEvent();
    if (event === undefined) break;
    events.push(event);
    if (event instanceof Message) {
      queuedPayload += event.data.length;
      queuedCount++;
    }
  }
  assert.ok(queued >= queuedPayload && queued <= queuedPayload + 1024 * queuedCount, `queuedBytes ${queued} for ${queuedPayload} bytes in ${queuedCount} messages`);
  assert.equal(protocol.queuedBytes, 0, 'queuedBytes returns to 0 once every message is pulled');

  let closeEvent: { code: number; error: Error | null } | null = null;
  for (const [i, event] of events.entries()) {
    if (event instanceof Message) {
      stats.messages++;
      assert.ok(event.data.length <= MAX_MESSAGE_SIZE, `message of ${event.data.length} bytes for ${label()}`);
      // An inflated message may sit in a zlib output chunk up to twice its size (plus 4 KiB) before
      // it is worth copying out (deflate-codec.ts `compact`).
      const bufferLimit = deflate === null ? Math.max(MAX_MESSAGE_SIZE, bytes.length, 8192) : 2 * MAX_MESSAGE_SIZE + 4096;
      assert.ok(event.data.buffer.byteLength <= bufferLimit, `assembly buffer of ${event.data.buffer.byteLength} bytes for ${label()}`);
      if (event.type === 'text') {
        assert.doesNotThrow(() => utf8Decoder.decode(event.data), `invalid UTF-8 text message for ${label()}`);
      }
      continue;
    }
    assert.equal(event.type, 'close');
    assert.equal(i, events.length - 1, 'the close event is the last');
    closeEvent = event;
    stats.closes.set(event.code, (stats.closes.get(event.code) ?? 0) + 1);
    if (event.error !== null) {
      const error = event.error;
      assert.ok(
        error instanceof ProtocolError || error instanceof InvalidPayloadData || error instanceof MessageTooBig,
        `unexpected ${error.name}: ${error.message} for ${label()}`,
      );
      assert.equal(event.code, error.code);
      assert.ok([1002, 1007, 1009].includes(event.code), `code ${event.code} for ${label()}`);
    } else {
      assert.ok(isSendableCloseCode(event.code) || event.code === 1005 || event.code === 1006, `peer close code ${event.code}`);
    }
  }
  if (transportEnded) {
    assert.ok(closeEvent !== null, `no close event after receiveEnd() for ${label()}`);
    assert.equal(protocol.state, 'closed');
  } else if (closeEvent === null) {
    // The stream simply stopped (mid-frame, perhaps): still open, nothing written but pongs.
    assert.equal(protocol.state, 'open', `state ${protocol.state} without a close event for ${label()}`);
  }

  // What was written is well-formed: pongs, then at most one close frame, masked iff client role.
  const written = readFrames(sink.bytes());
  for (const [i, frame] of written.entries()) {
    assert.equal(frame.masked, role === 'client');
    assert.equal(frame.fin, true);
    assert.equal(frame.rsv, 0);
    assert.ok(frame.payload.length <= 125);
    if (frame.opcode === Opcode.Close) {
      assert.equal(i, written.length - 1, 'nothing is written after a close frame');
      assert.ok(closeEvent !== null);
      const code = frame.payload.readUInt16BE(0);
      if (closeEvent.error !== null) assert.equal(code, closeEvent.code);
    } else {
      assert.equal(frame.opcode, Opcode.Pong, `wrote opcode ${frame.opcode} for ${label()}`);
    }
  }
  assert.ok(sink.endCalls <= 1, 'endTransport at most once');
}

function fuzz(seed: number, role: Role, minFrames: number, withDeflate = false): FuzzStats {
  const rng = createRng(seed);
  const stats: FuzzStats = { cases: 0, frames: 0, messages: 0, closes: new Map() };
  const started = performance.now();
  while (stats.frames < minFrames) {
    if (performance.now() - started > BUDGET_MS) break;
    const pair = withDeflate ? deflatePair(rng, role) : null;
    const { bytes, frames } = generateCase(rng, role, pair);
    const caseStart = performance.now();
    runCase(rng, role, bytes, stats, pair?.local ?? null);
    const elapsed = performance.now() - caseStart;
    assert.ok(elapsed < CASE_LIMIT_MS, `case ${stats.cases} took ${elapsed.toFixed(0)} ms`);
    stats.cases++;
    stats.frames += frames;
  }
  return stats;
}

describe('fuzzing the protocol core (seeded, bounded)', () => {
  for (const [role, seed] of [['server', 0x5eed01], ['client', 0x5eed02]] as const) {
    test(`${role} role: 100,000 random and mutated frames over random splits`, (t) => {
      const memoryBefore = process.memoryUsage();
      const started = performance.now();
      const stats = fuzz(seed, role, 100_000);
      const elapsed = performance.now() - started;
      t.diagnostic(
        `${stats.cases} cases, ${stats.frames} frames, ${stats.messages} messages in ${elapsed.toFixed(0)} ms; closes with 1002/1006/1007/1009: ${[1002, 1006, 1007, 1009].map((code) => stats.closes.get(code) ?? 0).join('/')}`,
      );
      if (elapsed > BUDGET_MS) {
        // The wall-clock guard stopped the run: a very slow machine; still require a meaningful amount.
        assert.ok(stats.frames >= 15_000, `only ${stats.frames} frames within the time budget`);
      } else {
        assert.ok(stats.frames >= 100_000);
      }
      // The corpus reaches every failure kind and plenty of successes.
      for (const code of [1002, 1007, 1009]) assert.ok((stats.closes.get(code) ?? 0) > 20, `too few ${code} closes`);
      assert.ok(stats.messages > 5_000, `only ${stats.messages} messages`);
      // Memory sanity: nothing retained grows without bound across tens of thousands of connections.
      const memoryAfter = process.memoryUsage();
      const growth = memoryAfter.heapUsed + memoryAfter.arrayBuffers - (memoryBefore.heapUsed + memoryBefore.arrayBuffers);
      assert.ok(growth < 256 * 1024 * 1024, `memory grew by ${(growth / 1048576).toFixed(0)} MiB`);
    });
  }

  for (const [role, seed] of [['server', 0x5eed03], ['client', 0x5eed04]] as const) {
    test(`${role} role with permessage-deflate: 30,000 compressed, mutated and misflagged frames`, (t) => {
      const started = performance.now();
      const stats = fuzz(seed, role, 30_000, true);
      const elapsed = performance.now() - started;
      t.diagnostic(
        `${stats.cases} cases, ${stats.frames} frames, ${stats.messages} messages in ${elapsed.toFixed(0)} ms; closes with 1002/1006/1007/1009: ${[1002, 1006, 1007, 1009].map((code) => stats.closes.get(code) ?? 0).join('/')}`,
      );
      assert.ok(stats.frames >= (elapsed > BUDGET_MS ? 5_000 : 30_000), `only ${stats.frames} frames`);
      // Corrupt compressed data (1007) and misplaced RSV1 (1002) are both reached, and so are messages.
      for (const code of [1002, 1007]) assert.ok((stats.closes.get(code) ?? 0) > 20, `too few ${code} closes`);
      assert.ok(stats.messages > 2_000, `only ${stats.messages} messages`);
    });
  }

  test('pure random byte streams (2,000 streams of up to 4 KiB) in both roles', () => {
    const rng = createRng(0xbad);
    const stats: FuzzStats = { cases: 0, frames: 0, messages: 0, closes: new Map() };
    for (let i = 0; i < 2000; i++) {
      const role: Role = rng.chance(0.5) ? 'server' : 'client';
      runCase(rng, role, rng.bytes(rng.int(4096)), stats);
      stats.cases++;
    }
    assert.ok((stats.closes.get(1002) ?? 0) > 1000);
  });
});

describe('resource bounds under hostile input', () => {
  test('a 1 GiB message announced in 60 KiB fragments is refused at the second fragment header (1009)', () => {
    const sink = collectingSink();
    const protocol = new Protocol(sink, { maxMessageSize: MAX_MESSAGE_SIZE });
    const fragment = Buffer.alloc(60 * 1024, 0x61);
    protocol.receive(buildFrame({ opcode: Opcode.Binary, fin: false, payload: fragment }));
    assert.equal(protocol.hasEvent, false);
    // Only the next header: 6 + 2 bytes of a 16-bit-length continuation.
    const next = buildFrame({ opcode: Opcode.Continuation, fin: false, payload: fragment });
    protocol.receive(Buffer.from(next.subarray(0, 8)));
    const event = protocol.nextEvent();
    assert.ok(event !== undefined && event.type === 'close');
    assert.equal(event.code, 1009);
  });

  test('frames announcing 2^62 bytes are refused from the header (1009) in both roles', () => {
    for (const role of ['server', 'client'] as const) {
      const sink = collectingSink();
      const protocol = new Protocol(sink, { role, maxMessageSize: MAX_MESSAGE_SIZE });
      protocol.receive(
        buildFrame({
          opcode: Opcode.Binary,
          declaredLength: 2n ** 62n,
          lengthEncoding: 64,
          maskKey: role === 'server' ? Uint8Array.of(1, 2, 3, 4) : null,
        }),
      );
      const event = protocol.nextEvent();
      assert.ok(event !== undefined && event.type === 'close');
      assert.equal(event.code, 1009, role);
    }
  });
});
