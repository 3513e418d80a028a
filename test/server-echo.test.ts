/**
 * Echo over the wire: text and binary messages of every length-encoding boundary, fragmented input
 * with a ping in between, ping/pong, broadcast, and what a handler sees of the request.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { WebSocketServer, type Handler } from '../src/index.ts';
import { encodeFrame as encode, Opcode, upgradeRequest } from './helpers/raw-client.ts';
import { Harness } from './helpers/server.ts';

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
};

/** A string of exactly `bytes` UTF-8 bytes, with 2-, 3- and 4-byte characters in it. */
function textOfBytes(bytes: number): string {
  let text = '';
  let length = 0;
  const pieces = ['é', '€', '😀', 'a'];
  for (let i = 0; length < bytes; i++) {
    const piece = pieces[i % pieces.length]!;
    const size = Buffer.byteLength(piece);
    if (length + size > bytes) {
      text += 'a'.repeat(bytes - length);
      break;
    }
    text += piece;
    length += size;
  }
  assert.equal(Buffer.byteLength(text), bytes);
  return text;
}

const SIZES = [0, 125, 126, 65535, 65536, 1024 * 1024];

describe('echo with Node’s WebSocket client', () => {
  for (const size of SIZES) {
    test(`text and binary messages of ${size} bytes come back unchanged`, async (t) => {
      const h = new Harness(t);
      const { url } = await h.serve(echo);
      const client = await h.client(url);
      const text = textOfBytes(size);
      const bytes = randomBytes(size);
      client.send(text);
      client.send(bytes);
      assert.equal(await client.next(5000), text);
      assert.deepEqual(await client.next(5000), bytes);
    });
  }
});

