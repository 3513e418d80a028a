/**
 * The sans-I/O protocol (RFC 6455 §5, §7): message assembly, control frames, fail-fast validation, the
 * closing handshake and its ordering, checked byte by byte on what is written to the sink.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CloseCode,
  InvalidPayloadData,
  Message,
  MessageTooBig,
  ProtocolError,
  WebSocketDisconnect,
} from '../src/index.ts';
import { Opcode, Protocol, type CloseEvent, type ProtocolEvent, type ProtocolOptions } from '../src/protocol/index.ts';
import {
  buildFrame,
  byteByByte,
  collectingSink,
  drainEvents,
  readFrames,
  serverFrame,
  splitAt,
  summarize,
  type CollectingSink,
} from './helpers/frames.ts';

function setup(options: ProtocolOptions = {}): { protocol: Protocol; sink: CollectingSink } {
  const sink = collectingSink();
  return { protocol: new Protocol(sink, options), sink };
}

/** Feeds the frames joined into one fresh chunk. */
function feed(protocol: Protocol, ...frames: Buffer[]): void {
  protocol.receive(Buffer.concat(frames));
}

function expectMessage(event: ProtocolEvent | undefined): Message {
  assert.ok(event instanceof Message, `expected a message, got ${JSON.stringify(event && summarize(event))}`);
  return event;
}

function expectClose(event: ProtocolEvent | undefined): CloseEvent {
  assert.ok(event !== undefined && event.type === 'close', `expected a close event, got ${JSON.stringify(event && summarize(event))}`);
  return event;
}

/** A close frame as the server writes it (unmasked): code and reason. */
function closeFrame(code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code);
  payload.write(reason, 2);
  return serverFrame({ opcode: Opcode.Close, payload });
}

/** Asserts that the one frame written is a close frame 88 xx with `code`, and returns its reason. */
function expectCloseWritten(sink: CollectingSink, code: number): string {
  assert.equal(sink.frames.length, 1, `expected one frame written, got ${sink.frames.length}`);
  const frame = sink.frames[0]!;
  assert.equal(frame[0], 0x88);
  assert.equal(frame[1], frame.length - 2);
  assert.equal(frame.readUInt16BE(2), code);
  return frame.subarray(4).toString('utf8');
}

const text = (payload: string | Uint8Array, fin = true): Buffer => buildFrame({ opcode: Opcode.Text, payload, fin });
const binary = (payload: string | Uint8Array, fin = true): Buffer => buildFrame({ opcode: Opcode.Binary, payload, fin });
const cont = (payload: string | Uint8Array, fin = true): Buffer => buildFrame({ opcode: Opcode.Continuation, payload, fin });
const ping = (payload: string | Uint8Array = ''): Buffer => buildFrame({ opcode: Opcode.Ping, payload });
const close = (payload: Uint8Array = new Uint8Array(0)): Buffer => buildFrame({ opcode: Opcode.Close, payload });
const closePayload = (code: number, reason = ''): Buffer =>
  Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]);

