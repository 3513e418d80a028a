/**
 * `connect()` against malformed servers, on the wire: a raw `node:net` server on 127.0.0.1 reads the
 * client's request and answers with crafted bytes. Each case asserts the exact outcome: the
 * HandshakeError (RFC 6455 §4.1: the client MUST _Fail the WebSocket Connection_) or Node's own error
 * when no HTTP response came; after a good 101, the close code the client sends (read on the raw
 * server, masked as §5.1 requires) and the WebSocketDisconnect its receive() rejects with; and the TCP
 * close order of §7.1.1 (the client waits for the server to close TCP, and closes it itself only after
 * `closeTimeout`).
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, HandshakeError, WebSocketDisconnect, type ClientOptions, type WebSocket } from '../src/index.ts';
import { Opcode } from '../src/protocol/index.ts';
import { serverFrame } from './helpers/frames.ts';
import { RawServer, type RawServerConnection, type Response101 } from './helpers/raw-server.ts';
import { sleep, withTimeout } from './helpers/server.ts';

/** Bound on every test: a broken client fails the test instead of hanging the run. */
const TEST_TIMEOUT = { timeout: 10_000 };

/** A close frame as a server sends it (unmasked). */
function serverClose(code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code);
  payload.write(reason, 2);
  return serverFrame({ opcode: Opcode.Close, payload });
}

/** Starts connect(); the client is terminated in `t.after` if it opens. The promise is marked handled. */
function startConnect(t: TestContext, server: RawServer, options: ClientOptions = {}): Promise<WebSocket> {
  const connecting = connect(server.url, { onError: () => undefined, ...options });
  connecting.then(
    (ws) => t.after(() => ws.terminate()),
    () => undefined,
  );
  return connecting;
}

/** A raw server, a client connected to it with a correct 101, and the server's side of the connection. */
async function open(t: TestContext, options: ClientOptions = {}): Promise<{ ws: WebSocket; peer: RawServerConnection; server: RawServer }> {
  const server = await RawServer.listen(t);
  const connecting = startConnect(t, server, options);
  const peer = await server.nextConnection();
  peer.accept();
  const ws = await withTimeout(connecting, 2000, 'connect()');
  return { ws, peer, server };
}

/** Answers the handshake with `respond(peer)` and returns what connect() rejected with. */
async function refusedWith(t: TestContext, respond: (peer: RawServerConnection) => void, options: ClientOptions = {}): Promise<{ error: unknown; peer: RawServerConnection }> {
  const server = await RawServer.listen(t);
  const connecting = startConnect(t, server, options);
  const peer = await server.nextConnection();
  respond(peer);
  const error = await withTimeout(
    connecting.then(
      () => new Error('connect() resolved'),
      (reason: unknown) => reason,
    ),
    2000,
    'connect()',
  );
  return { error, peer };
}

/** Asserts a HandshakeError with `status` and a reason matching `reason`; the client then closes TCP. */
async function expectHandshakeError(
  t: TestContext,
  respond: Response101 | ((peer: RawServerConnection) => void),
  status: number,
  reason: RegExp,
  options: ClientOptions = {},
): Promise<HandshakeError> {
  const { error, peer } = await refusedWith(t, typeof respond === 'function' ? respond : (p) => p.accept(respond), options);
  assert.ok(error instanceof HandshakeError, `expected HandshakeError, got ${String(error)}`);
  assert.equal(error.status, status, error.message);
  assert.match(error.reason, reason);
  // RFC 6455 §4.1: _Fail the WebSocket Connection_: the client closes the TCP connection.
  await peer.waitForEnd(1000);
  assert.equal(peer.buffered, 0, 'the client sent nothing after its request');
  return error;
}

