/**
 * The seed example (FastAPI's WebSocket tutorial) from examples/items.ts, over the wire: route
 * `/items/{item_id}/ws`, a `session` cookie or a `token` query parameter required before accept (else
 * WebSocketException(1008) → HTTP 403), then a greeting, the `q` parameter, and an answer per message.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createItemsServer } from '../examples/items.ts';
import { assertRefusal, Harness } from './helpers/server.ts';

describe('examples/items.ts: /items/{item_id}/ws', () => {
  test('without a session cookie or token query parameter → HTTP 403', async (t) => {
    const h = new Harness(t);
    const { port } = await h.listen(createItemsServer());
    await assertRefusal(await h.raw(port, { path: '/items/foo/ws' }), 403);
    await assertRefusal(await h.raw(port, { path: '/items/foo/ws?q=1', headers: { Cookie: 'other=1' } }), 403);
  });

  test('an unknown path → HTTP 404', async (t) => {
    const h = new Harness(t);
    const { port } = await h.listen(createItemsServer());
    await assertRefusal(await h.raw(port, { path: '/items/ws?token=abc' }), 404);
  });

  test('with a token query parameter and q: greeting, q, then one answer per message (Node client)', async (t) => {
    const h = new Harness(t);
    const { url } = await h.listen(createItemsServer());
    const client = await h.client(`${url}/items/foo/ws?token=some-token&q=3`);
    assert.equal(await client.next(), 'Session cookie or query token value is: some-token');
    assert.equal(await client.next(), 'Query parameter q is: 3');
    client.send('Hello WebSocket');
    assert.equal(await client.next(), 'Message text was: Hello WebSocket, for item ID: foo');
    client.send('again');
    assert.equal(await client.next(), 'Message text was: again, for item ID: foo');
    client.close(1000);
    const closed = await client.waitClosed();
    assert.equal(closed.code, 1000);
    assert.equal(closed.wasClean, true);
  });

  test('with a session cookie and no q; the item id is percent-decoded (raw client)', async (t) => {
    const h = new Harness(t);
    const { port } = await h.listen(createItemsServer());
    const client = await h.rawOpened(port, { path: '/items/caf%C3%A9/ws', headers: { Cookie: 'session=cookie-value' } });
    assert.equal((await client.readFrame()).payload.toString(), 'Session cookie or query token value is: cookie-value');
    await client.sendText('hi');
    assert.equal((await client.readFrame()).payload.toString(), 'Message text was: hi, for item ID: café');
    // The client leaves: the handler's receiveText raises WebSocketDisconnect and nothing more is sent.
    await client.close(1000, 'bye');
    assert.deepEqual(await client.expectClose(), { code: 1000, reason: '' });
    await client.waitForEnd();
    assert.equal(client.buffered, 0);
  });

  test('a binary message → close 1003 (receiveText)', async (t) => {
    const h = new Harness(t);
    const { port } = await h.listen(createItemsServer());
    const client = await h.rawOpened(port, { path: '/items/7/ws?token=t' });
    await client.readFrame();
    await client.sendBinary(Uint8Array.of(1, 2));
    assert.equal((await client.expectClose()).code, 1003);
  });
});