describe('Protocol — messages (RFC 6455 §5.6, §6.2)', () => {
  test('RFC §5.7 masked "Hello" becomes a text message "Hello"', () => {
    const { protocol, sink } = setup();
    protocol.receive(Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]));
    const message = expectMessage(protocol.nextEvent());
    assert.equal(message.type, 'text');
    assert.equal(message.text, 'Hello');
    assert.equal(message.binary, false);
    assert.equal(message.opcode, Opcode.Text);
    assert.equal(protocol.nextEvent(), undefined);
    assert.equal(sink.frames.length, 0);
  });

  test('binary, empty text, empty binary and JSON messages, in order', () => {
    const { protocol } = setup();
    feed(protocol, binary(Buffer.from([0, 1, 2, 255])), text(''), binary(''), text('{"a":[1,2]}'));
    const events = drainEvents(protocol).map(summarize);
    assert.deepEqual(events, [
      { type: 'binary', data: '000102ff' },
      { type: 'text', data: '' },
      { type: 'binary', data: '' },
      { type: 'text', data: Buffer.from('{"a":[1,2]}').toString('hex') },
    ]);
  });

  test('Message.json parses text', () => {
    const { protocol } = setup();
    feed(protocol, text('{"a":[1,2]}'));
    assert.deepEqual(expectMessage(protocol.nextEvent()).json(), { a: [1, 2] });
  });

  test('a message whose frame arrives in one read is a view of that read (no copy)', () => {
    const { protocol } = setup();
    const chunk = Buffer.concat([binary('x'), binary(Buffer.alloc(3000, 7))]);
    protocol.receive(chunk);
    protocol.nextEvent();
    const message = expectMessage(protocol.nextEvent());
    assert.equal(message.data.buffer, chunk.buffer);
    assert.equal(message.data.length, 3000);
  });

  test('a frame whose header ends one read and payload fills the next is a view of the second read', () => {
    const { protocol } = setup();
    const frame = binary(Buffer.alloc(3000, 7));
    const [header, payload] = splitAt(frame, [8]);
    protocol.receive(header!);
    protocol.receive(payload!);
    const message = expectMessage(protocol.nextEvent());
    assert.equal(message.data.buffer, payload!.buffer);
    assert.ok(message.data.every((b) => b === 7));
  });

  test('fragmented message (§5.4): "Hel" + "lo" assembled; binary in three fragments, one empty', () => {
    const { protocol } = setup();
    feed(protocol, text('Hel', false), cont('lo'));
    feed(protocol, binary('ab', false), cont('', false), cont('cd'));
    assert.deepEqual(drainEvents(protocol).map(summarize), [
      { type: 'text', data: Buffer.from('Hello').toString('hex') },
      { type: 'binary', data: Buffer.from('abcd').toString('hex') },
    ]);
  });

  test('fragments across many reads assemble into one message', () => {
    const { protocol } = setup();
    const payload = Buffer.alloc(5000);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    const stream = Buffer.concat([binary(payload.subarray(0, 1000), false), cont(payload.subarray(1000, 4000), false), cont(payload.subarray(4000))]);
    for (const chunk of splitAt(stream, [3, 500, 1006, 1007, 2500, 4010, 4020])) protocol.receive(chunk);
    const message = expectMessage(protocol.nextEvent());
    assert.ok(message.data.equals(payload));
  });

  test('ping between fragments (§5.4: control frames may be interleaved) is answered with a pong, in order', () => {
    const { protocol, sink } = setup();
    feed(protocol, text('Hel', false), ping('one'), cont('l', false), ping('two'), cont('o'));
    assert.deepEqual(sink.frames, [
      Buffer.from([0x8a, 0x03, ...Buffer.from('one')]),
      Buffer.from([0x8a, 0x03, ...Buffer.from('two')]),
    ]);
    assert.equal(expectMessage(protocol.nextEvent()).text, 'Hello');
  });

  test('a pong is written at once with the same payload (§5.5.3), before any event is pulled', () => {
    const pings: Buffer[] = [];
    const { protocol, sink } = setup();
    sink.pingReceived = (payload: Buffer) => void pings.push(payload);
    feed(protocol, ping('Hello'));
    assert.deepEqual(sink.frames, [Buffer.from([0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])]);
    assert.deepEqual(pings, [Buffer.from('Hello')]);
    assert.equal(protocol.hasEvent, false);
  });

  test('an empty ping and a 125-byte ping are answered; a ping split across reads too', () => {
    const { protocol, sink } = setup();
    const big = Buffer.alloc(125, 0x42);
    feed(protocol, ping(), ping(big));
    for (const chunk of byteByByte(ping('split'))) protocol.receive(chunk);
    assert.deepEqual(sink.frames, [
      Buffer.from([0x8a, 0x00]),
      Buffer.concat([Buffer.from([0x8a, 125]), big]),
      Buffer.from([0x8a, 0x05, ...Buffer.from('split')]),
    ]);
  });

  test('a pong is not answered; the sink receives its payload as a copy', () => {
    const pongs: Buffer[] = [];
    const { protocol, sink } = setup();
    sink.pongReceived = (payload: Buffer) => void pongs.push(payload);
    const chunk = buildFrame({ opcode: Opcode.Pong, payload: 'beat' });
    protocol.receive(chunk);
    assert.equal(sink.frames.length, 0);
    assert.deepEqual(pongs, [Buffer.from('beat')]);
    chunk.fill(0);
    assert.deepEqual(pongs, [Buffer.from('beat')]);
  });

  test('UTF-8 sequences split across fragments and across reads are accepted (§5.6)', () => {
    const message = 'a€😀é';
    const bytes = Buffer.from(message);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { protocol } = setup();
      const stream = Buffer.concat([text(bytes.subarray(0, cut), false), cont(bytes.subarray(cut))]);
      for (const chunk of byteByByte(stream)) protocol.receive(chunk);
      assert.equal(expectMessage(protocol.nextEvent()).text, message, `fragment cut at ${cut}`);
      // One frame, cut across reads inside its payload.
      const { protocol: second } = setup();
      for (const chunk of splitAt(text(bytes), [6 + cut])) second.receive(chunk);
      assert.equal(expectMessage(second.nextEvent()).text, message, `read cut at ${cut}`);
    }
  });

  test('queuedBytes rises with queued messages and falls as they are pulled', () => {
    const { protocol } = setup();
    assert.equal(protocol.queuedBytes, 0);
    feed(protocol, binary(Buffer.alloc(1000)));
    const one = protocol.queuedBytes;
    assert.ok(one >= 1000, `queuedBytes ${one}`);
    feed(protocol, binary(Buffer.alloc(3000)), text(''));
    const three = protocol.queuedBytes;
    assert.ok(three >= one + 3000, `queuedBytes ${three}`);
    assert.ok(three > one + 3000, 'an empty message still costs something');
    protocol.nextEvent();
    assert.equal(protocol.queuedBytes, three - one);
    protocol.nextEvent();
    protocol.nextEvent();
    assert.equal(protocol.queuedBytes, 0);
  });

  test('hasEvent and hasMessage', () => {
    const { protocol } = setup();
    assert.equal(protocol.hasEvent, false);
    feed(protocol, text('a'));
    assert.equal(protocol.hasEvent, true);
    assert.equal(protocol.hasMessage, true);
    protocol.nextEvent();
    assert.equal(protocol.hasEvent, false);
    feed(protocol, close());
    assert.equal(protocol.hasEvent, true);
    assert.equal(protocol.hasMessage, false);
  });
});