/** Asserts the client's close frame on the wire: masked, with `code`; and receive() rejecting with it (local). */
async function expectClientFailure(ws: WebSocket, peer: RawServerConnection, receiving: Promise<unknown>, code: number): Promise<void> {
  const close = await peer.readClose();
  assert.equal(close.frame.masked, true, 'the client masks its close frame (RFC 6455 §5.1)');
  assert.equal(close.frame.maskKey?.length, 4);
  assert.equal(close.code, code);
  await assert.rejects(
    withTimeout(receiving, 2000, 'receive()'),
    (error: unknown) => error instanceof WebSocketDisconnect && error.code === code && error.initiator === 'local',
  );
  // RFC 6455 §7.1.1: even a client that failed the connection (§7.1.7) leaves closing TCP to the
  // server: no FIN from it while the server has not closed, then it follows the server's.
  await sleep(150);
  assert.equal(peer.goneAt, null, 'the client did not close TCP before the server');
  const serverEnded = Date.now();
  peer.end();
  await withTimeout(ws.whenClosed(), 2000, 'the client socket closing');
  assert.equal(ws.state, 'closed');
  await peer.waitForEnd(1000);
  assert.ok(peer.goneAt !== null && peer.goneAt >= serverEnded, 'the client closed TCP after the server did');
}

/** receive() started at once, so the close is answered as soon as it is known; marked handled. */
function receiving(ws: WebSocket): Promise<unknown> {
  const promise = ws.receive();
  promise.catch(() => undefined);
  return promise;
}

