/**
 * The public surface, pinned (like python websockets' test_exports): the runtime names of the root
 * (the user API) and of `rfc6455/protocol` (the sans-I/O building blocks), which building blocks stay
 * off the root, and that a connection handed to a handler exposes no way to write raw frames or reach
 * the socket. A name added or removed here is a deliberate change to the API (and to README.md).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from '../src/index.ts';
import { deferred, Harness, until } from './helpers/server.ts';

/** What `rfc6455` exports at runtime (type-only exports do not appear), sorted. */
const ROOT = [
  'CloseCode',
  'HandshakeError',
  'InternalError',
  'InvalidPayloadData',
  'Message',
  'MessageTooBig',
  'PolicyViolation',
  'PreparedMessage',
  'ProtocolError',
  'SlowConsumer',
  'UnsupportedData',
  'WebSocket',
  'WebSocketDisconnect',
  'WebSocketException',
  'WebSocketServer',
  'clusterBackplane',
  'connect',
  'prepareMessage',
  'redisBackplane',
  'runWorkers',
  'serve',
];

/** What `rfc6455/protocol` exports at runtime, sorted. */
const PROTOCOL = [
  'CloseCode',
  'DEFAULT_MAX_FRAME_SIZE',
  'DEFAULT_MAX_MESSAGE_SIZE',
  'FrameParser',
  'Message',
  'Opcode',
  'PERMESSAGE_DEFLATE',
  'PerMessageDeflate',
  'PreparedMessage',
  'Protocol',
  'Utf8Validator',
  'WEBSOCKET_GUID',
  'acceptDeflateResponse',
  'acceptKey',
  'acceptResponse',
  'clientRequest',
  'decodeClose',
  'deflateOffer',
  'encodeClose',
  'encodeFragmented',
  'encodeFrame',
  'encodeTextFrame',
  'formatExtension',
  'generateKey',
  'isSendableCloseCode',
  'isValidUtf8',
  'isWebSocketConnect',
  'mask',
  'negotiateDeflate',
  'parseConnectRequest',
  'parseExtensionHeader',
  'parseUpgradeRequest',
  'parseWebSocketUrl',
  'prepareMessage',
  'refusalResponse',
  'resolveDeflateOptions',
  'selectSubprotocol',
  'serializeResponse',
  'streamResponseHeaders',
  'unmask',
  'verifyResponse',
];

/** Building blocks that belong on the subpath only. */
const BUILDING_BLOCKS = ['Protocol', 'FrameParser', 'mask', 'encodeFrame', 'acceptKey', 'parseUpgradeRequest'];

/** Members of the connection's internals that would let a user write raw frames or drive the socket. */
const RAW_WRITERS = ['writeFrame', 'writeFrameSegments', 'endTransport', 'sendPrepared'];

/** Fields of the connection's internals that must not be reachable as instance properties. */
const INTERNAL_FIELDS = ['socket', 'registry', 'awaitingPong', 'driver'];

describe('module exports', () => {
  test('the root exports exactly the user API', async () => {
    const root = await import('../src/index.ts');
    assert.deepEqual(Object.keys(root).sort(), ROOT);
  });

  test('rfc6455/protocol exports exactly the building blocks', async () => {
    const protocol = await import('../src/protocol/index.ts');
    assert.deepEqual(Object.keys(protocol).sort(), PROTOCOL);
  });

  test('the building blocks are on the subpath and not on the root', async () => {
    const root: Record<string, unknown> = await import('../src/index.ts');
    const protocol: Record<string, unknown> = await import('../src/protocol/index.ts');
    for (const name of BUILDING_BLOCKS) {
      assert.equal(name in root, false, `the root does not export ${name}`);
      assert.equal(typeof protocol[name], 'function', `rfc6455/protocol exports ${name}`);
    }
  });

  test('names on both entry points are the same objects (one module graph)', async () => {
    const root: Record<string, unknown> = await import('../src/index.ts');
    const protocol: Record<string, unknown> = await import('../src/protocol/index.ts');
    const shared = ROOT.filter((name) => PROTOCOL.includes(name));
    assert.deepEqual(shared, ['CloseCode', 'Message', 'PreparedMessage', 'prepareMessage']);
    for (const name of shared) assert.equal(root[name], protocol[name], name);
  });
});

describe('the connection a handler gets', () => {
  test('WebSocket.prototype has no method to write raw frames or drive the socket', () => {
    for (const name of RAW_WRITERS) {
      assert.equal(name in WebSocket.prototype, false, `WebSocket.prototype.${name}`);
    }
  });

  test('a live connection has no raw writer and no socket, registry, awaitingPong or driver property', async (t) => {
    const h = new Harness(t);
    const captured = deferred<WebSocket>();
    const { url } = await h.serve(async (ws) => {
      captured.resolve(ws);
      await ws.accept();
      for await (const message of ws) await ws.send(message);
    });
    const client = await h.client(url);
    const ws = await captured.promise;
    assert.ok(ws instanceof WebSocket);
    assert.equal(ws.state, 'open');
    const keys = Object.keys(ws);
    for (const name of RAW_WRITERS) {
      assert.equal(Object.hasOwn(ws, name), false, `own property ${name}`);
      assert.equal(name in ws, false, `${name} in ws`);
    }
    for (const name of INTERNAL_FIELDS) {
      assert.equal(keys.includes(name), false, `Object.keys(ws) includes ${name}`);
      assert.equal(name in ws, false, `${name} in ws`);
    }
    // Nothing reachable from the instance's own properties holds the socket or a frame writer.
    for (const key of keys) {
      const value: unknown = (ws as unknown as Record<string, unknown>)[key];
      if (typeof value !== 'object' || value === null) continue;
      for (const name of [...RAW_WRITERS, 'write', 'cork']) {
        assert.equal(name in value, false, `ws.${key}.${name} is reachable`);
      }
    }
    // Still a working connection after the inspection.
    client.send('ping?');
    assert.equal(await client.next(), 'ping?');
  });
});

describe('the server', () => {
  test('clients counts a connection while it is open and drops it once it has closed', async (t) => {
    const h = new Harness(t);
    const { server, url } = await h.serve(async (ws) => {
      await ws.accept();
      for await (const message of ws) await ws.send(message);
    });
    assert.equal(server.clients.size, 0);
    const client = await h.client(url);
    client.send('hello');
    assert.equal(await client.next(), 'hello');
    assert.equal(server.clients.size, 1);
    const [ws] = server.clients;
    assert.ok(ws instanceof WebSocket);
    client.close(1000);
    await client.waitClosed();
    await until(() => server.clients.size === 0, 2000, 'the server forgets the closed connection');
    assert.equal(ws.state, 'closed');
  });

  test('WebSocketServer.prototype exposes clients as a read-only accessor', () => {
    const descriptor = Object.getOwnPropertyDescriptor(WebSocketServer.prototype, 'clients');
    assert.ok(descriptor?.get !== undefined, 'clients is a getter');
    assert.equal(descriptor.set, undefined, 'clients cannot be assigned');
  });
});
