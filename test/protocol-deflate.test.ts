/**
 * The protocol with permessage-deflate (RFC 7692 §6): RSV1 only on the first frame of a data message,
 * compressed messages inflated (and their size limited, their text validated) before delivery, and
 * compressed sends above the threshold, checked on the bytes written to the sink.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidPayloadData, Message, MessageTooBig, ProtocolError } from '../src/index.ts';
import {
  Opcode,
  PerMessageDeflate,
  prepareMessage,
  Protocol,
  resolveDeflateOptions,
  type CloseEvent,
  type DeflateParameters,
  type ProtocolEvent,
  type Role,
} from '../src/protocol/index.ts';
import { compress, inflate } from './helpers/deflate.ts';
import {
  buildFrame,
  byteByByte,
  collectingSink,
  drainEvents,
  readFrames,
  serverFrame,
  summarize,
  type CollectingSink,
  type ReadFrame,
} from './helpers/frames.ts';

const HELLO = Buffer.from('f248cdc9c90700', 'hex');
const RSV1 = 4;

interface SetupOptions {
  role?: Role;
  deflate?: boolean;
  threshold?: number;
  agreed?: Partial<DeflateParameters>;
  maxMessageSize?: number;
}

function setup(options: SetupOptions = {}): { protocol: Protocol; sink: CollectingSink } {
  const role = options.role ?? 'server';
  const sink = collectingSink();
  let deflate: PerMessageDeflate | null = null;
  if (options.deflate ?? true) {
    const settings = resolveDeflateOptions({ threshold: options.threshold ?? 16 })!;
    const agreed: DeflateParameters = {
      serverNoContextTakeover: true,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 15,
      ...options.agreed,
    };
    deflate = new PerMessageDeflate(agreed, settings, role);
  }
  const protocolOptions = options.maxMessageSize === undefined ? { role, deflate } : { role, deflate, maxMessageSize: options.maxMessageSize };
  return { protocol: new Protocol(sink, protocolOptions), sink };
}

function expectMessage(event: ProtocolEvent | undefined): Message {
  assert.ok(event instanceof Message, `expected a message, got ${JSON.stringify(event && summarize(event))}`);
  return event;
}

/** The protocol failed with `code`: the close event says so, and exactly one close frame 88 xx <code> was written. */
function expectFailed(protocol: Protocol, sink: CollectingSink, code: number, errorClass: new (...args: never[]) => Error): CloseEvent {
  const events = drainEvents(protocol);
  const event = events.at(-1);
  assert.ok(event !== undefined && event.type === 'close', `expected a close event, got ${JSON.stringify(events.map(summarize))}`);
  assert.equal(event.code, code);
  assert.equal(event.initiator, 'local');
  assert.ok(event.error instanceof errorClass, `expected ${errorClass.name}, got ${String(event.error)}`);
  const closes = sink.frames.filter((frame) => frame[0] === 0x88);
  assert.equal(closes.length, 1);
  assert.equal(closes[0]!.readUInt16BE(2), code);
  return event;
}

/** Every frame written, read back. */
function written(sink: CollectingSink): ReadFrame[] {
  return readFrames(sink.bytes());
}

const text = (payload: string | Uint8Array, fin = true, rsv = 0): Buffer => buildFrame({ opcode: Opcode.Text, payload, fin, rsv });
const binary = (payload: string | Uint8Array, fin = true, rsv = 0): Buffer => buildFrame({ opcode: Opcode.Binary, payload, fin, rsv });
const cont = (payload: string | Uint8Array, fin = true, rsv = 0): Buffer => buildFrame({ opcode: Opcode.Continuation, payload, fin, rsv });