describe('connect() against a malformed opening handshake (RFC 6455 §4.1)', () => {
  test('the request the raw server reads is a valid upgrade request', TEST_TIMEOUT, async (t) => {
    const server = await RawServer.listen(t);
    const connecting = startConnect(t, server, { subprotocols: ['chat'] });
    const peer = await server.nextConnection();
    const { request } = peer;
    assert.equal(request.requestLine, 'GET / HTTP/1.1');
    assert.equal(request.headers['host'], `127.0.0.1:${server.port}`);
    assert.equal(request.headers['upgrade'], 'websocket');
    assert.equal(request.headers['connection'], 'Upgrade');
    assert.equal(request.headers['sec-websocket-version'], '13');
    assert.equal(request.headers['sec-websocket-protocol'], 'chat');
    assert.equal(Buffer.from(request.key, 'base64').length, 16);
    peer.accept({ headers: ['Sec-WebSocket-Protocol: chat'] });
    const ws = await withTimeout(connecting, 2000, 'connect()');
    assert.equal(ws.subprotocol, 'chat');
  });

  test('a wrong Sec-WebSocket-Accept: HandshakeError(101)', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(t, { accept: 'HSmrc0sMlYUkAGmm5OPpG2HaGWk=' }, 101, /Sec-WebSocket-Accept/);
  });

  test('no Sec-WebSocket-Accept: HandshakeError(101)', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(t, { accept: null }, 101, /Sec-WebSocket-Accept/);
  });

  test('the accept value of another key (the RFC sample): HandshakeError(101)', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(t, { accept: 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=' }, 101, /Sec-WebSocket-Accept/);
  });

  test('no Upgrade header: HandshakeError(101)', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(t, { upgrade: null }, 101, /Upgrade/);
  });

  test('no Connection: Upgrade: HandshakeError(101)', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(t, { connection: null }, 101, /Connection/);
    await expectHandshakeError(t, { connection: 'keep-alive' }, 101, /Connection/);
  });

  test('Upgrade: h2c: HandshakeError(101)', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(t, { upgrade: 'h2c' }, 101, /Upgrade/);
  });

  test('a subprotocol that was not offered: HandshakeError(101)', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(t, { headers: ['Sec-WebSocket-Protocol: other'] }, 101, /subprotocol/, { subprotocols: ['chat'] });
    await expectHandshakeError(t, { headers: ['Sec-WebSocket-Protocol: chat'] }, 101, /subprotocol/);
  });

  test('an extension that was not offered (x-foo): HandshakeError(101)', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(t, { headers: ['Sec-WebSocket-Extensions: x-foo'] }, 101, /x-foo/);
  });

  test('permessage-deflate when it was not offered: HandshakeError(101)', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(t, { headers: ['Sec-WebSocket-Extensions: permessage-deflate'] }, 101, /permessage-deflate/);
  });

  test('a refusal (403 with a body): HandshakeError(403) with the headers and the body', TEST_TIMEOUT, async (t) => {
    const { error } = await refusedWith(t, (peer) =>
      peer.write('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 6\r\nX-Why: test\r\n\r\nnope!\n'),
    );
    assert.ok(error instanceof HandshakeError, String(error));
    assert.equal(error.status, 403);
    assert.match(error.reason, /did not switch protocols/);
    assert.equal(error.headers['x-why'], 'test');
    assert.deepEqual(error.body, Buffer.from('nope!\n'));
  });

  test('a refusal with Connection: close: the client closes TCP', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(
      t,
      (peer) => peer.write('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 3\r\n\r\nno\n'),
      401,
      /did not switch protocols/,
    );
  });

  // An ordinary HTTP/1.1 server (nginx, Express) answers a refused upgrade with a keep-alive response
  // whose body has a Content-Length. The client gives up on the connection: it must close it, not leave
  // a socket open that keeps the process alive until the server closes it.
  test('a keep-alive refusal (403, Content-Length body): the client closes TCP', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(
      t,
      (peer) => peer.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nnope!\n'),
      403,
      /did not switch protocols/,
    );
  });

  test('a keep-alive redirect that is not followed (302, empty body): the client closes TCP', TEST_TIMEOUT, async (t) => {
    await expectHandshakeError(
      t,
      (peer) => peer.write('HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n'),
      302,
      /redirect/,
    );
  });

  test('a keep-alive refusal, then the server resets the connection: no unhandled socket error', TEST_TIMEOUT, async (t) => {
    const { error, peer } = await refusedWith(t, (p) => p.write('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'));
    assert.ok(error instanceof HandshakeError && error.status === 404, String(error));
    // The socket must be closed by now, or at least still have an 'error' listener: an ECONNRESET on
    // a socket without one is an uncaught exception that ends the application's process.
    peer.reset();
    await sleep(200);
  });

  test('a followed redirect: the first connection is closed once the second one opens', TEST_TIMEOUT, async (t) => {
    const first = await RawServer.listen(t);
    const second = await RawServer.listen(t);
    const connecting = startConnect(t, first, { followRedirects: true });
    const redirected = await first.nextConnection();
    redirected.write(`HTTP/1.1 307 Temporary Redirect\r\nLocation: ${second.url}next\r\nContent-Length: 0\r\n\r\n`);
    const peer = await second.nextConnection();
    assert.equal(peer.request.target, '/next');
    peer.accept();
    const ws = await withTimeout(connecting, 2000, 'connect()');
    assert.equal(ws.url, `${second.url}next`);
    await redirected.waitForEnd(1000);
  });

  test('a response that is not HTTP (HELLO): Node\'s parser error (HPE_...), not a HandshakeError', TEST_TIMEOUT, async (t) => {
    const { error, peer } = await refusedWith(t, (p) => p.write('HELLO\r\n\r\n'));
    assert.ok(!(error instanceof HandshakeError), String(error));
    assert.ok(error instanceof Error);
    assert.match(String((error as Error & { code?: unknown }).code), /^HPE_/, String(error));
    await peer.waitForEnd(1000);
  });

  test('the server closes the socket before answering: Node\'s error (socket hang up / ECONNRESET)', TEST_TIMEOUT, async (t) => {
    const { error } = await refusedWith(t, (p) => p.end());
    assert.ok(error instanceof Error && !(error instanceof HandshakeError), String(error));
    const code = (error as Error & { code?: unknown }).code;
    assert.ok(code === 'ECONNRESET' || /socket hang up/.test(error.message), `${String(code)}: ${error.message}`);
  });

  test('the server resets the connection before answering: Node\'s error (ECONNRESET)', TEST_TIMEOUT, async (t) => {
    const { error } = await refusedWith(t, (p) => p.reset());
    assert.ok(error instanceof Error && !(error instanceof HandshakeError), String(error));
    const code = (error as Error & { code?: unknown }).code;
    assert.ok(code === 'ECONNRESET' || /socket hang up/.test(error.message), `${String(code)}: ${error.message}`);
  });

  test('a 101 followed in the same write by a text frame: the client receives the frame', TEST_TIMEOUT, async (t) => {
    const server = await RawServer.listen(t);
    const connecting = startConnect(t, server);
    const peer = await server.nextConnection();
    peer.accept({}, Buffer.concat([serverFrame({ opcode: Opcode.Text, payload: 'first' }), serverFrame({ opcode: Opcode.Binary, payload: Buffer.from([1, 2]) })]));
    const ws = await withTimeout(connecting, 2000, 'connect()');
    const first = await withTimeout(ws.receive(), 2000, 'receive()');
    assert.deepEqual([first.type, first.text], ['text', 'first']);
    const second = await withTimeout(ws.receive(), 2000, 'receive()');
    assert.deepEqual([second.type, [...second.data]], ['binary', [1, 2]]);
  });
});