describe('echo on the wire (raw client)', () => {
  test('a frame uses the minimal length encoding and no mask (RFC 6455 §5.1, §5.2)', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    const client = await h.rawOpened(port);
    const expected: [number, 7 | 16 | 64][] = [
      [0, 7],
      [125, 7],
      [126, 16],
      [65535, 16],
      [65536, 64],
    ];
    for (const [size, encoding] of expected) {
      const payload = randomBytes(size);
      await client.sendFrame({ opcode: Opcode.Binary, payload });
      const frame = await client.readFrame();
      assert.equal(frame.opcode, Opcode.Binary);
      assert.equal(frame.fin, true);
      assert.equal(frame.rsv, 0);
      assert.equal(frame.masked, false);
      assert.equal(frame.lengthEncoding, encoding, `length encoding for ${size} bytes`);
      assert.deepEqual(frame.payload, payload);
    }
    const text = textOfBytes(300);
    await client.sendText(text);
    const frame = await client.readFrame();
    assert.equal(frame.opcode, Opcode.Text);
    assert.equal(frame.payload.toString('utf8'), text);
  });

  test('one 16 MiB binary message (the default limit) is echoed', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    const client = await h.rawOpened(port, { timeout: 10_000 });
    const payload = randomBytes(16 * 1024 * 1024);
    await client.sendFrame({ opcode: Opcode.Binary, payload });
    const frame = await client.readFrame();
    assert.equal(frame.opcode, Opcode.Binary);
    assert.equal(frame.lengthEncoding, 64);
    assert.equal(frame.payload.length, payload.length);
    assert.ok(frame.payload.equals(payload), 'payload differs');
  });

  test('fragments with a ping in between: the pong comes first, then the assembled message', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    const client = await h.rawOpened(port);
    await client.sendFrame({ opcode: Opcode.Text, payload: 'Hel', fin: false });
    await client.sendFrame({ opcode: Opcode.Ping, payload: 'p1' });
    await client.sendFrame({ opcode: Opcode.Continuation, payload: 'lo, ', fin: false });
    await client.sendFrame({ opcode: Opcode.Continuation, payload: 'wörld', fin: true });
    const pong = await client.readFrame();
    assert.equal(pong.opcode, Opcode.Pong);
    assert.equal(pong.payload.toString(), 'p1');
    const message = await client.readFrame();
    assert.equal(message.opcode, Opcode.Text);
    assert.equal(message.fin, true);
    assert.equal(message.payload.toString('utf8'), 'Hello, wörld');
  });

  test('fragments written a byte at a time with delays, a UTF-8 character split across fragments', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    const client = await h.rawOpened(port);
    const euro = Buffer.from('€');
    const frames = Buffer.concat([
      encode({ opcode: Opcode.Text, payload: Buffer.concat([Buffer.from('1 '), euro.subarray(0, 1)]), fin: false }),
      encode({ opcode: Opcode.Continuation, payload: euro.subarray(1), fin: true }),
      encode({ opcode: Opcode.Binary, payload: Buffer.from([1, 2]), fin: false }),
      encode({ opcode: Opcode.Ping, payload: '' }),
      encode({ opcode: Opcode.Continuation, payload: Buffer.from([3]), fin: true }),
    ]);
    await client.write(frames, { chunkSize: 1, delay: 1 });
    // The text message is complete before the ping is sent; the server may still read both in one
    // chunk and answer the ping first ("as soon as practical", RFC 6455 §5.5.2). The binary message
    // cannot be complete before the ping, so its pong must come first.
    const frames3 = [await client.readFrame(), await client.readFrame(), await client.readFrame()];
    const opcodes = frames3.map((frame) => frame.opcode);
    assert.deepEqual([...opcodes].sort(), [Opcode.Text, Opcode.Binary, Opcode.Pong].sort());
    assert.ok(opcodes.indexOf(Opcode.Pong) < opcodes.indexOf(Opcode.Binary), `order ${opcodes.join(',')}`);
    const text = frames3.find((frame) => frame.opcode === Opcode.Text)!;
    assert.equal(text.payload.toString('utf8'), '1 €');
    const pong = frames3.find((frame) => frame.opcode === Opcode.Pong)!;
    assert.equal(pong.payload.length, 0);
    const binary = frames3.find((frame) => frame.opcode === Opcode.Binary)!;
    assert.deepEqual([...binary.payload], [1, 2, 3]);
  });

  test('a 4 MiB message in 65,536 fragments of 64 bytes is accepted (no fragment-count cap)', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    const client = await h.rawOpened(port, { timeout: 10_000 });
    const payload = randomBytes(4 * 1024 * 1024);
    const frames: Buffer[] = [];
    for (let offset = 0; offset < payload.length; offset += 64) {
      frames.push(
        encode({
          opcode: offset === 0 ? Opcode.Binary : Opcode.Continuation,
          payload: payload.subarray(offset, offset + 64),
          fin: offset + 64 >= payload.length,
        }),
      );
    }
    await client.write(Buffer.concat(frames));
    const frame = await client.readFrame();
    assert.equal(frame.opcode, Opcode.Binary);
    assert.ok(frame.payload.equals(payload), 'payload differs');
  });

  test('frames the client sends before the handler accepts are kept and processed after accept', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(async (ws) => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await ws.accept();
      for await (const message of ws) await ws.send(message);
    });
    const client = await h.rawOpen(port);
    await client.write(upgradeRequest(port).request);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Sent after the request but before the 101: they wait in the socket until accept().
    await client.sendFrames([
      { opcode: Opcode.Text, payload: 'one' },
      { opcode: Opcode.Text, payload: 'two' },
    ]);
    await client.sendText('three');
    const response = await client.readHttpResponse();
    assert.equal(response.status, 101);
    for (const expected of ['one', 'two', 'three']) assert.equal((await client.readFrame()).payload.toString(), expected);
  });

  test('a ping is answered with a pong carrying the same payload (RFC 6455 §5.5.3)', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    const client = await h.rawOpened(port);
    for (const payload of [Buffer.alloc(0), Buffer.from('hello'), randomBytes(125)]) {
      await client.ping(payload);
      const pong = await client.readFrame();
      assert.equal(pong.opcode, Opcode.Pong);
      assert.equal(pong.fin, true);
      assert.equal(pong.masked, false);
      assert.deepEqual(pong.payload, payload);
    }
  });

  test('an unsolicited pong is ignored', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    const client = await h.rawOpened(port);
    await client.pong('unsolicited');
    await client.sendText('after');
    const frame = await client.readFrame();
    assert.equal(frame.opcode, Opcode.Text);
    assert.equal(frame.payload.toString(), 'after');
  });

  test('the handler sees the ping and pong payloads as events, and its ping reaches the client', async (t) => {
    const h = new Harness(t);
    const seen: string[] = [];
    const { port } = await h.serve(async (ws) => {
      ws.on('ping', (payload: Buffer) => seen.push(`ping:${payload.toString()}`));
      ws.on('pong', (payload: Buffer) => seen.push(`pong:${payload.toString()}`));
      await ws.accept();
      await ws.ping(Buffer.from('from-server'));
      for await (const message of ws) await ws.send(message);
    });
    const client = await h.rawOpened(port);
    const ping = await client.readFrame();
    assert.equal(ping.opcode, Opcode.Ping);
    assert.equal(ping.payload.toString(), 'from-server');
    await client.pong(ping.payload);
    await client.ping('from-client');
    await client.sendText('sync');
    assert.equal((await client.readFrame()).opcode, Opcode.Pong);
    assert.equal((await client.readFrame()).payload.toString(), 'sync');
    assert.deepEqual(seen, ['pong:from-server', 'ping:from-client']);
  });
});