describe('Protocol — fragmentation violations (RFC 6455 §5.4)', () => {
  test('a continuation without a message to continue: close event 1002, then 88 xx 03 ea written when pulled', () => {
    const { protocol, sink } = setup();
    feed(protocol, cont('x'));
    assert.equal(sink.frames.length, 0, 'nothing written before the event is pulled');
    const event = expectClose(protocol.nextEvent());
    assert.equal(event.code, 1002);
    assert.ok(event.error instanceof ProtocolError);
    const reason = expectCloseWritten(sink, 1002);
    assert.equal(reason, event.reason);
    assert.equal(sink.frames[0]!.subarray(2, 4).toString('hex'), '03ea');
    assert.equal(sink.endCalls, 1);
  });

  test('a new text or binary frame inside a fragmented message is 1002', () => {
    for (const second of [text('b'), binary('b'), text('b', false)]) {
      const { protocol, sink } = setup();
      feed(protocol, text('a', false), second);
      const event = expectClose(protocol.nextEvent());
      assert.equal(event.code, 1002);
      assert.ok(event.error instanceof ProtocolError);
      expectCloseWritten(sink, 1002);
    }
  });

  test('the pending fragments are dropped: no message event precedes the close event', () => {
    const { protocol } = setup();
    feed(protocol, text('ok'), binary('a', false), binary('b'));
    assert.deepEqual(drainEvents(protocol).map((e) => e.type), ['text', 'close']);
  });
});

describe('Protocol — size limits', () => {
  test('total size across fragments over maxMessageSize is 1009 as soon as the exceeding header arrives', () => {
    const { protocol, sink } = setup({ maxMessageSize: 100 });
    feed(protocol, binary(Buffer.alloc(60), false));
    assert.equal(protocol.hasEvent, false);
    // Only the header of the next fragment (41 bytes declared: 101 in all), without its payload.
    const next = cont(Buffer.alloc(41));
    protocol.receive(Buffer.from(next.subarray(0, 6)));
    assert.equal(protocol.hasEvent, true);
    const event = expectClose(protocol.nextEvent());
    assert.equal(event.code, 1009);
    assert.ok(event.error instanceof MessageTooBig);
    expectCloseWritten(sink, 1009);
  });

  test('exactly maxMessageSize in fragments is accepted', () => {
    const { protocol } = setup({ maxMessageSize: 100 });
    feed(protocol, binary(Buffer.alloc(60), false), cont(Buffer.alloc(40)));
    assert.equal(expectMessage(protocol.nextEvent()).data.length, 100);
  });

  test('a single frame over maxMessageSize is 1009 from its header alone', () => {
    const { protocol } = setup({ maxMessageSize: 1000 });
    const frame = binary(Buffer.alloc(1001));
    protocol.receive(Buffer.from(frame.subarray(0, 8)));
    assert.equal(expectClose(protocol.nextEvent()).code, 1009);
  });

  test('maxFrameSize limits each frame while fragments may add up to maxMessageSize', () => {
    const { protocol } = setup({ maxMessageSize: 100, maxFrameSize: 10 });
    feed(protocol, binary(Buffer.alloc(10), false), cont(Buffer.alloc(10), false), cont(Buffer.alloc(10)));
    assert.equal(expectMessage(protocol.nextEvent()).data.length, 30);
    feed(protocol, binary(Buffer.alloc(11)));
    assert.equal(expectClose(protocol.nextEvent()).code, 1009);
  });

  test('control frames do not count towards the message size', () => {
    const { protocol } = setup({ maxMessageSize: 10 });
    // (A control frame is itself still a frame: with limits under 125 bytes a larger ping is refused
    // by maxFrameSize, which applies to every frame.)
    feed(protocol, binary(Buffer.alloc(5), false), ping(Buffer.alloc(10)), cont(Buffer.alloc(5)));
    assert.equal(expectMessage(protocol.nextEvent()).data.length, 10);
  });

  test('a negative maxMessageSize is a RangeError', () => {
    assert.throws(() => new Protocol(collectingSink(), { maxMessageSize: -1 }), RangeError);
  });
});