describe('connect() after a good 101: a server that breaks the protocol (RFC 6455 §5, §7.1.7)', () => {
  test('a MASKED server frame: the client sends close 1002 (masked) and receive() rejects with 1002, local (§5.1)', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t);
    const pending = receiving(ws);
    // A masked frame, as only a client may send (RFC §5.7 key).
    peer.write(Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]));
    await expectClientFailure(ws, peer, pending, 1002);
  });

  test('invalid UTF-8 in a text frame: 1007', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t);
    const pending = receiving(ws);
    peer.write(serverFrame({ opcode: Opcode.Text, payload: Buffer.from([0x48, 0x69, 0xc0, 0xaf]) }));
    await expectClientFailure(ws, peer, pending, 1007);
  });

  test('a frame over maxMessageSize: 1009 from its header alone, without waiting for the payload', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t, { maxMessageSize: 1024 });
    const pending = receiving(ws);
    // The header claims 2048 bytes; none of them is ever sent.
    peer.write(serverFrame({ opcode: Opcode.Binary, declaredLength: 2048 }));
    await expectClientFailure(ws, peer, pending, 1009);
  });

  test('a fragmented message over maxMessageSize: 1009 at the fragment that exceeds it', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t, { maxMessageSize: 1024 });
    const pending = receiving(ws);
    peer.write(serverFrame({ opcode: Opcode.Binary, fin: false, payload: Buffer.alloc(800, 1) }));
    // The second fragment's header takes the message to 1600 bytes; its payload never comes.
    peer.write(serverFrame({ opcode: Opcode.Continuation, declaredLength: 800 }));
    await expectClientFailure(ws, peer, pending, 1009);
  });

  test('a reserved opcode (0x3): 1002', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t);
    const pending = receiving(ws);
    peer.write(serverFrame({ opcode: 0x3, payload: 'x' }));
    await expectClientFailure(ws, peer, pending, 1002);
  });

  test('a reserved control opcode (0xB): 1002', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t);
    const pending = receiving(ws);
    peer.write(serverFrame({ opcode: 0xb }));
    await expectClientFailure(ws, peer, pending, 1002);
  });

  test('RSV1 without a negotiated extension: 1002', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t);
    const pending = receiving(ws);
    peer.write(serverFrame({ opcode: Opcode.Text, rsv: 4, payload: 'x' }));
    await expectClientFailure(ws, peer, pending, 1002);
  });

  test('a close frame with code 1005 on the wire: 1002', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t);
    const pending = receiving(ws);
    peer.write(serverClose(1005));
    await expectClientFailure(ws, peer, pending, 1002);
  });

  test('a valid message before the violation is still delivered, then the failure', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t);
    peer.write(Buffer.concat([serverFrame({ opcode: Opcode.Text, payload: 'ok' }), serverFrame({ opcode: 0x3 })]));
    const message = await withTimeout(ws.receive(), 2000, 'receive()');
    assert.equal(message.text, 'ok');
    await expectClientFailure(ws, peer, receiving(ws), 1002);
  });
});

