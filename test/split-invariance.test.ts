/**
 * The protocol is an FSM over a list of chunks, and any split of the byte stream
 * (whole, byte by byte, random cuts) gives the identical events and the identical bytes written.
 * The same holds for a stream ending in a violation: same close code, same preceding events.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Opcode, Protocol, type ProtocolOptions } from '../src/protocol/index.ts';
import {
  buildFrame,
  byteByByte,
  collectingSink,
  createRng,
  drainEvents,
  readFrames,
  splitAt,
  summarize,
  type EventSummary,
  type FrameSpec,
  type Rng,
} from './helpers/frames.ts';

interface Stream {
  bytes: Buffer;
  /** Offsets where each frame starts (to aim cuts at headers). */
  boundaries: number[];
}

function streamOf(specs: readonly FrameSpec[]): Stream {
  const frames = specs.map((spec, i) =>
    // Vary the masking key so that key phases differ from frame to frame.
    buildFrame({ maskKey: Uint8Array.of(i * 37 + 1, i * 11 + 2, 0xa5, i), ...spec }),
  );
  const boundaries: number[] = [];
  let offset = 0;
  for (const frame of frames) {
    boundaries.push(offset);
    offset += frame.length;
  }
  return { bytes: Buffer.concat(frames), boundaries };
}

interface Outcome {
  events: EventSummary[];
  written: string;
  endCalls: number;
}

/** Feeds the chunks; pulls events after every chunk or only at the end. */
function run(chunks: readonly Buffer[], options: ProtocolOptions, pullEachChunk: boolean): Outcome {
  const sink = collectingSink();
  const protocol = new Protocol(sink, options);
  const events: EventSummary[] = [];
  for (const chunk of chunks) {
    protocol.receive(chunk);
    if (pullEachChunk) {
      while (protocol.hasMessage) events.push(summarize(protocol.nextEvent()!));
    }
  }
  events.push(...drainEvents(protocol).map(summarize));
  return { events, written: sink.bytes().toString('hex'), endCalls: sink.endCalls };
}

/** Random cuts: some anywhere, some within the first 15 bytes of a frame (its header). */
function randomCuts(stream: Stream, rng: Rng): number[] {
  const cuts: number[] = [];
  const anywhere = rng.int(30);
  for (let i = 0; i < anywhere; i++) cuts.push(1 + rng.int(stream.bytes.length - 1));
  const nearHeaders = rng.int(stream.boundaries.length + 1);
  for (let i = 0; i < nearHeaders; i++) cuts.push(rng.pick(stream.boundaries) + rng.int(15));
  return cuts;
}

const hex = (value: string | Uint8Array): string => Buffer.from(value as Uint8Array).toString('hex');
const utf8Hex = (value: string): string => Buffer.from(value, 'utf8').toString('hex');

const kosme = Buffer.from('κόσμε 😀 €'); // multi-byte sequences to cut through
const payload125 = createRng(125).bytes(125);
const payload126 = createRng(126).bytes(126);
const payload65535 = createRng(65535).bytes(65535);
const payload65536 = createRng(65536).bytes(65536);
const emoji = '😀é'.repeat(300);

/** Frames of every kind and length class, and the events and output they must produce. */
const BODY: FrameSpec[] = [
  { opcode: Opcode.Text, payload: 'Hello' },
  { opcode: Opcode.Text, payload: 'héllo wörld € 😀' },
  { opcode: Opcode.Binary, payload: '' },
  { opcode: Opcode.Text, payload: '' },
  { opcode: Opcode.Binary, payload: payload125 },
  { opcode: Opcode.Ping, payload: 'p1' },
  { opcode: Opcode.Binary, payload: payload126 },
  { opcode: Opcode.Binary, payload: payload65535 },
  // A fragmented text message cut in the middle of UTF-8 sequences, with control frames between.
  { opcode: Opcode.Text, payload: kosme.subarray(0, 3), fin: false },
  { opcode: Opcode.Ping, payload: Buffer.alloc(125, 0x50) },
  { opcode: Opcode.Continuation, payload: kosme.subarray(3, 12), fin: false },
  { opcode: Opcode.Continuation, payload: '', fin: false },
  { opcode: Opcode.Pong, payload: 'unsolicited' },
  { opcode: Opcode.Continuation, payload: kosme.subarray(12) },
  { opcode: Opcode.Binary, payload: payload65536 },
  { opcode: Opcode.Binary, payload: payload126.subarray(0, 50), fin: false },
  { opcode: Opcode.Ping, payload: '' },
  { opcode: Opcode.Continuation, payload: payload126.subarray(50) },
  { opcode: Opcode.Text, payload: emoji },
];

const BODY_EVENTS: EventSummary[] = [
  { type: 'text', data: utf8Hex('Hello') },
  { type: 'text', data: utf8Hex('héllo wörld € 😀') },
  { type: 'binary', data: '' },
  { type: 'text', data: '' },
  { type: 'binary', data: hex(payload125) },
  { type: 'binary', data: hex(payload126) },
  { type: 'binary', data: hex(payload65535) },
  { type: 'text', data: hex(kosme) },
  { type: 'binary', data: hex(payload65536) },
  { type: 'binary', data: hex(payload126) },
  { type: 'text', data: utf8Hex(emoji) },
];

const BODY_PONGS = ['8a027031', '8a7d' + '50'.repeat(125), '8a00'];