describe('Protocol — UTF-8 validation, fail fast (RFC 6455 §8.1)', () => {
  test('a single-frame text message with invalid UTF-8 is 1007', () => {
    for (const bad of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x61, 0xe2, 0x82]]) {
      const { protocol, sink } = setup();
      feed(protocol, text(Buffer.from(bad)));
      const event = expectClose(protocol.nextEvent());
      assert.equal(event.code, 1007, Buffer.from(bad).toString('hex'));
      assert.ok(event.error instanceof InvalidPayloadData);
      expectCloseWritten(sink, 1007);
    }
  });

  test('invalid UTF-8 in a NON-final fragment closes with 1007 before the message ends', () => {
    const { protocol, sink } = setup();
    feed(protocol, text(Buffer.from([0x61, 0x62, 0xed, 0xa0, 0x80, 0x63]), false));
    assert.equal(protocol.hasEvent, true, 'the close event is there before the final fragment');
    assert.equal(expectClose(protocol.nextEvent()).code, 1007);
    expectCloseWritten(sink, 1007);
    // The final fragment changes nothing.
    feed(protocol, cont('z'));
    assert.equal(sink.frames.length, 1);
  });

  test('an invalid prefix (F4 90) ending a fragment fails at once, not when the sequence would end', () => {
    const { protocol } = setup();
    feed(protocol, text(Buffer.from([0x61, 0xf4, 0x90]), false));
    assert.equal(expectClose(protocol.nextEvent()).code, 1007);
  });

  test('invalid UTF-8 in the first read of a large frame fails before the rest of the frame arrives', () => {
    const { protocol } = setup();
    const payload = Buffer.alloc(10000, 0x61);
    payload[100] = 0xff;
    const frame = text(payload);
    protocol.receive(Buffer.from(frame.subarray(0, 500)));
    assert.equal(expectClose(protocol.nextEvent()).code, 1007);
  });

  test('a text message ending inside a sequence (across fragments) is 1007 at its last fragment', () => {
    const { protocol } = setup();
    feed(protocol, text(Buffer.from([0x61, 0xe2]), false));
    assert.equal(protocol.hasEvent, false, 'E2 may still be completed');
    feed(protocol, cont(Buffer.from([0x82])));
    assert.equal(expectClose(protocol.nextEvent()).code, 1007);
  });

  test('after a truncated-but-valid-so-far fragment, an interleaved ping does not reset validation', () => {
    const { protocol } = setup();
    feed(protocol, text(Buffer.from([0xe2, 0x82]), false), ping('p'), cont(Buffer.from([0xac])));
    assert.equal(expectMessage(protocol.nextEvent()).text, '€');
  });

  test('binary messages are not validated', () => {
    const { protocol } = setup();
    feed(protocol, binary(Buffer.from([0xff, 0xfe])));
    assert.equal(expectMessage(protocol.nextEvent()).data.toString('hex'), 'fffe');
  });
});

describe('Protocol — peer close (RFC 6455 §5.5.1, §7.1)', () => {
  test('peer close 1000 with reason: event carries them; reply 88 02 03 e8 written when pulled; endTransport', () => {
    const { protocol, sink } = setup();
    feed(protocol, close(closePayload(1000, 'done')));
    assert.equal(protocol.state, 'closing');
    assert.equal(sink.frames.length, 0);
    const event = expectClose(protocol.nextEvent());
    assert.deepEqual(event, { type: 'close', code: 1000, reason: 'done', initiator: 'peer', error: null });
    assert.deepEqual(sink.frames, [Buffer.from([0x88, 0x02, 0x03, 0xe8])]);
    assert.equal(sink.endCalls, 1);
    assert.deepEqual(sink.log, ['frame', 'end'], 'the close frame is written before the transport ends');
    assert.equal(protocol.state, 'closed');
  });

  test('peer close with an empty payload: event 1005, reply is 1000', () => {
    const { protocol, sink } = setup();
    feed(protocol, close());
    assert.deepEqual(expectClose(protocol.nextEvent()), { type: 'close', code: 1005, reason: '', initiator: 'peer', error: null });
    assert.deepEqual(sink.frames, [Buffer.from([0x88, 0x02, 0x03, 0xe8])]);
  });

  test('peer close 3000 is echoed as 3000; 1001 as 1001', () => {
    for (const code of [3000, 1001, 4999]) {
      const { protocol, sink } = setup();
      feed(protocol, close(closePayload(code)));
      assert.equal(expectClose(protocol.nextEvent()).code, code);
      assert.deepEqual(sink.frames, [Buffer.from([0x88, 0x02, code >> 8, code & 0xff])]);
    }
  });

  test('the close event is returned again on every later call, answered only once', () => {
    const { protocol, sink } = setup();
    feed(protocol, close(closePayload(1000)));
    const first = protocol.nextEvent();
    assert.equal(protocol.nextEvent(), first);
    assert.equal(protocol.nextEvent(), first);
    assert.equal(sink.frames.length, 1);
    assert.equal(sink.endCalls, 1);
  });

  test('a close frame with a 1-byte payload is 1002', () => {
    const { protocol, sink } = setup();
    feed(protocol, close(Buffer.from([0x03])));
    const event = expectClose(protocol.nextEvent());
    assert.equal(event.code, 1002);
    assert.ok(event.error instanceof ProtocolError);
    expectCloseWritten(sink, 1002);
  });

  test('a close frame with a code that may not be sent (1005, 1006, 999, 2000, 5000) is 1002', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 2000, 5000]) {
      const { protocol, sink } = setup();
      feed(protocol, close(closePayload(code)));
      assert.equal(expectClose(protocol.nextEvent()).code, 1002, `code ${code}`);
      expectCloseWritten(sink, 1002);
    }
  });

  test('a close frame whose reason is invalid UTF-8 is 1007', () => {
    const { protocol, sink } = setup();
    feed(protocol, close(Buffer.from([0x03, 0xe8, 0xce, 0xba, 0xe1, 0xbd])));
    const event = expectClose(protocol.nextEvent());
    assert.equal(event.code, 1007);
    assert.ok(event.error instanceof InvalidPayloadData);
    expectCloseWritten(sink, 1007);
  });

  test('a close frame split across reads is decoded', () => {
    const { protocol } = setup();
    for (const chunk of byteByByte(close(closePayload(1001, 'going away')))) protocol.receive(chunk);
    assert.deepEqual(expectClose(protocol.nextEvent()), { type: 'close', code: 1001, reason: 'going away', initiator: 'peer', error: null });
  });

  test('data after a close frame is ignored, in the same read and in later reads', () => {
    const { protocol, sink } = setup();
    feed(protocol, text('before'), close(closePayload(1000)), text('after'), ping('p'));
    feed(protocol, text('later'), ping('q'));
    assert.equal(sink.frames.length, 0, 'pings after the close are not answered');
    assert.deepEqual(drainEvents(protocol).map(summarize), [
      { type: 'text', data: Buffer.from('before').toString('hex') },
      { type: 'close', code: 1000, reason: '', initiator: 'peer', error: null },
    ]);
  });

  test('messages received before the close are delivered before the close event', () => {
    const { protocol, sink } = setup();
    feed(protocol, text('one'), binary('two'), close(closePayload(1000)));
    assert.equal(expectMessage(protocol.nextEvent()).text, 'one');
    assert.equal(sink.frames.length, 0);
    assert.equal(expectMessage(protocol.nextEvent()).data.toString(), 'two');
    assert.equal(sink.frames.length, 0);
    expectClose(protocol.nextEvent());
    assert.equal(sink.frames.length, 1);
  });

  test('the application may answer a pending peer close itself with another code', () => {
    const { protocol, sink } = setup();
    feed(protocol, text('unread'), close(closePayload(1000)));
    protocol.close(1001);
    assert.deepEqual(sink.frames, [Buffer.from([0x88, 0x02, 0x03, 0xe9])]);
    assert.equal(sink.endCalls, 1);
    assert.equal(protocol.state, 'closed');
    // Unread messages are discarded; the close event is still reported, and not answered again.
    assert.equal(expectClose(protocol.nextEvent()).code, 1000);
    assert.equal(sink.frames.length, 1);
    assert.equal(sink.endCalls, 1);
  });

  test('sending is still possible before the peer close is pulled (§5.5.1 allows it), not after', () => {
    const { protocol, sink } = setup();
    feed(protocol, close(closePayload(1000)));
    protocol.sendText('last words');
    protocol.nextEvent();
    assert.deepEqual(readFrames(sink.bytes()).map((f) => f.opcode), [Opcode.Text, Opcode.Close]);
    assert.throws(() => protocol.sendText('too late'), WebSocketDisconnect);
  });
});