describe('connect(): the closing handshake and who closes TCP (RFC 6455 §7.1.1)', () => {
  test('a server that answers the client\'s close but never closes TCP: the client closes it after closeTimeout, not before', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t, { closeTimeout: 200 });
    const started = Date.now();
    const closing = ws.close(1000, 'bye');
    const close = await peer.readClose();
    assert.equal(close.frame.masked, true);
    assert.deepEqual([close.code, close.reason], [1000, 'bye']);
    peer.write(serverClose(1000));
    const repliedAt = Date.now();
    const goneAt = await peer.waitForEnd(2000);
    // The client waited for the server to close TCP first (§7.1.1), then gave up after closeTimeout.
    assert.ok(goneAt - started >= 150, `the client closed TCP ${goneAt - started} ms after close(), before closeTimeout (200 ms)`);
    assert.ok(goneAt - repliedAt >= 100, `the client closed TCP ${goneAt - repliedAt} ms after the server's close frame`);
    assert.ok(goneAt - started < 1500, `the client closed TCP only after ${goneAt - started} ms`);
    await withTimeout(closing, 2000, 'close()');
    assert.equal(ws.state, 'closed');
  });

  test('a server that answers and closes TCP: close() resolves promptly, well under closeTimeout', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t, { closeTimeout: 3000 });
    const started = Date.now();
    const closing = ws.close(4000, 'done');
    const close = await peer.readClose();
    assert.deepEqual([close.frame.masked, close.code, close.reason], [true, 4000, 'done']);
    peer.write(serverClose(4000));
    peer.end();
    const endedAt = Date.now();
    await withTimeout(closing, 2000, 'close()');
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000, `close() took ${elapsed} ms with a server that closed TCP at once`);
    const goneAt = await peer.waitForEnd(1000);
    assert.ok(goneAt >= endedAt, 'the client closed TCP after the server did');
    await assert.rejects(ws.receive(), (error: unknown) => error instanceof WebSocketDisconnect && error.code === 4000 && error.initiator === 'local');
  });

  test('the server closes first: the client echoes the code in a masked close and leaves TCP for the server to close', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t, { closeTimeout: 3000 });
    const pending = receiving(ws);
    peer.write(serverClose(4000, 'server bye'));
    const reply = await peer.readClose();
    assert.equal(reply.frame.masked, true, 'the client masks its close frame (RFC 6455 §5.1)');
    assert.equal(reply.code, 4000, 'the client echoes the server\'s code (RFC 6455 §5.5.1)');
    await assert.rejects(
      withTimeout(pending, 2000, 'receive()'),
      (error: unknown) => error instanceof WebSocketDisconnect && error.code === 4000 && error.reason === 'server bye' && error.initiator === 'peer',
    );
    await sleep(150);
    assert.equal(peer.goneAt, null, 'the client closed TCP before the server did (RFC 6455 §7.1.1: it SHOULD wait)');
    const serverEndedAt = Date.now();
    peer.end();
    const goneAt = await peer.waitForEnd(1000);
    assert.ok(goneAt >= serverEndedAt);
    await withTimeout(ws.whenClosed(), 2000, 'the client socket closing');
    assert.equal(ws.state, 'closed');
  });

  test('the server closes first and never closes TCP: the client closes it after closeTimeout', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t, { closeTimeout: 200 });
    const pending = receiving(ws);
    peer.write(serverClose(1001));
    const reply = await peer.readClose();
    const repliedAt = Date.now();
    assert.equal(reply.code, 1001);
    await assert.rejects(withTimeout(pending, 2000, 'receive()'), WebSocketDisconnect);
    const goneAt = await peer.waitForEnd(2000);
    assert.ok(goneAt - repliedAt >= 150, `the client closed TCP ${goneAt - repliedAt} ms after its close reply, before closeTimeout (200 ms)`);
    assert.ok(goneAt - repliedAt < 1500, `the client closed TCP only after ${goneAt - repliedAt} ms`);
    await withTimeout(ws.whenClosed(), 2000, 'the client socket closing');
  });
});

describe('connect(): masking on the wire (RFC 6455 §5.1, §5.3)', () => {
  test('50 messages: every frame has the mask bit set, a key of its own, and unmasks to the message', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t);
    const sent: string[] = [];
    for (let i = 0; i < 50; i++) {
      sent.push(`message ${i} ${'x'.repeat(i)}`);
      void ws.send(sent[i]!);
    }
    const frames = await peer.readFrames(50);
    assert.ok(frames.every((frame) => frame.masked && frame.maskKey !== null), 'every client frame is masked');
    assert.deepEqual(
      frames.map((frame) => frame.payload.toString('utf8')),
      sent,
    );
    assert.ok(frames.every((frame) => frame.opcode === Opcode.Text && frame.fin));
    const keys = new Set(frames.map((frame) => frame.maskKey!.toString('hex')));
    assert.equal(keys.size, 50, 'no masking key is reused');
  });

  test('pongs and pings the client writes are masked too', TEST_TIMEOUT, async (t) => {
    const { ws, peer } = await open(t);
    peer.write(serverFrame({ opcode: Opcode.Ping, payload: 'are you there' }));
    const pong = await peer.readFrame();
    assert.deepEqual([pong.opcode, pong.masked, pong.payload.toString()], [Opcode.Pong, true, 'are you there']);
    await ws.ping(Buffer.from('me'));
    const ping = await peer.readFrame();
    assert.deepEqual([ping.opcode, ping.masked, ping.payload.toString()], [Opcode.Ping, true, 'me']);
  });
});