describe('Protocol + permessage-deflate — receiving (RFC 7692 §6.1, §6.2)', () => {
  test('a masked RSV1 text frame holding the RFC’s compressed "Hello" is the message "Hello"', () => {
    const { protocol, sink } = setup();
    // c1 87 <RFC 6455 §5.7 mask> <f2 48 cd c9 c9 07 00 masked>
    const frame = Buffer.from('c18737fa213dc5b2ecf4fefd21', 'hex');
    assert.deepEqual(frame, text(HELLO, true, RSV1));
    protocol.receive(frame);
    const message = expectMessage(protocol.nextEvent());
    assert.equal(message.type, 'text');
    assert.equal(message.text, 'Hello');
    assert.equal(protocol.nextEvent(), undefined);
    assert.equal(sink.frames.length, 0);
  });

  test('a compressed binary message, and an uncompressed one (RSV1 clear) on the same connection', () => {
    const { protocol } = setup();
    const data = Buffer.from([0, 1, 2, 3, 255, 254, 0, 1, 2, 3]);
    protocol.receive(Buffer.concat([binary(compress(data), true, RSV1), text('plain'), binary(Buffer.from([9]))]));
    assert.deepEqual(drainEvents(protocol).map(summarize), [
      { type: 'binary', data: data.toString('hex') },
      { type: 'text', data: Buffer.from('plain').toString('hex') },
      { type: 'binary', data: '09' },
    ]);
  });

  test('a compressed message fragmented (RSV1 on the first frame only) is assembled, with a ping between fragments', () => {
    const payload = compress('Hello, fragmented and compressed world');
    const stream = Buffer.concat([
      text(payload.subarray(0, 3), false, RSV1),
      cont('', false),
      buildFrame({ opcode: Opcode.Ping, payload: 'p' }),
      cont(payload.subarray(3, 10), false),
      cont(payload.subarray(10)),
    ]);
    const { protocol, sink } = setup();
    for (const chunk of byteByByte(stream)) protocol.receive(chunk);
    assert.equal(expectMessage(protocol.nextEvent()).text, 'Hello, fragmented and compressed world');
    assert.deepEqual(sink.frames, [Buffer.from([0x8a, 0x01, 0x70])]);
  });

  test('an empty compressed message (00) and an empty compressed fragment', () => {
    const { protocol } = setup();
    protocol.receive(Buffer.concat([text(Buffer.from([0x00]), true, RSV1), binary(HELLO.subarray(0, 0), false, RSV1), cont(HELLO)]));
    assert.deepEqual(drainEvents(protocol).map(summarize), [
      { type: 'text', data: '' },
      { type: 'binary', data: Buffer.from('Hello').toString('hex') },
    ]);
  });

  test('with client context takeover, the second message may refer to the first (f2 00 11 00 00)', () => {
    const { protocol } = setup({ agreed: { clientNoContextTakeover: false } });
    protocol.receive(Buffer.concat([text(HELLO, true, RSV1), text(Buffer.from('f200110000', 'hex'), true, RSV1)]));
    assert.deepEqual(drainEvents(protocol).map((event) => (event as Message).text), ['Hello', 'Hello']);
  });

  test('with client_no_context_takeover, the same second message has nothing to refer to: 1007', () => {
    const { protocol, sink } = setup({ agreed: { clientNoContextTakeover: true } });
    protocol.receive(Buffer.concat([text(HELLO, true, RSV1), text(Buffer.from('f200110000', 'hex'), true, RSV1)]));
    assert.equal(expectMessage(protocol.nextEvent()).text, 'Hello');
    expectFailed(protocol, sink, 1007, InvalidPayloadData);
  });

  test('RSV1 on a continuation frame is 1002', () => {
    const { protocol, sink } = setup();
    protocol.receive(Buffer.concat([text(HELLO.subarray(0, 3), false, RSV1), cont(HELLO.subarray(3), true, RSV1)]));
    expectFailed(protocol, sink, 1002, ProtocolError);
  });

  test('RSV1 on a continuation of an uncompressed message is 1002', () => {
    const { protocol, sink } = setup();
    protocol.receive(Buffer.concat([text('Hel', false), cont('lo', true, RSV1)]));
    expectFailed(protocol, sink, 1002, ProtocolError);
  });

  for (const [name, opcode, payload] of [
    ['ping', Opcode.Ping, 'p'],
    ['pong', Opcode.Pong, 'p'],
    ['close', Opcode.Close, Buffer.from([0x03, 0xe8])],
  ] as const) {
    test(`RSV1 on a ${name} frame is 1002 (control frames are never compressed); only the close frame is written`, () => {
      const { protocol, sink } = setup();
      protocol.receive(buildFrame({ opcode, payload, rsv: RSV1 }));
      expectFailed(protocol, sink, 1002, ProtocolError);
      assert.equal(sink.frames.length, 1, 'only the close frame');
    });
  }

  test('RSV1 without a negotiated deflate is 1002', () => {
    for (const frame of [text(HELLO, true, RSV1), binary(HELLO, true, RSV1)]) {
      const { protocol, sink } = setup({ deflate: false });
      protocol.receive(frame);
      expectFailed(protocol, sink, 1002, ProtocolError);
    }
  });

  test('RSV2 and RSV3 stay forbidden with permessage-deflate (it defines RSV1 only)', () => {
    for (const rsv of [2, 1, RSV1 | 2]) {
      const { protocol, sink } = setup();
      protocol.receive(text(HELLO, true, rsv));
      expectFailed(protocol, sink, 1002, ProtocolError);
    }
  });

  test('invalid UTF-8 after inflation is 1007; the same bytes as a binary message are fine', () => {
    const bad = compress(Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62]));
    const { protocol, sink } = setup();
    protocol.receive(text(bad, true, RSV1));
    expectFailed(protocol, sink, 1007, InvalidPayloadData);
    const { protocol: other } = setup();
    other.receive(binary(bad, true, RSV1));
    assert.equal(expectMessage(other.nextEvent()).data.toString('hex'), '61eda08062');
  });

  test('a compressed text message whose inflated bytes end inside a UTF-8 sequence is 1007', () => {
    const { protocol, sink } = setup();
    protocol.receive(text(compress(Buffer.from([0x61, 0xe2, 0x82])), true, RSV1));
    expectFailed(protocol, sink, 1007, InvalidPayloadData);
  });

  test('a compressed text message need not be valid UTF-8 before inflation (only after)', () => {
    const message = 'é€😀 '.repeat(20);
    const payload = compress(message);
    assert.throws(() => new TextDecoder('utf-8', { fatal: true }).decode(payload), 'the compressed bytes are not UTF-8');
    const { protocol } = setup();
    protocol.receive(Buffer.concat([text(payload.subarray(0, 5), false, RSV1), cont(payload.subarray(5))]));
    assert.equal(expectMessage(protocol.nextEvent()).text, message);
  });

  test('garbage in a compressed message is 1007', () => {
    const { protocol, sink } = setup();
    protocol.receive(binary(Buffer.from([0xff, 0xff, 0xff]), true, RSV1));
    expectFailed(protocol, sink, 1007, InvalidPayloadData);
  });

  test('a compressed message inflating beyond maxMessageSize is 1009; exactly maxMessageSize passes', () => {
    const exact = compress(Buffer.alloc(1000, 0x61));
    const over = compress(Buffer.alloc(1001, 0x61));
    assert.ok(over.length < 20, 'tiny on the wire');
    const { protocol: fits } = setup({ maxMessageSize: 1000 });
    fits.receive(text(exact, true, RSV1));
    assert.equal(expectMessage(fits.nextEvent()).byteLength, 1000);
    const { protocol, sink } = setup({ maxMessageSize: 1000 });
    protocol.receive(text(over, true, RSV1));
    expectFailed(protocol, sink, 1009, MessageTooBig);
  });

  test('a compressed message is allowed an eighth (+64 bytes) over maxMessageSize on the wire, for data deflate cannot shrink; more is 1009 from its header', () => {
    // 10 + ceil(10 / 8) + 64 = 76 compressed bytes at most.
    const accepted = setup({ maxMessageSize: 10 });
    accepted.protocol.receive(Buffer.from(binary(Buffer.alloc(76), true, RSV1).subarray(0, 8)));
    assert.equal(accepted.protocol.closeEvent, null);
    const { protocol, sink } = setup({ maxMessageSize: 10 });
    protocol.receive(Buffer.from(binary(Buffer.alloc(77), true, RSV1).subarray(0, 8)));
    expectFailed(protocol, sink, 1009, MessageTooBig);
  });

  test('an uncompressed message on a deflate connection keeps the exact limit', () => {
    const { protocol, sink } = setup({ maxMessageSize: 10 });
    protocol.receive(Buffer.from(binary(Buffer.alloc(11), true, 0).subarray(0, 6)));
    expectFailed(protocol, sink, 1009, MessageTooBig);
  });
});