describe('send helpers and request info', () => {
  test('sendJson/receiveJson, receiveText, receiveBytes', async (t) => {
    const h = new Harness(t);
    const { url } = await h.serve(async (ws) => {
      await ws.accept();
      const value = await ws.receiveJson();
      await ws.sendJson({ got: value });
      const text = await ws.receiveText();
      await ws.sendText(text.toUpperCase());
      const bytes = await ws.receiveBytes();
      await ws.sendBytes(Buffer.from([...bytes].reverse()));
    });
    const client = await h.client(url);
    client.send(JSON.stringify({ a: [1, 2] }));
    assert.deepEqual(JSON.parse(String(await client.next())), { got: { a: [1, 2] } });
    client.send('shout');
    assert.equal(await client.next(), 'SHOUT');
    client.send(Uint8Array.of(1, 2, 3));
    assert.deepEqual(await client.next(), Buffer.from([3, 2, 1]));
    assert.equal((await client.waitClosed()).code, 1000);
  });

  test('path parameters, query, headers, cookies and remote address reach the handler', async (t) => {
    const h = new Harness(t);
    const server = new WebSocketServer().route('/rooms/{room}/users/{user}', async (ws) => {
      await ws.accept();
      await ws.sendJson({
        url: ws.url,
        path: ws.path,
        params: ws.params,
        query: Object.fromEntries(ws.query),
        custom: ws.headers['x-custom'],
        cookies: { ...ws.cookies },
        remoteAddress: ws.remoteAddress,
      });
    });
    const { port } = await h.listen(server);
    const client = await h.rawOpened(port, {
      path: '/rooms/caf%C3%A9%20ol%C3%A9/users/42?q=a%20b&n=1',
      headers: { 'X-Custom': 'yes', Cookie: 'session=abc; theme="dark"; session=second' },
    });
    const frame = await client.readFrame();
    assert.deepEqual(JSON.parse(frame.payload.toString()), {
      url: '/rooms/caf%C3%A9%20ol%C3%A9/users/42?q=a%20b&n=1',
      path: '/rooms/caf%C3%A9%20ol%C3%A9/users/42',
      params: { room: 'café olé', user: '42' },
      query: { q: 'a b', n: '1' },
      custom: 'yes',
      cookies: { session: 'abc', theme: 'dark' },
      remoteAddress: '127.0.0.1',
    });
    assert.deepEqual(await client.expectClose(), { code: 1000, reason: '' });
  });

  test('a malformed percent-encoding in a path parameter is refused with 400', async (t) => {
    const h = new Harness(t);
    const server = new WebSocketServer().route('/rooms/{room}', async (ws) => {
      await ws.accept();
    });
    const { port } = await h.listen(server);
    const client = await h.raw(port, { path: '/rooms/%E0%A4%A' });
    assert.equal(client.response?.status, 400);
    await client.waitForEnd();
  });

  test('broadcast reaches every open client with one encoded frame', async (t) => {
    const h = new Harness(t);
    const { url, server } = await h.serve(async (ws) => {
      await ws.accept();
      for await (const message of ws) await ws.send(message);
    });
    const clients = await Promise.all([h.client(`${url}/a`), h.client(`${url}/b`), h.client(`${url}/c`)]);
    // Make sure every server-side connection is open before broadcasting.
    for (const client of clients) {
      client.send('ready');
      assert.equal(await client.next(), 'ready');
    }
    assert.deepEqual(server.broadcast('news'), { sent: 3, skipped: 0, closed: 0 });
    assert.deepEqual(server.broadcast(Uint8Array.of(7, 7)), { sent: 3, skipped: 0, closed: 0 });
    for (const client of clients) {
      assert.equal(await client.next(), 'news');
      assert.deepEqual(await client.next(), Buffer.from([7, 7]));
    }
    assert.deepEqual(server.broadcast('only-b', (ws) => ws.path === '/b'), { sent: 1, skipped: 0, closed: 0 });
    assert.equal(await clients[1]!.next(), 'only-b');
    clients[1]!.send('sync');
    assert.equal(await clients[1]!.next(), 'sync');
    // The others got nothing more: their next message is the echo of this one.
    for (const client of [clients[0]!, clients[2]!]) {
      client.send('sync');
      assert.equal(await client.next(), 'sync');
    }
  });
});
