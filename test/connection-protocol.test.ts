/**
 * Protocol violations over the wire: the close code the client sees (1002, 1007, 1009), that the
 * server then closes TCP, that the handler learns the code, and that a valid message before a bad
 * frame in the same TCP write is echoed first (Autobahn 4.1.3, 5.15 ordering).
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { WebSocketDisconnect, type Handler, type ServerOptions } from '../src/index.ts';
import { closePayload, encodeFrame, Opcode, Rsv, type FrameSpec, type RawClient } from './helpers/raw-client.ts';
import { deferred, Harness, withTimeout, type Deferred } from './helpers/server.ts';

/** An echo handler that reports how its loop ended. */
function echoReporting(outcome: Deferred<unknown>): Handler {
  return async (ws) => {
    await ws.accept();
    try {
      for await (const message of ws) await ws.send(message);
      outcome.resolve('ended');
    } catch (error) {
      outcome.resolve(error);
    }
  };
}

/** Sends `frames` in one write and expects a close frame with `code`, then the server's FIN. */
async function expectFailure(client: RawClient, frames: readonly FrameSpec[], code: number): Promise<string> {
  await client.sendFrames(frames);
  const close = await client.expectClose();
  assert.equal(close.code, code, `close code (reason ${JSON.stringify(close.reason)})`);
  await client.waitForEnd();
  assert.equal(client.buffered, 0);
  return close.reason;
}

async function violation(t: TestContext, frames: readonly FrameSpec[], code: number, options: ServerOptions = {}): Promise<void> {
  const h = new Harness(t);
  const outcome = deferred<unknown>();
  const { port } = await h.serve(echoReporting(outcome), options);
  const client = await h.rawOpened(port);
  await expectFailure(client, frames, code);
  const error = await withTimeout(outcome.promise, 1000, 'the handler ending');
  assert.ok(error instanceof WebSocketDisconnect, String(error));
  assert.equal(error.code, code);
}

describe('1002 protocol error', () => {
  test('an unmasked client frame (RFC 6455 §5.1)', (t) =>
    violation(t, [{ opcode: Opcode.Text, payload: 'naked', mask: false }], 1002));

  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    test(`reserved opcode ${opcode} (RFC 6455 §5.2)`, (t) => violation(t, [{ opcode, payload: 'x' }], 1002));
  }

  for (const [name, rsv] of Object.entries(Rsv)) {
    test(`${name} set without an extension (RFC 6455 §5.2)`, (t) =>
      violation(t, [{ opcode: Opcode.Text, payload: 'x', rsv }], 1002));
  }

  test('a ping with 126 bytes (control frames hold at most 125, RFC 6455 §5.5)', (t) =>
    violation(t, [{ opcode: Opcode.Ping, payload: Buffer.alloc(126) }], 1002));

  test('a fragmented ping (RFC 6455 §5.5)', (t) => violation(t, [{ opcode: Opcode.Ping, payload: 'a', fin: false }], 1002));

  test('a continuation frame with no message in progress (RFC 6455 §5.4)', (t) =>
    violation(t, [{ opcode: Opcode.Continuation, payload: 'x' }], 1002));

  test('a new data frame inside a fragmented message (RFC 6455 §5.4)', (t) =>
    violation(
      t,
      [
        { opcode: Opcode.Text, payload: 'a', fin: false },
        { opcode: Opcode.Text, payload: 'b' },
      ],
      1002,
    ));

  test('a 64-bit length with the most significant bit set (RFC 6455 §5.2)', (t) =>
    violation(t, [{ opcode: Opcode.Binary, declaredLength: 1n << 63n, lengthEncoding: 64 }], 1002));

  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) {
    test(`a close frame with code ${code} (not sendable, RFC 6455 §7.4)`, async (t) => {
      const h = new Harness(t);
      const { port } = await h.serve(echoReporting(deferred()));
      const client = await h.rawOpened(port);
      await expectFailure(client, [{ opcode: Opcode.Close, payload: closePayload(code) }], 1002);
    });
  }

  test('a close frame with a 1-byte payload', (t) => violation(t, [{ opcode: Opcode.Close, payload: Buffer.from([3]) }], 1002));
});

describe('1007 invalid payload data', () => {
  test('invalid UTF-8 in a text message (RFC 6455 §8.1)', (t) =>
    violation(t, [{ opcode: Opcode.Text, payload: Buffer.from([0x68, 0x69, 0xff]) }], 1007));

  test('a lone surrogate encoded in UTF-8 (CESU) is invalid', (t) =>
    violation(t, [{ opcode: Opcode.Text, payload: Buffer.from([0xed, 0xa0, 0x80]) }], 1007));

  test('fail fast: an invalid first fragment is refused without waiting for the rest', (t) =>
    violation(t, [{ opcode: Opcode.Text, payload: Buffer.from([0x61, 0xc0, 0x80]), fin: false }], 1007));

  test('fail fast: invalid bytes mid-frame are refused before the frame is complete', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echoReporting(deferred()));
    const client = await h.rawOpened(port);
    // A 1000-byte text frame whose payload is invalid from byte 2 on; only the first 100 bytes are sent.
    const payload = Buffer.alloc(1000, 0x61);
    payload[2] = 0xff;
    const frame = encodeFrame({ opcode: Opcode.Text, payload });
    await client.write(frame.subarray(0, 100));
    assert.equal((await client.expectClose()).code, 1007);
  });

  test('a message ending inside a UTF-8 sequence', (t) =>
    violation(
      t,
      [
        { opcode: Opcode.Text, payload: Buffer.from([0x61, 0xe2]), fin: false },
        { opcode: Opcode.Continuation, payload: Buffer.from([0x82]), fin: true },
      ],
      1007,
    ));

  test('a close reason that is not UTF-8', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echoReporting(deferred()));
    const client = await h.rawOpened(port);
    await expectFailure(client, [{ opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe8, 0xff]) }], 1007);
  });
});

