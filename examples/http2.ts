/**
 * WebSockets over HTTP/2 (RFC 8441) next to a page, on one port: a `node:http2` secure server with
 * `allowHTTP1` serves the page (HTTP/2 to browsers, HTTP/1.1 to the rest) and the WebSocketServer
 * attached to it serves `/echo` both ways, as an extended CONNECT stream on the page's own HTTP/2
 * connection, or as an HTTP/1.1 upgrade. Uses the test certificate (test/fixtures, for localhost).
 *
 *   node --import tsx examples/http2.ts            # https://localhost:8443
 *   node --import tsx examples/http2.ts 9443
 *
 * Open the address in Chromium and accept the self-signed certificate (or start it with
 * --ignore-certificate-errors): the page shows "HTTP/2.0" for the socket, and every reply says so too.
 */
import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { WebSocketServer } from '../src/index.ts';

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>rfc6455 over HTTP/2</title>
<pre id="log"></pre>
<script>
  const log = (line) => (document.getElementById('log').textContent += line + '\\n');
  const ws = new WebSocket('wss://' + location.host + '/echo');
  ws.onopen = () => ws.send('hello');
  ws.onmessage = (event) => { log(event.data); ws.close(1000, 'done'); };
  ws.onclose = (event) => log('closed ' + event.code);
</script>
`;

/** Starts the page and the WebSocket route on `port` (0: any free one) of 127.0.0.1. */
export async function startExample(port: number): Promise<{ server: Http2SecureServer; wss: WebSocketServer }> {
  const server = createSecureServer(
    {
      key: readFileSync(new URL('../test/fixtures/key.pem', import.meta.url)),
      cert: readFileSync(new URL('../test/fixtures/cert.pem', import.meta.url)),
      allowHTTP1: true,
    },
    (request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(PAGE);
    },
  );
  const wss = new WebSocketServer().route('/echo', async (ws) => {
    await ws.accept();
    for await (const message of ws) await ws.send(`${message.text} (over HTTP/${ws.httpVersion})`);
  });
  // Turns on SETTINGS_ENABLE_CONNECT_PROTOCOL and takes extended CONNECT streams for /echo.
  wss.attach(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, wss };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { server, wss } = await startExample(Number(process.argv[2] ?? 8443));
  const { port } = server.address() as { port: number };
  console.log(`https://localhost:${port}/ (page and wss://localhost:${port}/echo, HTTP/2 and HTTP/1.1)`);
  const stop = async (): Promise<void> => {
    await wss.close();
    server.close();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
