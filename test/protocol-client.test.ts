/**
 * The sans-I/O core in the client role (RFC 6455 §5.1, §5.3, §7.1.1, §7.1.7), byte by byte on what is
 * written to the sink: every frame masked with a fresh key, masked server frames refused, and the TCP
 * close order the core decides by role: after a completed closing handshake a client waits for the
 * server to close TCP (`awaitTransportEnd`), a server closes it at once (`endTransport`), and either
 * role failing the connection closes it at once.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode, Opcode, Protocol, type CloseEvent, type ProtocolEvent } from '../src/protocol/index.ts';
import {
  buildFrame,
  collectingSink,
  drainEvents,
  readFrames,
  serverFrame,
  summarize,
  type CollectingSink,
  type ReadFrame,
} from './helpers/frames.ts';

function client(options: { maxMessageSize?: number } = {}): { protocol: Protocol; sink: CollectingSink } {
  const sink = collectingSink();
  return { protocol: new Protocol(sink, { role: 'client', ...options }), sink };
}

function server(): { protocol: Protocol; sink: CollectingSink } {
  const sink = collectingSink();
  return { protocol: new Protocol(sink, { role: 'server' }), sink };
}

function expectClose(event: ProtocolEvent | undefined): CloseEvent {
  assert.ok(event !== undefined && event.type === 'close', `expected a close event, got ${JSON.stringify(event && summarize(event))}`);
  return event;
}

/** A close frame as a server sends it (unmasked). */
function serverClose(code?: number, reason = ''): Buffer {
  if (code === undefined) return serverFrame({ opcode: Opcode.Close });
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code);
  payload.write(reason, 2);
  return serverFrame({ opcode: Opcode.Close, payload });
}

/** A close frame as a client sends it (masked with the RFC §5.7 key). */
function clientClose(code: number): Buffer {
  return buildFrame({ opcode: Opcode.Close, payload: Buffer.from([code >> 8, code & 0xff]) });
}

/** The frames written, each checked to be masked (RFC 6455 §5.1: a client MUST mask every frame). */
function maskedFrames(sink: CollectingSink): ReadFrame[] {
  const frames = readFrames(sink.bytes());
  for (const frame of frames) {
    assert.equal(frame.masked, true, `opcode ${frame.opcode} frame is not masked`);
    assert.equal(frame.maskKey?.length, 4);
  }
  return frames;
}

/** Asserts the only frame written is a masked close frame with `code`. */
function expectMaskedCloseWritten(sink: CollectingSink, code: number): void {
  const frames = maskedFrames(sink);
  assert.equal(frames.length, 1, `expected one frame written, got ${frames.length}`);
  assert.equal(frames[0]!.opcode, Opcode.Close);
  assert.equal(frames[0]!.payload.readUInt16BE(0), code);
}