describe('Protocol — ordering of a violation after valid data', () => {
  test('a valid message then a bad frame in the same read: message first, close frame written only when the close event is pulled', () => {
    const { protocol, sink } = setup();
    feed(protocol, text('valid'), buildFrame({ opcode: 0x3, payload: 'x' }));
    assert.equal(sink.frames.length, 0);
    assert.equal(expectMessage(protocol.nextEvent()).text, 'valid');
    assert.equal(sink.frames.length, 0, 'the close frame is not written while a message is being handled');
    assert.equal(sink.endCalls, 0);
    const event = expectClose(protocol.nextEvent());
    assert.equal(event.code, 1002);
    expectCloseWritten(sink, 1002);
    assert.equal(sink.endCalls, 1);
  });

  test('the application can echo the valid message before the close frame goes out', () => {
    const { protocol, sink } = setup();
    feed(protocol, text('echo me'), text(Buffer.from([0xff])));
    protocol.sendMessage(expectMessage(protocol.nextEvent()));
    expectClose(protocol.nextEvent());
    assert.deepEqual(
      readFrames(sink.bytes()).map((f) => [f.opcode, f.payload.toString('hex')]),
      [
        [Opcode.Text, Buffer.from('echo me').toString('hex')],
        [Opcode.Close, Buffer.concat([Buffer.from([0x03, 0xef]), Buffer.from(expectClose(protocol.nextEvent()).reason)]).toString('hex')],
      ],
    );
  });

  test('a ping before the bad frame is answered at once (§5.5.2), before the close frame', () => {
    const { protocol, sink } = setup();
    feed(protocol, ping('p'), serverFrame({ opcode: Opcode.Text, payload: 'unmasked' }));
    assert.deepEqual(sink.frames, [Buffer.from([0x8a, 0x01, 0x70])]);
    assert.equal(expectClose(protocol.nextEvent()).code, 1002);
    assert.equal(sink.frames.length, 2);
    assert.equal(sink.frames[1]!.readUInt16BE(2), 1002);
  });
});

