/**
 * The opening handshake over the wire: every refusal with its status line, headers and a complete
 * body followed by the end of the connection; plain HTTP; timeouts; subprotocols and extensions.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HandshakeError, WebSocketServer, type Handler, type WebSocket } from '../src/index.ts';
import { acceptFor } from './helpers/raw-client.ts';
import { assertRefusal, deferred, Harness, sleep, withTimeout } from './helpers/server.ts';

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
};

describe('refusals before the handler runs', () => {
  test('400 for a missing or malformed Sec-WebSocket-Key', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    await assertRefusal(await h.raw(port, { headers: { 'Sec-WebSocket-Key': null } }), 400, /Sec-WebSocket-Key/);
    for (const key of ['abc', 'AAAAAAAAAAAAAAAAAAAAAA', Buffer.alloc(15).toString('base64'), Buffer.alloc(17).toString('base64')]) {
      await assertRefusal(await h.raw(port, { key }), 400, /Sec-WebSocket-Key/);
    }
  });

  test('400 for a missing Host, an Upgrade other than websocket, HTTP/1.0', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    await assertRefusal(await h.raw(port, { headers: { Host: null } }), 400, /Host/);
    await assertRefusal(await h.raw(port, { headers: { Upgrade: 'h2c' } }), 400, /Upgrade/);
    await assertRefusal(await h.raw(port, { httpVersion: '1.0' }), 400, /HTTP\/1\.1/);
  });

  test('missing Upgrade or Connection on the standalone server: a malformed handshake, 400', async (t) => {
    // Node emits 'upgrade' only when both Upgrade and Connection: Upgrade are present; the standalone
    // server still recognises the handshake by its Sec-WebSocket-Key and refuses it with 400.
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    for (const [headers, pattern] of [
      [{ Upgrade: null }, /Upgrade/],
      [{ Connection: null }, /Connection/],
      [{ Connection: 'keep-alive' }, /Connection/],
    ] as const) {
      const response = await assertRefusal(await h.raw(port, { headers }), 400, pattern);
      assert.equal(response.headers['connection'], 'close');
    }
  });

  test('a plain HTTP GET to the standalone server gets 426 with Upgrade and Sec-WebSocket-Version', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    const client = await h.rawOpen(port);
    await client.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    client.response = await client.readHttpResponse();
    const response = await assertRefusal(client, 426, /WebSocket/);
    assert.equal(response.headers['upgrade'], 'websocket');
    assert.equal(response.headers['sec-websocket-version'], '13');
  });

  test('405 with Allow: GET for another method', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    const response = await assertRefusal(await h.raw(port, { method: 'POST', headers: { 'Content-Length': '0' } }), 405);
    assert.equal(response.headers['allow'], 'GET');
  });

  test('426 with Sec-WebSocket-Version: 13 for version 8 or none (RFC 6455 §4.2.2)', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    for (const version of ['8', null]) {
      const response = await assertRefusal(await h.raw(port, { headers: { 'Sec-WebSocket-Version': version } }), 426);
      assert.equal(response.headers['sec-websocket-version'], '13');
      assert.equal(response.headers['upgrade'], 'websocket');
    }
  });

  test('404 when no route matches', async (t) => {
    const h = new Harness(t);
    const { port } = await h.listen(new WebSocketServer().route('/ws', echo));
    await assertRefusal(await h.raw(port, { path: '/other' }), 404);
    await assertRefusal(await h.raw(port, { path: '/ws/extra' }), 404);
    const ok = await h.raw(port, { path: '/ws?x=1' });
    assert.equal(ok.response?.status, 101);
  });

  test('403 for an Origin not in allowedOrigins; listed origins and requests without Origin pass', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { allowedOrigins: ['https://good.example'] });
    await assertRefusal(await h.raw(port, { headers: { Origin: 'https://evil.example' } }), 403, /origin/);
    assert.equal((await h.raw(port, { headers: { Origin: 'https://good.example' } })).response?.status, 101);
    assert.equal((await h.raw(port)).response?.status, 101);
  });

  test('503 beyond maxConnections; a slot frees when a connection closes', async (t) => {
    const h = new Harness(t);
    const { port, server } = await h.serve(echo, { maxConnections: 2 });
    const first = await h.rawOpened(port);
    await h.rawOpened(port);
    await assertRefusal(await h.raw(port), 503);
    first.destroy();
    await withTimeout(
      (async () => {
        while (server.clients.size > 1) await sleep(5);
      })(),
      2000,
      'the closed connection leaving the server',
    );
    assert.equal((await h.raw(port)).response?.status, 101);
  });
});

describe('refusals by the handler and the verify hook', () => {
  test('HandshakeError(401) from verify → 401 with its headers; the handler never runs', async (t) => {
    const h = new Harness(t);
    let handlerRuns = 0;
    const { port } = await h.serve(
      async (ws) => {
        handlerRuns++;
        await ws.accept();
      },
      {
        verify: (ws) => {
          if (ws.headers['authorization'] !== 'Bearer ok') {
            throw new HandshakeError(401, 'login required', { 'WWW-Authenticate': 'Bearer' });
          }
        },
      },
    );
    const response = await assertRefusal(await h.raw(port), 401, 'login required\n');
    assert.equal(response.headers['www-authenticate'], 'Bearer');
    assert.equal(handlerRuns, 0);
    assert.equal((await h.raw(port, { headers: { Authorization: 'Bearer ok' } })).response?.status, 101);
    assert.equal(handlerRuns, 1);
  });

  test('an async verify hook can refuse with any status (429)', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, {
      verify: async () => {
        await sleep(10);
        throw new HandshakeError(429, 'slow down', { 'Retry-After': '5' });
      },
    });
    const response = await assertRefusal(await h.raw(port), 429, 'slow down\n');
    assert.equal(response.headers['retry-after'], '5');
  });

  test('ws.close() before accept → 403 with the reason', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(async (ws) => {
      await ws.close(1008, 'go away');
    });
    await assertRefusal(await h.raw(port), 403, 'go away\n');
  });

  test('handshake timeout: a handler that never accepts → 408 after handshakeTimeout', async (t) => {
    const h = new Harness(t);
    const never = deferred();
    t.after(() => never.resolve());
    const { port } = await h.serve(() => never.promise, { handshakeTimeout: 200 });
    const started = Date.now();
    const client = await h.raw(port);
    const elapsed = Date.now() - started;
    await assertRefusal(client, 408);
    assert.ok(elapsed >= 150 && elapsed < 1500, `408 after ${elapsed} ms`);
  });

  test('handshake timeout on the standalone server: a client sending half the request headers is dropped', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { handshakeTimeout: 300 });
    const client = await h.rawOpen(port, { timeout: 3000 });
    await client.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    const started = Date.now();
    await client.waitForEnd(3000);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 200 && elapsed < 2500, `dropped after ${elapsed} ms`);
    // Node answers 408 when it can; whatever was sent must be an HTTP response, not a 101.
    if (client.buffered > 0) assert.match(client.takeAll().toString('latin1'), /^HTTP\/1\.1 408 /);
  });
});

describe('the 101 response', () => {
  test('carries Upgrade, Connection and the right Sec-WebSocket-Accept; extra accept headers', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(async (ws) => {
      await ws.accept({ headers: { 'Set-Cookie': ['a=1', 'b=2'], 'X-Server': 'rfc6455' } });
    });
    // The key of RFC 6455 §1.3's example.
    const client = await h.raw(port, { key: 'dGhlIHNhbXBsZSBub25jZQ==' });
    const response = client.response!;
    assert.equal(response.statusLine, 'HTTP/1.1 101 Switching Protocols');
    assert.equal(response.headers['upgrade']?.toLowerCase(), 'websocket');
    assert.equal(response.headers['connection']?.toLowerCase(), 'upgrade');
    assert.equal(response.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.equal(acceptFor('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.equal(response.headers['set-cookie'], 'a=1, b=2');
    assert.equal(response.headers['x-server'], 'rfc6455');
    assert.equal(response.headers['sec-websocket-protocol'], undefined);
    assert.equal(response.body.length, 0);
  });

  test('permessage-deflate offered to a server without perMessageDeflate: the 101 has no Sec-WebSocket-Extensions and frames carry no RSV1', async (t) => {
    const h = new Harness(t);
    const { port, url } = await h.serve(echo);
    const client = await h.rawOpened(port, {
      headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits, x-webkit-deflate-frame' },
    });
    assert.equal(client.response?.headers['sec-websocket-extensions'], undefined);
    await client.sendText('plain');
    const frame = await client.readFrame();
    assert.equal(frame.rsv, 0);
    assert.equal(frame.payload.toString(), 'plain');
    // Node's client offers permessage-deflate too and must cope with the refusal.
    const node = await h.client(url);
    assert.equal(node.ws.extensions, '');
    node.send('x'.repeat(1000));
    assert.equal(await node.next(), 'x'.repeat(1000));
  });
});

describe('subprotocols', () => {
  test('the handler accepts one of ws.subprotocols → Sec-WebSocket-Protocol in the 101', async (t) => {
    const h = new Harness(t);
    let offered: readonly string[] = [];
    const { port, url } = await h.serve(async (ws) => {
      offered = ws.subprotocols;
      await ws.accept({ subprotocol: ws.subprotocols.includes('json') ? 'json' : null });
      await ws.send(String(ws.subprotocol));
    });
    const client = await h.rawOpened(port, { protocols: ['xml', 'json'] });
    assert.deepEqual(offered, ['xml', 'json']);
    assert.equal(client.response?.headers['sec-websocket-protocol'], 'json');
    assert.equal((await client.readFrame()).payload.toString(), 'json');
    const node = await h.client(url, ['xml', 'json']);
    assert.equal(node.ws.protocol, 'json');
  });

  test('the subprotocols option picks the client’s most preferred supported one', async (t) => {
    const h = new Harness(t);
    const { port, url } = await h.serve(
      async (ws) => {
        await ws.accept();
        await ws.send(String(ws.subprotocol));
      },
      { subprotocols: ['chat.v2', 'chat.v1'] },
    );
    const client = await h.rawOpened(port, { protocols: ['chat.v1', 'chat.v2'] });
    assert.equal(client.response?.headers['sec-websocket-protocol'], 'chat.v1');
    assert.equal((await client.readFrame()).payload.toString(), 'chat.v1');
    const none = await h.rawOpened(port, { protocols: ['other'] });
    assert.equal(none.response?.headers['sec-websocket-protocol'], undefined);
    assert.equal((await none.readFrame()).payload.toString(), 'null');
    const node = await h.client(url, ['chat.v2']);
    assert.equal(node.ws.protocol, 'chat.v2');
    assert.equal(await node.next(), 'chat.v2');
  });

  test('accepting a subprotocol the client did not offer is a handler error → 500, onError', async (t) => {
    const h = new Harness(t);
    const errors: unknown[] = [];
    const { port } = await h.serve(
      async (ws) => {
        await ws.accept({ subprotocol: 'not-offered' });
      },
      { onError: (error) => errors.push(error) },
    );
    await assertRefusal(await h.raw(port, { protocols: ['a'] }), 500);
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof TypeError);
  });

  test('400 for a Sec-WebSocket-Protocol value that is not a token', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    await assertRefusal(await h.raw(port, { headers: { 'Sec-WebSocket-Protocol': 'a b, c' } }), 400);
  });
});

describe('the WebSocket object before accept', () => {
  test('receive and send before accept are usage errors (TypeError), reported as 500', async (t) => {
    const h = new Harness(t);
    const errors: unknown[] = [];
    const seen = deferred<string[]>();
    const { port } = await h.serve(
      async (ws: WebSocket) => {
        const names: string[] = [];
        for (const attempt of [() => ws.receive(), () => ws.send('x')]) {
          await attempt().catch((error: unknown) => names.push((error as Error).name));
        }
        seen.resolve(names);
        assert.equal(ws.state, 'connecting');
        await ws.receive();
      },
      { onError: (error) => errors.push(error) },
    );
    await assertRefusal(await h.raw(port), 500);
    assert.deepEqual(await seen.promise, ['TypeError', 'TypeError']);
    assert.equal(errors.length, 1);
  });
});
