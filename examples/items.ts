/**
 * FastAPI's WebSocket example, in rfc6455: a route with a path parameter, a session cookie or a token
 * query parameter required before the handshake is accepted, and a WebSocketException raised to refuse.
 *
 *   node --import tsx examples/items.ts        # then connect to ws://127.0.0.1:8000/items/foo/ws?token=abc
 */
import { WebSocketException, WebSocketServer, CloseCode, type WebSocket } from '../src/index.ts';

/** The handler for `/items/{item_id}/ws`. */
export async function itemsHandler(ws: WebSocket): Promise<void> {
  const session = ws.cookies['session'] ?? ws.query.get('token');
  if (session === undefined || session === null) {
    // Before accept() this refuses the handshake: the client sees HTTP 403.
    throw new WebSocketException(CloseCode.PolicyViolation);
  }
  await ws.accept();
  await ws.sendText(`Session cookie or query token value is: ${session}`);
  const q = ws.query.get('q');
  if (q !== null) await ws.sendText(`Query parameter q is: ${q}`);
  for (;;) {
    const data = await ws.receiveText();
    await ws.sendText(`Message text was: ${data}, for item ID: ${ws.params['item_id']}`);
  }
}

/** A server with the items route, as the tests and `main` below use it. */
export function createItemsServer(): WebSocketServer {
  return new WebSocketServer().route('/items/{item_id}/ws', itemsHandler);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = createItemsServer();
  const { port } = await server.listen({ port: 8000 });
  console.log(`items example on ws://127.0.0.1:${port}/items/{item_id}/ws`);
  process.on('SIGINT', () => void server.close().then(() => process.exit(0)));
}