describe('Protocol — transport end and state', () => {
  test('receiveEnd() without a close frame: close event 1006, nothing written, no endTransport', () => {
    const { protocol, sink } = setup();
    feed(protocol, text('a'));
    protocol.receiveEnd();
    assert.equal(protocol.state, 'closed');
    assert.deepEqual(drainEvents(protocol).map(summarize), [
      { type: 'text', data: '61' },
      { type: 'close', code: 1006, reason: '', initiator: 'transport', error: null },
    ]);
    assert.equal(sink.frames.length, 0);
    assert.equal(sink.endCalls, 0);
    assert.throws(() => protocol.sendText('x'), (error: unknown) => error instanceof WebSocketDisconnect && error.code === 1006);
    protocol.close(1000);
    assert.equal(sink.frames.length, 0, 'close() after the transport ended writes nothing');
  });

  test('input after receiveEnd is ignored', () => {
    const { protocol } = setup();
    protocol.receiveEnd();
    feed(protocol, text('late'));
    assert.equal(expectClose(protocol.nextEvent()).code, 1006);
  });

  test('receiveEnd after a peer close keeps the peer close event', () => {
    const { protocol, sink } = setup();
    feed(protocol, close(closePayload(1000, 'bye')));
    protocol.receiveEnd();
    assert.deepEqual(expectClose(protocol.nextEvent()), { type: 'close', code: 1000, reason: 'bye', initiator: 'peer', error: null });
    assert.equal(sink.frames.length, 0, 'no reply once the transport is gone');
  });

  test('we initiate: open -> closing (close sent) -> closed (peer close received), transport ended once', () => {
    const { protocol, sink } = setup();
    assert.equal(protocol.state, 'open');
    protocol.close(1000, 'bye');
    assert.equal(protocol.state, 'closing');
    assert.deepEqual(sink.frames, [Buffer.from([0x88, 0x05, 0x03, 0xe8, ...Buffer.from('bye')])]);
    assert.equal(sink.endCalls, 0);
    feed(protocol, close(closePayload(1000)));
    assert.equal(protocol.state, 'closed');
    assert.equal(sink.endCalls, 1, 'RFC §7.1.1: the server closes TCP once the handshake is complete');
    // The close this side started: its own code and reason, whatever the peer echoed.
    assert.deepEqual(expectClose(protocol.nextEvent()), { type: 'close', code: 1000, reason: 'bye', initiator: 'local', error: null });
    assert.equal(sink.frames.length, 1, 'no second close frame');
    assert.equal(sink.endCalls, 1);
  });

  test('the peer initiates: open -> closing (close received) -> closed (reply written on pull)', () => {
    const { protocol } = setup();
    assert.equal(protocol.state, 'open');
    feed(protocol, close(closePayload(1000)));
    assert.equal(protocol.state, 'closing');
    protocol.nextEvent();
    assert.equal(protocol.state, 'closed');
  });

  test('a violation: open -> closing -> closed when the close event is pulled', () => {
    const { protocol } = setup();
    feed(protocol, cont('x'));
    assert.equal(protocol.state, 'closing');
    protocol.nextEvent();
    assert.equal(protocol.state, 'closed');
  });

  test('messages still arrive after we sent a close and before the peer answers (§7.1.1)', () => {
    const { protocol } = setup();
    protocol.close(1000);
    feed(protocol, text('in flight'), close(closePayload(1000)));
    assert.deepEqual(drainEvents(protocol).map((e) => e.type), ['text', 'close']);
  });

  test('after close() nothing can be sent (WebSocketDisconnect) and incoming pings are not answered (§5.5.1)', () => {
    const { protocol, sink } = setup();
    protocol.close(4000, 'app');
    assert.throws(() => protocol.sendText('x'), (error: unknown) => error instanceof WebSocketDisconnect && error.code === 4000);
    assert.throws(() => protocol.sendBinary(Buffer.from('x')), WebSocketDisconnect);
    assert.throws(() => protocol.sendFrame(Opcode.Text, Buffer.from('x'), true), WebSocketDisconnect);
    assert.throws(() => protocol.ping(), WebSocketDisconnect);
    assert.throws(() => protocol.pong(), WebSocketDisconnect);
    feed(protocol, ping('p'));
    assert.equal(sink.frames.length, 1, 'only our close frame');
    protocol.close(1000);
    assert.equal(sink.frames.length, 1, 'a second close() does nothing');
  });

  test('close() with an invalid code or reason throws and changes nothing', () => {
    const { protocol, sink } = setup();
    assert.throws(() => protocol.close(1005), RangeError);
    assert.throws(() => protocol.close(1000, 'x'.repeat(124)), RangeError);
    assert.throws(() => protocol.close(undefined, 'reason'), TypeError);
    assert.equal(protocol.state, 'open');
    assert.equal(sink.frames.length, 0);
    protocol.sendText('still open');
    assert.equal(sink.frames.length, 1);
  });

  test('close() without a code sends 88 00', () => {
    const { protocol, sink } = setup();
    protocol.close();
    assert.deepEqual(sink.frames, [Buffer.from([0x88, 0x00])]);
  });
});