describe('client role — masking (RFC 6455 §5.1, §5.3)', () => {
  test('every kind of frame the client writes has the mask bit set, and unmasking gives the payload', () => {
    const { protocol, sink } = client();
    const large = Buffer.alloc(70_000);
    for (let i = 0; i < large.length; i++) large[i] = (i * 7) & 0xff;
    protocol.sendText('Hello');
    protocol.sendText('');
    protocol.sendBinary(Buffer.from([0, 1, 2, 3, 4, 5, 6]));
    protocol.sendBinary(Buffer.alloc(300, 0xab));
    protocol.sendBinary(large);
    protocol.sendBinary(Buffer.from('fragmented'), 4);
    protocol.sendFrame(Opcode.Text, Buffer.from('str'), false);
    protocol.sendFrame(Opcode.Continuation, Buffer.from('eam'), true);
    protocol.ping(Buffer.from('ping'));
    protocol.pong(Buffer.from('pong'));
    protocol.receive(serverFrame({ opcode: Opcode.Ping, payload: 'auto' }));
    protocol.close(CloseCode.NormalClosure, 'bye');
    const frames = maskedFrames(sink);
    assert.deepEqual(
      frames.map((f) => [f.opcode, f.fin, f.payload.toString('hex')]),
      [
        [Opcode.Text, true, Buffer.from('Hello').toString('hex')],
        [Opcode.Text, true, ''],
        [Opcode.Binary, true, '00010203040506'],
        [Opcode.Binary, true, Buffer.alloc(300, 0xab).toString('hex')],
        [Opcode.Binary, true, large.toString('hex')],
        [Opcode.Binary, false, Buffer.from('frag').toString('hex')],
        [Opcode.Continuation, false, Buffer.from('ment').toString('hex')],
        [Opcode.Continuation, true, Buffer.from('ed').toString('hex')],
        [Opcode.Text, false, Buffer.from('str').toString('hex')],
        [Opcode.Continuation, true, Buffer.from('eam').toString('hex')],
        [Opcode.Ping, true, Buffer.from('ping').toString('hex')],
        [Opcode.Pong, true, Buffer.from('pong').toString('hex')],
        [Opcode.Pong, true, Buffer.from('auto').toString('hex')],
        [Opcode.Close, true, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('bye')]).toString('hex')],
      ],
    );
  });

  test('the payload on the wire is the masked one, and the caller\'s buffer is left untouched', () => {
    const { protocol, sink } = client();
    const payload = Buffer.alloc(2048, 0x5a);
    const copy = Buffer.from(payload);
    protocol.sendBinary(payload);
    assert.deepEqual(payload, copy, 'the caller\'s payload is not masked in place');
    const wire = sink.bytes();
    const [frame] = maskedFrames(sink);
    const onWire = wire.subarray(frame!.headerSize);
    assert.equal(onWire.length, payload.length);
    const key = frame!.maskKey!;
    for (let i = 0; i < onWire.length; i++) assert.equal(onWire[i], payload[i]! ^ key[i % 4]!, `byte ${i}`);
  });

  test('masking keys are fresh: 1,000 frames, no key repeated in a row and (but for chance) all distinct', () => {
    const { protocol, sink } = client();
    for (let i = 0; i < 1000; i++) protocol.sendBinary(Buffer.from([i & 0xff, i >> 8]));
    const keys = maskedFrames(sink).map((frame) => frame.maskKey!.readUInt32BE(0));
    assert.equal(keys.length, 1000);
    for (let i = 1; i < keys.length; i++) assert.notEqual(keys[i], keys[i - 1], `frame ${i} reuses the previous key`);
    // Random 32-bit keys collide by chance (the birthday bound for 1,000 keys is about 1 in 8,600):
    // one coincidence is tolerated so that this test is not flaky; a key reused by the encoder (a stuck
    // pool, a key per connection, a counter reset) would show as hundreds of repeats.
    assert.ok(new Set(keys).size >= 999, `only ${new Set(keys).size} distinct keys in 1,000 frames`);
  });

  test('two connections draw different keys (no key per connection)', () => {
    const a = client();
    const b = client();
    for (let i = 0; i < 50; i++) {
      a.protocol.sendText('x');
      b.protocol.sendText('x');
    }
    const keysA = maskedFrames(a.sink).map((f) => f.maskKey!.readUInt32BE(0));
    const keysB = new Set(maskedFrames(b.sink).map((f) => f.maskKey!.readUInt32BE(0)));
    assert.ok(keysA.filter((key) => keysB.has(key)).length <= 1, 'the two connections share keys');
  });

  test('unmasked server frames are read (RFC §5.7 "Hello")', () => {
    const { protocol, sink } = client();
    protocol.receive(Buffer.from([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
    const event = protocol.nextEvent();
    assert.ok(event !== undefined && event.type !== 'close');
    assert.equal(event.text, 'Hello');
    assert.equal(sink.frames.length, 0);
  });
});

describe('client role — a masked server frame (RFC 6455 §5.1: the client MUST close, MAY use 1002)', () => {
  for (const [name, frame] of [
    ['text', buildFrame({ opcode: Opcode.Text, payload: 'masked' })],
    ['binary', buildFrame({ opcode: Opcode.Binary, payload: Buffer.from([1, 2, 3]) })],
    ['ping', buildFrame({ opcode: Opcode.Ping, payload: 'p' })],
    ['close', buildFrame({ opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe8]) })],
  ] as const) {
    test(`a masked ${name} frame: close event 1002 (local), a masked close 1002 written, then awaitTransportEnd`, () => {
      const { protocol, sink } = client();
      protocol.receive(frame);
      const event = expectClose(protocol.nextEvent());
      assert.deepEqual([event.code, event.initiator, event.error?.name], [1002, 'local', 'ProtocolError']);
      expectMaskedCloseWritten(sink, 1002);
      assert.deepEqual(sink.log, ['frame', 'await']);
      assert.equal(sink.endCalls, 0);
      assert.equal(protocol.state, 'closed');
    });
  }

  test('a masked frame after valid ones: the valid message first, then the close', () => {
    const { protocol, sink } = client();
    protocol.receive(Buffer.concat([serverFrame({ opcode: Opcode.Text, payload: 'ok' }), buildFrame({ opcode: Opcode.Text, payload: 'bad' })]));
    const [message, close] = drainEvents(protocol);
    assert.deepEqual(summarize(message!), { type: 'text', data: Buffer.from('ok').toString('hex') });
    const event = expectClose(close);
    assert.deepEqual([event.code, event.initiator, event.error?.name], [1002, 'local', 'ProtocolError']);
    expectMaskedCloseWritten(sink, 1002);
    assert.equal(sink.awaitCalls, 1);
    assert.equal(sink.endCalls, 0);
  });
});

