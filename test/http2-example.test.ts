/**
 * The README's HTTP/2 example (examples/http2.ts) on the wire: the page comes over HTTP/2, a WebSocket
 * opened as an extended CONNECT on the same session echoes "over HTTP/2.0", and an HTTP/1.1 client
 * reaches the same route on the same port with an upgrade.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startExample } from '../examples/http2.ts';
import { connect } from '../src/index.ts';
import { connectOverSession, FIXTURE_CERT, openSession } from './helpers/h2-client.ts';
import { withTimeout } from './helpers/server.ts';

test('examples/http2.ts serves the page and /echo over HTTP/2 and HTTP/1.1 on one port', async (t) => {
  const { server, wss } = await startExample(0);
  const { port } = server.address() as { port: number };
  const session = await openSession(port);
  t.after(async () => {
    // The session first: an HTTP/2 server's close() waits for its sessions to end.
    session.destroy();
    await wss.close();
    await new Promise((resolve) => server.close(resolve));
  });

  const page = session.request({ ':path': '/' });
  page.setEncoding('utf8');
  let html = '';
  for await (const chunk of page) html += chunk as string;
  assert.match(html, /new WebSocket\('wss:\/\/' \+ location\.host \+ '\/echo'\)/);

  const ws = await connectOverSession(session, '/echo');
  await ws.send('hello');
  assert.equal((await withTimeout(ws.receive(), 2000, 'the HTTP/2 echo')).text, 'hello (over HTTP/2.0)');
  await ws.close(1000, 'done');

  const h1 = await connect(`wss://localhost:${port}/echo`, { ca: FIXTURE_CERT, servername: 'localhost' });
  await h1.send('hello');
  assert.equal((await withTimeout(h1.receive(), 2000, 'the HTTP/1.1 echo')).text, 'hello (over HTTP/1.1)');
  await h1.close();
});