describe('Protocol — sending', () => {
  test('sendText, sendBinary (whole and fragmented) and sendMessage write the expected frames', () => {
    const { protocol, sink } = setup();
    protocol.sendText('Hello');
    protocol.sendBinary(Buffer.from([1, 2, 3]));
    protocol.sendBinary(Buffer.from('abcde'), 2);
    protocol.sendMessage(new Message(Buffer.from('txt'), false));
    assert.deepEqual(sink.frames, [
      Buffer.from([0x81, 0x05, ...Buffer.from('Hello')]),
      Buffer.from([0x82, 0x03, 1, 2, 3]),
      Buffer.from([0x02, 0x02, ...Buffer.from('ab')]),
      Buffer.from([0x00, 0x02, ...Buffer.from('cd')]),
      Buffer.from([0x80, 0x01, ...Buffer.from('e')]),
      Buffer.from([0x81, 0x03, ...Buffer.from('txt')]),
    ]);
  });

  test('ping/pong with 125 bytes are sent; 126 bytes is a RangeError and nothing is written (§5.5)', () => {
    const { protocol, sink } = setup();
    protocol.ping(Buffer.alloc(125, 1));
    protocol.pong(Buffer.alloc(125, 2));
    assert.deepEqual(sink.frames.map((f) => f.subarray(0, 2).toString('hex')), ['897d', '8a7d']);
    assert.throws(() => protocol.ping(Buffer.alloc(126)), RangeError);
    assert.throws(() => protocol.pong(Buffer.alloc(126)), RangeError);
    assert.equal(sink.frames.length, 2);
    protocol.ping();
    assert.deepEqual(sink.frames[2], Buffer.from([0x89, 0x00]));
  });

  test('sendFrame: a continuation needs a message in progress; no other message may interleave (§5.4)', () => {
    const { protocol, sink } = setup();
    assert.throws(() => protocol.sendFrame(Opcode.Continuation, Buffer.from('x'), true), TypeError);
    assert.throws(() => protocol.sendFrame(Opcode.Ping, Buffer.from('x'), true), TypeError);
    assert.throws(() => protocol.sendFrame(Opcode.Close, Buffer.from(''), true), TypeError);
    protocol.sendFrame(Opcode.Text, Buffer.from('He'), false);
    assert.throws(() => protocol.sendFrame(Opcode.Text, Buffer.from('x'), true), TypeError);
    assert.throws(() => protocol.sendFrame(Opcode.Binary, Buffer.from('x'), true), TypeError);
    assert.throws(() => protocol.sendText('x'), TypeError);
    assert.throws(() => protocol.sendBinary(Buffer.from('x')), TypeError);
    // Control frames may be interleaved.
    protocol.ping(Buffer.from('p'));
    protocol.sendFrame(Opcode.Continuation, Buffer.from('ll'), false);
    protocol.sendFrame(Opcode.Continuation, Buffer.from('o'), true);
    assert.throws(() => protocol.sendFrame(Opcode.Continuation, Buffer.from('x'), true), TypeError);
    protocol.sendText('next');
    assert.deepEqual(
      readFrames(sink.bytes()).map((f) => [f.opcode, f.fin, f.payload.toString()]),
      [
        [Opcode.Text, false, 'He'],
        [Opcode.Ping, true, 'p'],
        [Opcode.Continuation, false, 'll'],
        [Opcode.Continuation, true, 'o'],
        [Opcode.Text, true, 'next'],
      ],
    );
  });
});