const closeWith = (code: number, reason = ''): FrameSpec => ({
  opcode: Opcode.Close,
  payload: Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]),
});

interface Scenario {
  name: string;
  stream: Stream;
  options: ProtocolOptions;
  events: EventSummary[];
  /** The close frame this endpoint writes, as hex. */
  closeReply: (reason: string) => string;
}

function closeReplyHex(code: number, reason: string): string {
  const payload = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]);
  return hex(Buffer.concat([Buffer.from([0x88, payload.length]), payload]));
}

const invalidUtf8Fragment = Buffer.alloc(3000, 0x61);
invalidUtf8Fragment.set([0xed, 0xa0, 0x80], 1500);

const SCENARIOS: Scenario[] = [
  {
    name: 'a clean stream ending in a close frame (data after it ignored)',
    stream: streamOf([...BODY, closeWith(1000, 'bye'), { opcode: Opcode.Text, payload: 'ignored' }, { opcode: Opcode.Ping, payload: 'x' }]),
    options: {},
    events: [...BODY_EVENTS, { type: 'close', code: 1000, reason: 'bye', initiator: 'peer', error: null }],
    closeReply: () => '880203e8',
  },
  {
    name: 'a stream ending in a reserved opcode (1002)',
    stream: streamOf([...BODY, { opcode: 0xb, payload: 'x' }, { opcode: Opcode.Text, payload: 'ignored' }]),
    options: {},
    events: [...BODY_EVENTS, { type: 'close', code: 1002, reason: 'reserved opcode 0xb', initiator: 'local', error: 'ProtocolError' }],
    closeReply: (reason) => closeReplyHex(1002, reason),
  },
  {
    name: 'a stream ending in invalid UTF-8 inside a non-final fragment (1007)',
    stream: streamOf([
      ...BODY,
      { opcode: Opcode.Text, payload: invalidUtf8Fragment, fin: false },
      { opcode: Opcode.Continuation, payload: 'end' },
    ]),
    options: {},
    events: [...BODY_EVENTS, { type: 'close', code: 1007, reason: 'text message is not valid UTF-8', initiator: 'local', error: 'InvalidPayloadData' }],
    closeReply: (reason) => closeReplyHex(1007, reason),
  },
  {
    name: 'a stream ending in a fragmented message over maxMessageSize (1009)',
    stream: streamOf([
      ...BODY,
      { opcode: Opcode.Binary, payload: payload65536, fin: false },
      { opcode: Opcode.Continuation, payload: payload65536 },
    ]),
    options: { maxMessageSize: 100_000 },
    events: [...BODY_EVENTS, { type: 'close', code: 1009, reason: 'message exceeds the 100000-byte limit', initiator: 'local', error: 'MessageTooBig' }],
    closeReply: (reason) => closeReplyHex(1009, reason),
  },
  {
    name: 'a stream ending in a close frame with an invalid code (1002)',
    stream: streamOf([...BODY, closeWith(1005)]),
    options: {},
    events: [...BODY_EVENTS, { type: 'close', code: 1002, reason: 'invalid close code 1005', initiator: 'local', error: 'ProtocolError' }],
    closeReply: (reason) => closeReplyHex(1002, reason),
  },
];

describe('split invariance of the protocol', () => {
  for (const scenario of SCENARIOS) {
    describe(scenario.name, () => {
      const reference = run([Buffer.from(scenario.stream.bytes)], scenario.options, false);

      test('fed whole: the expected events, pongs in order, then the close frame', () => {
        assert.deepEqual(reference.events, scenario.events);
        const close = scenario.events.at(-1)!;
        assert.equal(close.type, 'close');
        assert.equal(reference.written, BODY_PONGS.join('') + scenario.closeReply(close.type === 'close' ? close.reason : ''));
        assert.equal(reference.endCalls, 1);
        // What was written parses as frames: three pongs and one close.
        assert.deepEqual(
          readFrames(Buffer.from(reference.written, 'hex')).map((f) => f.opcode),
          [Opcode.Pong, Opcode.Pong, Opcode.Pong, Opcode.Close],
        );
      });

      test('fed byte by byte: identical events and bytes written', () => {
        assert.deepEqual(run(byteByByte(scenario.stream.bytes), scenario.options, false), reference);
      });

      test('cut at every point of every header (one cut at a time)', () => {
        for (const boundary of scenario.stream.boundaries) {
          for (let cut = boundary; cut < boundary + 15 && cut < scenario.stream.bytes.length; cut++) {
            if (cut === 0) continue;
            const outcome = run(splitAt(scenario.stream.bytes, [cut]), scenario.options, cut % 2 === 0);
            assert.deepEqual(outcome, reference, `cut at ${cut}`);
          }
        }
      });

      test('200 seeded random cut sets: identical events and bytes written', () => {
        const rng = createRng(0xc0ffee + scenario.name.length);
        for (let round = 0; round < 200; round++) {
          const cuts = randomCuts(scenario.stream, rng);
          const outcome = run(splitAt(scenario.stream.bytes, cuts), scenario.options, round % 2 === 1);
          if (outcome.written !== reference.written || outcome.endCalls !== reference.endCalls) {
            assert.fail(`round ${round}: output differs for cuts ${[...cuts].sort((a, b) => a - b).join(',')}`);
          }
          assert.deepEqual(outcome.events, reference.events, `round ${round}`);
        }
      });
    });
  }
});