describe('client role — the closing handshake: the server closes TCP first (RFC 6455 §7.1.1)', () => {
  test('the client starts: its masked close, then the server\'s close: awaitTransportEnd, never endTransport', () => {
    const { protocol, sink } = client();
    protocol.close(CloseCode.NormalClosure, 'done');
    assert.equal(protocol.state, 'closing');
    expectMaskedCloseWritten(sink, 1000);
    assert.deepEqual(sink.log, ['frame']);
    protocol.receive(serverClose(1000));
    assert.deepEqual(sink.log, ['frame', 'await']);
    assert.equal(protocol.state, 'closed');
    const event = expectClose(protocol.nextEvent());
    assert.deepEqual([event.code, event.reason, event.initiator, event.error], [1000, 'done', 'local', null]);
    // Pulling again, and the TCP close that follows, change nothing.
    expectClose(protocol.nextEvent());
    protocol.receiveEnd();
    assert.equal(sink.endCalls, 0);
    assert.equal(sink.awaitCalls, 1);
    assert.equal(sink.frames.length, 1);
  });

  test('the server\'s close answering ours with another code: still awaitTransportEnd; messages before it are delivered', () => {
    const { protocol, sink } = client();
    protocol.close(CloseCode.GoingAway);
    protocol.receive(Buffer.concat([serverFrame({ opcode: Opcode.Text, payload: 'late' }), serverClose(1001)]));
    assert.deepEqual(sink.log, ['frame', 'await']);
    const events = drainEvents(protocol).map(summarize);
    assert.deepEqual(events, [
      { type: 'text', data: Buffer.from('late').toString('hex') },
      { type: 'close', code: 1001, reason: '', initiator: 'local', error: null },
    ]);
    assert.equal(sink.endCalls, 0);
  });

  test('the server starts: the client echoes its code in a masked close when the event is pulled, then awaitTransportEnd', () => {
    const { protocol, sink } = client();
    protocol.receive(serverClose(1001, 'restart'));
    assert.equal(sink.frames.length, 0, 'answered when pulled, not before');
    const event = expectClose(protocol.nextEvent());
    assert.deepEqual([event.code, event.reason, event.initiator], [1001, 'restart', 'peer']);
    expectMaskedCloseWritten(sink, 1001);
    assert.deepEqual(sink.log, ['frame', 'await']);
    assert.equal(protocol.state, 'closed');
    protocol.receiveEnd();
    assert.equal(sink.endCalls, 0);
  });

  test('a server close without a code is answered with 1000, then awaitTransportEnd', () => {
    const { protocol, sink } = client();
    protocol.receive(serverClose());
    assert.equal(expectClose(protocol.nextEvent()).code, 1005);
    expectMaskedCloseWritten(sink, 1000);
    assert.deepEqual(sink.log, ['frame', 'await']);
  });

  test('a server close answered by answerClose() (a client not reading) also waits for the server', () => {
    const { protocol, sink } = client();
    protocol.receive(serverClose(4000));
    protocol.answerClose();
    expectMaskedCloseWritten(sink, 4000);
    assert.deepEqual(sink.log, ['frame', 'await']);
  });

  test('a server close answered by the application\'s close() with its own code also waits for the server', () => {
    const { protocol, sink } = client();
    protocol.receive(serverClose(1000));
    protocol.close(4001, 'mine');
    expectMaskedCloseWritten(sink, 4001);
    assert.deepEqual(sink.log, ['frame', 'await']);
    assert.equal(protocol.state, 'closed');
  });
});