describe('Protocol + permessage-deflate — sending (RFC 7692 §6.1, §7.2.1)', () => {
  const long = 'a message long enough to be worth compressing, '.repeat(4);

  test('sendText at or above the threshold writes one RSV1 text frame that inflates to the text', () => {
    const { protocol, sink } = setup({ threshold: 16 });
    protocol.sendText(long);
    protocol.sendText('sixteen bytes!!!');
    const frames = written(sink);
    assert.equal(frames.length, 2);
    for (const [frame, expected] of [[frames[0]!, long], [frames[1]!, 'sixteen bytes!!!']] as const) {
      assert.deepEqual({ fin: frame.fin, rsv: frame.rsv, opcode: frame.opcode, masked: frame.masked }, { fin: true, rsv: RSV1, opcode: Opcode.Text, masked: false });
      assert.equal(inflate(frame.payload).toString(), expected);
    }
    assert.equal(sink.frames[0]![0], 0xc1);
    assert.ok(frames[0]!.payload.length < Buffer.byteLength(long));
  });

  test('sendText below the threshold writes a plain text frame (81 ...), counting UTF-8 bytes, not characters', () => {
    const { protocol, sink } = setup({ threshold: 16 });
    protocol.sendText('fifteen bytes!!');
    protocol.sendText('€€€€€');
    protocol.sendText('€€€€€€');
    assert.deepEqual(sink.frames[0], Buffer.concat([Buffer.from([0x81, 15]), Buffer.from('fifteen bytes!!')]));
    assert.deepEqual(sink.frames[1], Buffer.concat([Buffer.from([0x81, 15]), Buffer.from('€€€€€')]));
    const [, , sixEuros] = written(sink);
    assert.equal(sixEuros!.rsv, RSV1, '18 UTF-8 bytes reach the threshold');
    assert.equal(inflate(sixEuros!.payload).toString(), '€€€€€€');
  });

  test('sendBinary above the threshold: one RSV1 binary frame; below: plain', () => {
    const { protocol, sink } = setup({ threshold: 16 });
    const data = Buffer.alloc(3000, 0x5a);
    protocol.sendBinary(data);
    protocol.sendBinary(Buffer.from([1, 2, 3]));
    const [big, small] = written(sink);
    assert.equal(sink.frames[0]![0], 0xc2);
    assert.deepEqual(inflate(big!.payload), data);
    assert.deepEqual(sink.frames[1], Buffer.from([0x82, 0x03, 1, 2, 3]));
    assert.equal(small!.rsv, 0);
  });

  test('sendBinary with fragmentSize: RSV1 on the first frame only, continuations plain, the joined payload inflates to the data', () => {
    const { protocol, sink } = setup({ threshold: 0 });
    const data = Buffer.from(Array.from({ length: 4000 }, (_, i) => (i * 7) % 251));
    protocol.sendBinary(data, 100);
    const frames = written(sink);
    assert.ok(frames.length > 2);
    assert.deepEqual(
      frames.map((frame) => [frame.opcode, frame.rsv, frame.fin]),
      frames.map((_, i) => [i === 0 ? Opcode.Binary : Opcode.Continuation, i === 0 ? RSV1 : 0, i === frames.length - 1]),
    );
    assert.equal(sink.frames[0]![0], 0x42);
    assert.deepEqual(inflate(Buffer.concat(frames.map((frame) => frame.payload))), data);
  });

  test('sendMessage above the threshold compresses a received message and keeps its type', () => {
    const { protocol: receiver } = setup({ deflate: false });
    receiver.receive(Buffer.concat([text(long.slice(0, 50), false), cont(long.slice(50))]));
    const message = expectMessage(receiver.nextEvent());
    const { protocol, sink } = setup({ threshold: 16 });
    protocol.sendMessage(message);
    const [frame] = written(sink);
    assert.deepEqual([frame!.opcode, frame!.rsv, frame!.fin], [Opcode.Text, RSV1, true]);
    assert.equal(inflate(frame!.payload).toString(), long);
  });

  test('sendPrepared above the threshold writes the compressed frame; below, the prepared frame as is', () => {
    const { protocol, sink } = setup({ threshold: 16 });
    const big = prepareMessage(long);
    const small = prepareMessage('tiny');
    protocol.sendPrepared(big);
    protocol.sendPrepared(small);
    const [compressedFrame, plainFrame] = written(sink);
    assert.deepEqual([compressedFrame!.opcode, compressedFrame!.rsv], [Opcode.Text, RSV1]);
    assert.equal(inflate(compressedFrame!.payload).toString(), long);
    assert.deepEqual(sink.writes[1]!.header, small.header);
    assert.deepEqual(sink.frames[1], Buffer.from([0x81, 0x04, ...Buffer.from('tiny')]));
    assert.equal(plainFrame!.rsv, 0);
  });

  test('sendFrame (a streamed message) never sets RSV1, even above the threshold', () => {
    const { protocol, sink } = setup({ threshold: 0 });
    const payload = Buffer.alloc(2000, 0x61);
    protocol.sendFrame(Opcode.Text, payload, false);
    protocol.sendFrame(Opcode.Continuation, payload, true);
    protocol.sendFrame(Opcode.Binary, payload, true);
    const frames = written(sink);
    assert.deepEqual(frames.map((frame) => [frame.opcode, frame.rsv, frame.fin]), [
      [Opcode.Text, 0, false],
      [Opcode.Continuation, 0, true],
      [Opcode.Binary, 0, true],
    ]);
    for (const frame of frames) assert.deepEqual(frame.payload, payload);
  });

  test('control frames are never compressed: ping, pong, the pong answering a ping, close', () => {
    const { protocol, sink } = setup({ threshold: 0 });
    const payload = Buffer.alloc(125, 0x61);
    protocol.ping(payload);
    protocol.pong(payload);
    protocol.receive(buildFrame({ opcode: Opcode.Ping, payload }));
    protocol.close(1000, 'a'.repeat(100));
    const head = (first: number): Buffer => Buffer.from([first, 125]);
    assert.deepEqual(sink.frames, [
      Buffer.concat([head(0x89), payload]),
      Buffer.concat([head(0x8a), payload]),
      Buffer.concat([head(0x8a), payload]),
      Buffer.concat([Buffer.from([0x88, 102, 0x03, 0xe8]), Buffer.from('a'.repeat(100))]),
    ]);
  });

  test('the client role masks compressed frames, RSV1 set', () => {
    const { protocol, sink } = setup({ role: 'client', threshold: 16 });
    protocol.sendText(long);
    const [frame] = written(sink);
    assert.deepEqual([frame!.opcode, frame!.rsv, frame!.masked], [Opcode.Text, RSV1, true]);
    assert.equal(sink.frames[0]![0], 0xc1);
    assert.equal(inflate(frame!.payload).toString(), long);
  });

  test('a client-role protocol reads the server’s unmasked compressed frames', () => {
    const { protocol } = setup({ role: 'client' });
    protocol.receive(serverFrame({ opcode: Opcode.Text, payload: HELLO, rsv: RSV1 }));
    assert.equal(expectMessage(protocol.nextEvent()).text, 'Hello');
  });

  test('server and client protocols talk compressed both ways, with context takeover, and every message arrives intact', () => {
    const agreed = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 10, clientMaxWindowBits: 9 };
    const server = setup({ role: 'server', agreed, threshold: 16 });
    const client = setup({ role: 'client', agreed, threshold: 16 });
    const messages = [long, long, 'short', long + long, '', long.toUpperCase(), long];
    for (const message of messages) {
      server.protocol.sendText(message);
      client.protocol.sendText(message);
    }
    const downSizes = written(server.sink).map((frame) => frame.payload.length);
    assert.ok(downSizes[1]! < downSizes[0]!, `takeover: the second copy is smaller (${downSizes[1]} < ${downSizes[0]})`);
    client.protocol.receive(server.sink.bytes());
    server.protocol.receive(client.sink.bytes());
    for (const side of [client.protocol, server.protocol]) {
      assert.deepEqual(
        drainEvents(side).map((event) => (event as Message).text),
        messages,
      );
    }
  });
});