describe('1009 message too big', () => {
  test('refused from the header alone: no payload byte is sent', async (t) => {
    const h = new Harness(t);
    const outcome = deferred<unknown>();
    const { port } = await h.serve(echoReporting(outcome), { maxMessageSize: 1024 });
    const client = await h.rawOpened(port);
    // Only the header of a frame declaring 1025 bytes.
    await client.write(encodeFrame({ opcode: Opcode.Binary, declaredLength: 1025 }));
    assert.equal((await client.expectClose()).code, 1009);
    await client.waitForEnd();
    const error = await withTimeout(outcome.promise, 1000, 'the handler ending');
    assert.equal((error as WebSocketDisconnect).code, 1009);
  });

  test('a 2^62-byte declared length is refused without allocating', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echoReporting(deferred()));
    const client = await h.rawOpened(port);
    await client.write(encodeFrame({ opcode: Opcode.Binary, declaredLength: 1n << 62n, lengthEncoding: 64 }));
    assert.equal((await client.expectClose()).code, 1009);
  });

  test('fragments that together exceed maxMessageSize', (t) =>
    violation(
      t,
      [
        { opcode: Opcode.Binary, payload: Buffer.alloc(600), fin: false },
        { opcode: Opcode.Continuation, payload: Buffer.alloc(600), fin: true },
      ],
      1009,
      { maxMessageSize: 1024 },
    ));

  test('exactly maxMessageSize is accepted', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echoReporting(deferred()), { maxMessageSize: 1024 });
    const client = await h.rawOpened(port);
    await client.sendFrames([
      { opcode: Opcode.Binary, payload: Buffer.alloc(512, 1), fin: false },
      { opcode: Opcode.Continuation, payload: Buffer.alloc(512, 2), fin: true },
    ]);
    const frame = await client.readFrame();
    assert.equal(frame.payload.length, 1024);
  });

  test('a frame over maxFrameSize inside an allowed message', (t) =>
    violation(t, [{ opcode: Opcode.Binary, payload: Buffer.alloc(300) }], 1009, { maxFrameSize: 256, maxMessageSize: 4096 }));
});

describe('ordering', () => {
  test('a valid message before a bad frame in the same TCP write is echoed before the 1002 close', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echoReporting(deferred()));
    const client = await h.rawOpened(port);
    await client.sendFrames([
      { opcode: Opcode.Text, payload: 'first' },
      { opcode: Opcode.Binary, payload: Buffer.from([1, 2, 3]) },
      { opcode: Opcode.Text, payload: 'bad', rsv: Rsv.Rsv2 },
      { opcode: Opcode.Text, payload: 'never' },
    ]);
    const first = await client.readFrame();
    assert.equal(first.opcode, Opcode.Text);
    assert.equal(first.payload.toString(), 'first');
    const second = await client.readFrame();
    assert.deepEqual([...second.payload], [1, 2, 3]);
    assert.equal((await client.expectClose()).code, 1002);
    await client.waitForEnd();
    assert.equal(client.buffered, 0);
  });

  test('a valid message before invalid UTF-8 in the same write is echoed before the 1007 close', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echoReporting(deferred()));
    const client = await h.rawOpened(port);
    await client.sendFrames([
      { opcode: Opcode.Text, payload: 'ok' },
      { opcode: Opcode.Text, payload: Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xf4, 0x90, 0x80, 0x80]) },
    ]);
    assert.equal((await client.readFrame()).payload.toString(), 'ok');
    assert.equal((await client.expectClose()).code, 1007);
  });

  test('a valid message before a close frame in the same write is echoed before the close reply', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echoReporting(deferred()));
    const client = await h.rawOpened(port);
    await client.sendFrames([
      { opcode: Opcode.Text, payload: 'last words' },
      { opcode: Opcode.Close, payload: closePayload(1000, 'bye') },
    ]);
    assert.equal((await client.readFrame()).payload.toString(), 'last words');
    assert.deepEqual(await client.expectClose(), { code: 1000, reason: '' });
  });

  test('after a violation the server reads nothing more and closes TCP even if the client never answers', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echoReporting(deferred()), { closeTimeout: 300 });
    const client = await h.rawOpened(port, { allowHalfOpen: true });
    await client.sendFrame({ opcode: Opcode.Text, payload: 'x', mask: false });
    assert.equal((await client.expectClose()).code, 1002);
    await client.sendText('ignored');
    await client.waitForEnd(2000);
    assert.equal(client.buffered, 0);
  });
});