describe('client role — failing the connection: the close frame, then the client still waits for the server to close TCP (RFC 6455 §7.1.7, §7.1.1)', () => {
  const violations: ReadonlyArray<readonly [string, Buffer, number]> = [
    ['a reserved data opcode (0x3)', serverFrame({ opcode: 0x3, payload: 'x' }), 1002],
    ['a reserved control opcode (0xB)', serverFrame({ opcode: 0xb }), 1002],
    ['RSV1 without an extension', serverFrame({ opcode: Opcode.Text, rsv: 4, payload: 'x' }), 1002],
    ['a continuation without a message', serverFrame({ opcode: Opcode.Continuation, payload: 'x' }), 1002],
    ['a fragmented ping', serverFrame({ opcode: Opcode.Ping, fin: false }), 1002],
    ['a close frame with code 1005', serverClose(1005), 1002],
    ['a close frame with a 1-byte payload', serverFrame({ opcode: Opcode.Close, payload: Buffer.from([3]) }), 1002],
    ['invalid UTF-8 in a text frame', serverFrame({ opcode: Opcode.Text, payload: Buffer.from([0xce, 0xba, 0xff]) }), 1007],
    ['a frame over maxMessageSize (from its header)', serverFrame({ opcode: Opcode.Binary, declaredLength: 2048 }), 1009],
  ];

  for (const [name, frame, code] of violations) {
    test(`${name}: a masked close ${code}, then awaitTransportEnd, never endTransport`, () => {
      const { protocol, sink } = client({ maxMessageSize: 1024 });
      protocol.receive(frame);
      const event = expectClose(protocol.nextEvent());
      assert.deepEqual([event.code, event.initiator], [code, 'local']);
      assert.ok(event.error !== null);
      expectMaskedCloseWritten(sink, code);
      assert.deepEqual(sink.log, ['frame', 'await']);
    });
  }

  test('a violation after the client sent its close (no close frame to answer): awaitTransportEnd at once', () => {
    const { protocol, sink } = client();
    protocol.close(CloseCode.NormalClosure);
    protocol.receive(serverFrame({ opcode: 0x3 }));
    const event = expectClose(protocol.nextEvent());
    assert.equal(event.code, 1002);
    assert.deepEqual(sink.log, ['frame', 'await']);
    assert.equal(sink.frames.length, 1, 'one close frame only');
    assert.equal(sink.endCalls, 0);
  });

  test('close() while a violation is pending sends the violation\'s code, then awaitTransportEnd', () => {
    const { protocol, sink } = client();
    protocol.receive(serverFrame({ opcode: 0xb }));
    protocol.close(CloseCode.NormalClosure, 'bye');
    expectMaskedCloseWritten(sink, 1002);
    assert.deepEqual(sink.log, ['frame', 'await']);
  });

  test('the end of the transport without any close: 1006, nothing written, neither call', () => {
    const { protocol, sink } = client();
    protocol.receiveEnd();
    const event = expectClose(protocol.nextEvent());
    assert.deepEqual([event.code, event.initiator], [1006, 'transport']);
    assert.deepEqual(sink.log, []);
  });
});

describe('server role — unchanged: the server closes TCP first (RFC 6455 §7.1.1)', () => {
  test('the server starts, the client answers: endTransport, never awaitTransportEnd', () => {
    const { protocol, sink } = server();
    protocol.close(CloseCode.NormalClosure);
    protocol.receive(clientClose(1000));
    assert.deepEqual(sink.log, ['frame', 'end']);
    assert.equal(expectClose(protocol.nextEvent()).initiator, 'local');
    assert.equal(sink.awaitCalls, 0);
    const [frame] = readFrames(sink.bytes());
    assert.equal(frame!.masked, false, 'a server frame is not masked');
  });

  test('the client starts: the server\'s reply when pulled, then endTransport', () => {
    const { protocol, sink } = server();
    protocol.receive(clientClose(1000));
    assert.equal(expectClose(protocol.nextEvent()).initiator, 'peer');
    assert.deepEqual(sink.log, ['frame', 'end']);
    assert.equal(sink.awaitCalls, 0);
  });

  test('the client starts, the server answers with close(): endTransport', () => {
    const { protocol, sink } = server();
    protocol.receive(clientClose(1000));
    protocol.close(4000);
    assert.deepEqual(sink.log, ['frame', 'end']);
    assert.equal(sink.awaitCalls, 0);
  });

  test('a violation by the client: close 1002 and endTransport', () => {
    const { protocol, sink } = server();
    protocol.receive(buildFrame({ opcode: 0x3 }));
    assert.equal(expectClose(protocol.nextEvent()).code, 1002);
    assert.deepEqual(sink.log, ['frame', 'end']);
    assert.equal(sink.awaitCalls, 0);
  });
});
