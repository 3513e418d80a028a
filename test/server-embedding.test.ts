/**
 * Embedding in an existing HTTP(S) server, on one port: attach() next to normal routes, the
 * unmatched-upgrade policy, handleUpgrade() called directly, frames arriving with the upgrade request
 * (`head`), and wss:// over an https.Server with the self-signed certificate in test/fixtures/.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { WebSocketServer, type Handler } from '../src/index.ts';
import { encodeFrame, Opcode, upgradeRequest } from './helpers/raw-client.ts';
import { assertRefusal, Harness } from './helpers/server.ts';

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
};

function app(request: IncomingMessage, response: ServerResponse): void {
  if (request.url === '/health') {
    response.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 2 });
    response.end('ok');
  } else {
    response.writeHead(404, { 'Content-Length': 0 });
    response.end();
  }
}

const fixture = (name: string): Buffer => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));

describe('attach() to an http.Server', () => {
  test('normal routes keep working, /ws upgrades, an unknown upgrade path gets 404', async (t) => {
    const h = new Harness(t);
    const { server: http, port } = await h.httpServer(createHttpServer(app));
    const wss = new WebSocketServer().route('/ws', echo).attach(http);
    h.track(wss);

    const health = await h.rawOpen(port);
    await health.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const response = await health.readHttpResponse();
    assert.equal(response.status, 200);
    assert.equal(response.body.toString(), 'ok');

    const node = await h.client(`ws://127.0.0.1:${port}/ws`);
    node.send('over the same port');
    assert.equal(await node.next(), 'over the same port');

    await assertRefusal(await h.raw(port, { path: '/nope' }), 404);
  });

  test('{ unmatched: "ignore" } leaves unknown paths to another upgrade listener', async (t) => {
    const h = new Harness(t);
    const { server: http, port } = await h.httpServer(createHttpServer(app));
    const wss = new WebSocketServer().route('/ws', echo).attach(http, { unmatched: 'ignore' });
    h.track(wss);
    http.on('upgrade', (request: IncomingMessage, socket) => {
      if (request.url === '/ws') return; // handled by rfc6455
      socket.end('HTTP/1.1 418 I am a teapot\r\nContent-Length: 6\r\nConnection: close\r\n\r\nteapot');
    });
    const other = await h.raw(port, { path: '/other' });
    assert.equal(other.response?.status, 418);
    assert.equal(other.response?.body.toString(), 'teapot');
    await other.waitForEnd();
    const ws = await h.rawOpened(port, { path: '/ws' });
    await ws.sendText('mine');
    assert.equal((await ws.readFrame()).payload.toString(), 'mine');
  });

  test('closing the WebSocketServer detaches it and closes its connections; HTTP keeps serving', async (t) => {
    const h = new Harness(t);
    const { server: http, port } = await h.httpServer(createHttpServer(app));
    const wss = new WebSocketServer().route('/ws', echo).attach(http);
    const client = await h.rawOpened(port, { path: '/ws' });
    const closing = wss.close({ timeout: 500 });
    assert.equal((await client.expectClose()).code, 1001);
    await client.close(1001);
    await closing;
    assert.equal(http.listening, true);
    assert.equal(http.listenerCount('upgrade'), 0);
    const health = await h.rawOpen(port);
    await health.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal((await health.readHttpResponse()).status, 200);
  });

  test('handleUpgrade(req, socket, head) called directly', async (t) => {
    const h = new Harness(t);
    const wss = new WebSocketServer().route('/direct', echo);
    h.track(wss);
    const { server: http, port } = await h.httpServer(createHttpServer(app));
    http.on('upgrade', (request, socket, head) => {
      if (request.headers['x-allow'] === 'yes') wss.handleUpgrade(request, socket, head);
      else socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    const denied = await h.raw(port, { path: '/direct' });
    assert.equal(denied.response?.status, 401);
    const client = await h.rawOpened(port, { path: '/direct', headers: { 'X-Allow': 'yes' } });
    await client.sendBinary(Uint8Array.of(9, 8, 7));
    assert.deepEqual([...(await client.readFrame()).payload], [9, 8, 7]);
    await assertRefusal(await h.raw(port, { path: '/elsewhere', headers: { 'X-Allow': 'yes' } }), 404);
  });

  test('frames sent in the same write as the upgrade request (head) are processed', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo);
    const client = await h.rawOpen(port);
    const { request } = upgradeRequest(port);
    await client.write(
      Buffer.concat([
        Buffer.from(request, 'latin1'),
        encodeFrame({ opcode: Opcode.Text, payload: 'early' }),
        encodeFrame({ opcode: Opcode.Ping, payload: 'p' }),
      ]),
    );
    const response = await client.readHttpResponse();
    assert.equal(response.status, 101);
    const frames = [await client.readFrame(), await client.readFrame()];
    assert.deepEqual(
      frames.map((frame) => [frame.opcode, frame.payload.toString()]).sort(),
      [
        [Opcode.Text, 'early'],
        [Opcode.Pong, 'p'],
      ].sort(),
    );
  });
});

describe('wss:// over an https.Server', () => {
  test('TLS raw client: handshake, echo, close', async (t) => {
    const h = new Harness(t);
    const https = createHttpsServer({ key: fixture('key.pem'), cert: fixture('cert.pem') }, app);
    h.trackHttp(https);
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    const port = (https.address() as AddressInfo).port;
    const wss = new WebSocketServer().route('/secure', echo).attach(https);
    h.track(wss);

    const client = await h.rawOpened(port, { path: '/secure', tls: true });
    await client.sendText('secret');
    assert.equal((await client.readFrame()).payload.toString(), 'secret');
    const big = Buffer.alloc(200_000, 3);
    await client.sendBinary(big);
    assert.ok((await client.readFrame()).payload.equals(big));
    await client.close(1000);
    assert.deepEqual(await client.expectClose(), { code: 1000, reason: '' });
    await client.waitForEnd();

    const health = await h.rawOpen(port, { tls: { servername: 'localhost' } });
    await health.write('GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.equal((await health.readHttpResponse()).body.toString(), 'ok');
  });
});