describe('Protocol — client role (RFC 6455 §5.1, §5.3)', () => {
  test('writes masked frames: messages, pongs and the close reply', () => {
    const { protocol, sink } = setup({ role: 'client' });
    protocol.sendText('Hello');
    protocol.sendBinary(Buffer.alloc(2000, 9));
    protocol.receive(serverFrame({ opcode: Opcode.Ping, payload: 'Hello' }));
    protocol.receive(closeFrame(1000));
    expectClose(protocol.nextEvent());
    const frames = readFrames(sink.bytes());
    assert.ok(frames.every((f) => f.masked), 'every client frame is masked');
    assert.deepEqual(
      frames.map((f) => [f.opcode, f.payload.toString('hex')]),
      [
        [Opcode.Text, Buffer.from('Hello').toString('hex')],
        [Opcode.Binary, Buffer.alloc(2000, 9).toString('hex')],
        [Opcode.Pong, Buffer.from('Hello').toString('hex')],
        [Opcode.Close, '03e8'],
      ],
    );
  });

  test('reads unmasked server frames (RFC §5.7 "Hello")', () => {
    const { protocol } = setup({ role: 'client' });
    protocol.receive(Buffer.from([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
    assert.equal(expectMessage(protocol.nextEvent()).text, 'Hello');
  });

  test('a masked server frame is 1002, answered with a masked close frame', () => {
    const { protocol, sink } = setup({ role: 'client' });
    protocol.receive(buildFrame({ opcode: Opcode.Text, payload: 'masked' }));
    const event = expectClose(protocol.nextEvent());
    assert.equal(event.code, 1002);
    const frames = readFrames(sink.bytes());
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.masked, true);
    assert.equal(frames[0]!.opcode, Opcode.Close);
    assert.equal(frames[0]!.payload.readUInt16BE(0), 1002);
  });

  test('the server role rejects unmasked client frames with 1002', () => {
    const { protocol, sink } = setup();
    protocol.receive(serverFrame({ opcode: Opcode.Text, payload: 'unmasked' }));
    assert.equal(expectClose(protocol.nextEvent()).code, 1002);
    expectCloseWritten(sink, 1002);
  });
});

describe('close() while a violation is pending', () => {
  test('sends the violation code, not the application code (RFC 6455 §7.1.7)', () => {
    const sink = collectingSink();
    const protocol = new Protocol(sink);
    protocol.receive(buildFrame({ opcode: 0x3, payload: Buffer.from('x') }));
    protocol.close(1000, 'bye');
    const frames = readFrames(Buffer.concat(sink.frames));
    assert.equal(frames.length, 1);
    assert.deepEqual([...frames[0]!.payload.subarray(0, 2)], [0x03, 0xea]);
    assert.equal(sink.endCalls, 1);
    assert.equal(protocol.state, 'closed');
  });
});

describe('Protocol — messages received in pieces are forwarded without joining', () => {
  test('a frame split across reads is echoed as its segments through writeFrameSegments; data joins them', () => {
    const sink = collectingSink();
    const segmentWrites: Array<{ header: Buffer; segments: readonly Uint8Array[] }> = [];
    sink.writeFrameSegments = (header: Buffer, segments: readonly Uint8Array[]) => void segmentWrites.push({ header, segments });
    const protocol = new Protocol(sink);
    const payload = Buffer.alloc(20_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const frame = buildFrame({ opcode: Opcode.Binary, payload });
    for (const chunk of splitAt(frame, [6000, 13_000])) protocol.receive(chunk);
    const message = protocol.nextEvent();
    assert.ok(message instanceof Message);
    assert.equal(message.byteLength, payload.length);
    assert.equal(message.segments?.length, 3);
    protocol.sendMessage(message);
    assert.equal(sink.frames.length, 0, 'not joined into writeFrame');
    assert.equal(segmentWrites.length, 1);
    const wire = Buffer.concat([segmentWrites[0]!.header, ...segmentWrites[0]!.segments]);
    assert.deepEqual(wire, Buffer.concat([Buffer.from([0x82, 126, 0x4e, 0x20]), payload]));
    assert.deepEqual(message.data, payload);
    assert.equal(message.segments, null, 'joined once read');
  });

  test('without writeFrameSegments the sink gets the joined payload', () => {
    const { protocol, sink } = setup();
    const payload = Buffer.alloc(10_000, 0x61);
    for (const chunk of splitAt(buildFrame({ opcode: Opcode.Text, payload }), [5000])) protocol.receive(chunk);
    protocol.sendMessage(expectMessage(protocol.nextEvent()));
    assert.deepEqual(sink.bytes(), Buffer.concat([Buffer.from([0x81, 126, 0x27, 0x10]), payload]));
  });

  test('small fragments are gathered into a few segments, not one object per fragment', () => {
    const { protocol } = setup();
    const fragments: Buffer[] = [];
    const count = 4096;
    for (let i = 0; i < count; i++) {
      fragments.push(buildFrame({ opcode: i === 0 ? Opcode.Binary : Opcode.Continuation, fin: i === count - 1, payload: Buffer.alloc(16, i & 0xff) }));
    }
    protocol.receive(Buffer.concat(fragments));
    const message = protocol.nextEvent();
    assert.ok(message instanceof Message); // (expectMessage would read .data and join the segments)
    assert.equal(message.byteLength, 16 * count);
    // Tails of 1, 2, 4, 8, 16, 32 KiB and the rest: a handful of segments, not 4,096.
    assert.ok(message.segments !== null && message.segments.length <= 8, `${message.segments?.length} segments for 64 KiB`);
    for (let i = 0; i < count; i++) assert.equal(message.data[i * 16], i & 0xff);
  });
});

describe('Protocol — pongs while the output is backed up (RFC 6455 §5.5.3)', () => {
  /** A sink whose transport says whether it can take a pong now. */
  function backedUp(): { protocol: Protocol; sink: CollectingSink; state: { full: boolean } } {
    const state = { full: true };
    const sink = Object.assign(collectingSink(), { canWritePong: () => !state.full });
    return { protocol: new Protocol(sink), sink, state };
  }

  test('every ping is answered at once while the output flows', () => {
    const { protocol, sink, state } = backedUp();
    state.full = false;
    feed(protocol, ping('a'), ping('b'), ping('c'));
    assert.deepEqual(sink.frames, ['a', 'b', 'c'].map((p) => serverFrame({ opcode: Opcode.Pong, payload: p })));
  });

  test('pings that find the output backed up are coalesced: only the most recent is answered, once, on flushPong', () => {
    const { protocol, sink, state } = backedUp();
    feed(protocol, ping('a'), ping('b'));
    feed(protocol, ping('c'));
    assert.equal(sink.frames.length, 0, 'nothing written while backed up');
    state.full = false;
    protocol.flushPong();
    protocol.flushPong();
    assert.deepEqual(sink.frames, [serverFrame({ opcode: Opcode.Pong, payload: 'c' })]);
  });

  test('a pending pong goes out before our close frame, and nothing after it (§5.5.1)', () => {
    const { protocol, sink } = backedUp();
    feed(protocol, ping('p'));
    protocol.close(1000);
    protocol.flushPong();
    assert.deepEqual(sink.frames, [serverFrame({ opcode: Opcode.Pong, payload: 'p' }), closeFrame(1000)]);
  });

  test('a pending pong goes out before the reply to the peer\'s close', () => {
    const { protocol, sink } = backedUp();
    feed(protocol, ping('p'), close(closePayload(1001)));
    expectClose(protocol.nextEvent());
    assert.deepEqual(sink.frames, [serverFrame({ opcode: Opcode.Pong, payload: 'p' }), closeFrame(1001)]);
    assert.equal(sink.endCalls, 1);
  });

  test('a pending pong is dropped when the transport ends first', () => {
    const { protocol, sink, state } = backedUp();
    feed(protocol, ping('p'));
    protocol.receiveEnd();
    state.full = false;
    protocol.flushPong();
    assert.equal(sink.frames.length, 0);
  });
});
