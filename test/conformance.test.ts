/**
 * The Autobahn conformance suite in `npm test`: the quick selection (every section, small sizes, the
 * deliberate waits shortened) against an in-process echo server, its sections 1-7 again over HTTP/2
 * (RFC 8441: one session, an extended CONNECT stream per case), and the same selection the other way
 * round against our client (the replay as the server, as Autobahn's fuzzingserver), each case OK as
 * expected-results.json requires; the HTTP/2 grading against raw HTTP/2 servers that end a stream
 * wrongly; the replay client's permessage-deflate (negotiation, codec, window check) against zlib and
 * `ws`, and the replay server's acceptance of offers; and `autobahn:check` on small synthetic Autobahn
 * reports.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { constants as http2Constants, createSecureServer, type Http2SecureServer, type ServerHttp2Stream } from 'node:http2';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { constants, createDeflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import { WebSocketServer as WsServer } from 'ws';
import { CORPORA, loadCorpus, Slicer } from '../autobahn/cases/compression-corpora.ts';
import { ALL_CASES, SECTIONS, sectionOf } from '../autobahn/cases/index.ts';
import { checkReport, checkReportDir, formatCheck, main as checkMain } from '../autobahn/check.ts';
import { DeflateCodec } from '../autobahn/deflate-codec.ts';
import { farthestDistance } from '../autobahn/deflate-distance.ts';
import {
  acceptOffers,
  formatOffers,
  InvalidExtensionOffer,
  InvalidExtensionResponse,
  mirrorOffer,
  negotiate,
  parseExtensionList,
  readOffers,
  type DeflateOffer,
  type DeflateParameters,
} from '../autobahn/deflate-negotiation.ts';
import { loadExpectedResults, parseExpectedResults } from '../autobahn/expected.ts';
import { closeHttp2Session, FIXTURE_TLS, openHttp2Session, startHttp2EchoServer, type SessionWatch } from '../autobahn/http2.ts';
import { matchesCasePattern, passes, runCase, type CaseResult, type ConformanceCase } from '../autobahn/harness.ts';
import { findRegressions, runSuite, selectCases, startEchoServer } from '../autobahn/suite.ts';
import { echoClient as echoClientFor, startClientTestee, type ClientTestee, type TesteeClient } from '../autobahn/testee.ts';
import { serve, type WebSocketServer } from '../src/index.ts';
import { acceptKey } from '../src/protocol/index.ts';
import { compress, FLUSH_TAIL, flushThrough, inflate } from './helpers/deflate.ts';
import { buildFrame, readFrames, serverFrame } from './helpers/frames.ts';
import { until } from './helpers/server.ts';

const expected = loadExpectedResults();

describe('Autobahn conformance, quick selection, against the echo server', () => {
  const quick = selectCases({ quick: true });
  let server: WebSocketServer;
  let results: CaseResult[] = [];

  before(async () => {
    const started = await startEchoServer();
    server = started.server;
    results = await runSuite(quick, { target: started.target, timeScale: 0.25 });
  });

  after(async () => {
    await server.close({ timeout: 1000 });
  });

  test('the quick selection covers every section and runs in under 30 s', () => {
    const sections = new Set(quick.map((c) => sectionOf(c.id)));
    assert.deepEqual([...sections].sort(), Object.keys(SECTIONS).sort());
    const total = results.reduce((sum, r) => sum + r.duration, 0);
    assert.ok(total < 30_000, `the quick cases took ${total} ms`);
  });

  for (const section of Object.keys(SECTIONS)) {
    test(`section ${section} (${SECTIONS[section]}): every case as expected-results.json requires`, () => {
      const mine = results.filter((r) => sectionOf(r.id) === section);
      assert.ok(mine.length > 0);
      const wrong = mine
        .filter((r) => !passes(r, expected.cases.get(r.id) ?? []))
        .map((r) => `${r.id}: ${r.behavior} / close ${r.behaviorClose} (${r.result} ${r.resultClose})`);
      assert.deepEqual(wrong, []);
    });
  }

  test('no regression and every case is listed in expected-results.json', () => {
    assert.deepEqual(findRegressions(results, expected), []);
    for (const c of selectCases()) assert.ok(expected.cases.has(c.id), `${c.id} is not listed`);
    assert.equal(expected.cases.size, selectCases().length);
  });
});

describe('Autobahn conformance over HTTP/2, quick selection of sections 1-7, against the echo server', () => {
  // Sections 1-7 are framing, identical on a stream; one session carries every case (autobahn/http2.ts).
  const sections = ['1', '2', '3', '4', '5', '6', '7'];
  const quick = selectCases({ quick: true }).filter((c) => sections.includes(sectionOf(c.id)));
  let server: WebSocketServer;
  let watch: SessionWatch;
  let results: CaseResult[] = [];

  before(async () => {
    const started = await startHttp2EchoServer();
    server = started.server;
    const opened = await openHttp2Session(started.port);
    watch = opened.watch;
    results = await runSuite(quick, { http2: opened.target, timeScale: 0.25 });
  });

  after(async () => {
    await closeHttp2Session(watch.session);
    await server.close({ timeout: 1000 });
  });

  test('every case is as expected-results.json requires: the file HTTP/1.1 is held to', () => {
    assert.ok(quick.length > 200, `${quick.length} cases`);
    assert.deepEqual([...new Set(results.map((r) => sectionOf(r.id)))], sections);
    const wrong = results
      .filter((r) => !passes(r, expected.cases.get(r.id) ?? []))
      .map((r) => `${r.id}: ${r.behavior} / close ${r.behaviorClose} (${r.result} ${r.resultClose}; stream ${r.stream})`);
    assert.deepEqual(wrong, []);
    assert.deepEqual(findRegressions(results, expected), []);
    const total = results.reduce((sum, r) => sum + r.duration, 0);
    assert.ok(total < 30_000, `the quick cases took ${total} ms`);
  });

  test('one session carried every case and survived them all; the server ended every stream with END_STREAM', async () => {
    assert.equal(watch.streams, quick.length);
    assert.equal(watch.problem(), null);
    // Every stream's connection is gone from the server too: none is left open on the shared session.
    await until(() => server.clients.size === 0, 2000, 'the server to forget every stream');
    // RFC 8441 §5: the orderly close is END_STREAM; the server reset no stream, not even after failing one.
    const notEnded = results.filter((r) => r.stream !== 'ended by the server (END_STREAM), then by this client');
    assert.deepEqual(notEnded.map((r) => `${r.id}: ${r.stream}`), []);
  });
});

describe('Autobahn conformance, quick selection, against our client (the replay as the server)', () => {
  const quick = selectCases({ quick: true });
  let testee: ClientTestee;
  let results: CaseResult[] = [];

  before(async () => {
    testee = await startClientTestee();
    results = await runSuite(quick, { testee, timeScale: 0.25 });
  });

  after(async () => {
    await testee.close();
  });

  test('the quick selection runs in under 30 s', () => {
    const total = results.reduce((sum, r) => sum + r.duration, 0);
    assert.ok(total < 30_000, `the quick cases took ${total} ms`);
  });

  for (const section of Object.keys(SECTIONS)) {
    test(`section ${section} (${SECTIONS[section]}): every case as expected-results.json requires`, () => {
      const mine = results.filter((r) => sectionOf(r.id) === section);
      assert.ok(mine.length > 0);
      const wrong = mine
        .filter((r) => !passes(r, expected.cases.get(r.id) ?? []))
        .map((r) => `${r.id}: ${r.behavior} / close ${r.behaviorClose} (${r.result} ${r.resultClose}; client: ${r.testee})`);
      assert.deepEqual(wrong, []);
    });
  }

  test('no regression; the client offers permessage-deflate and gets it in sections 12 and 13 only', () => {
    assert.deepEqual(findRegressions(results, expected), []);
    for (const r of results) {
      const compressed = sectionOf(r.id) === '12' || sectionOf(r.id) === '13';
      assert.equal(r.extension !== null, compressed, r.id);
    }
    // 13.3 asks the client for a 512-byte window: the client must answer with it (and is held to it).
    assert.match(results.find((r) => r.id === '13.3.1')!.extension!, /client_max_window_bits=9/);
  });
});

const byId = (id: string): ConformanceCase => ALL_CASES.find((c) => c.id === id)!;

/**
 * A TCP server that answers the opening handshake (with `extensions` as its Sec-WebSocket-Extensions
 * answer, when given), then hands the socket to `then`.
 */
async function rawServer(then: (socket: Socket) => void, extensions?: string): Promise<Server> {
  const server = createServer((socket) => {
    let head = '';
    socket.on('error', () => undefined);
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? '';
      const extensionHeader = extensions === undefined ? '' : `Sec-WebSocket-Extensions: ${extensions}\r\n`;
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n${extensionHeader}\r\n`,
      );
      then(socket);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
const portOf = (server: Server): number => (server.address() as AddressInfo).port;
const fast = { closeHandshake: 200, serverDrop: 200 };

describe('the grading catches a misbehaving server', () => {

  test('a wrong echo fails the echo cases; pings still pass', async (t) => {
    const server = await serve(async (ws) => {
      await ws.accept();
      for await (const m of ws) await ws.send(m.binary ? m : 'not the echo');
    }, { port: 0 });
    t.after(() => server.close({ timeout: 100 }));
    const target = { host: '127.0.0.1', port: server.address()!.port };
    const echo = await runCase(byId('1.1.2'), { target });
    // No echo to match: the kill timer closes with 1001 (Autobahn with failByDrop false), which the
    // server echoes, so the close is graded too.
    assert.deepEqual([echo.behavior, echo.behaviorClose, echo.failedByMe, echo.localCloseCode], ['FAILED', 'WRONG CODE', true, 1001]);
    assert.equal((await runCase(byId('2.2'), { target })).behavior, 'OK');
  });

  test('a server that never closes TCP is unclean; one that ignores the close is caught by the timeouts', async (t) => {
    // Answers a close frame with a close frame (1000) but keeps the TCP connection open.
    const lingering = await rawServer((socket) => socket.on('data', (chunk) => {
      if ((chunk[0]! & 0x0f) === 0x8) socket.write(Buffer.of(0x88, 0x02, 0x03, 0xe8));
    }));
    const silent = await rawServer(() => undefined);
    t.after(() => {
      lingering.close();
      silent.close();
    });
    const unclean = await runCase(byId('7.3.3'), { target: { host: '127.0.0.1', port: portOf(lingering) }, timeouts: fast });
    assert.deepEqual([unclean.behaviorClose, unclean.remoteCloseCode, unclean.wasServerConnectionDropTimeout], ['UNCLEAN', 1000, true]);
    const ignored = await runCase(byId('7.3.3'), { target: { host: '127.0.0.1', port: portOf(silent) }, timeouts: fast });
    assert.deepEqual([ignored.behaviorClose, ignored.wasCloseHandshakeTimeout, ignored.droppedByMe], ['UNCLEAN', true, true]);
  });

  test('a wrong close code fails section 7; a masked or invalid frame from the server fails any case', async (t) => {
    // Answers every close frame with 1000, whatever its code.
    const careless = await rawServer((socket) => socket.on('data', (chunk) => {
      if ((chunk[0]! & 0x0f) === 0x8) socket.end(Buffer.of(0x88, 0x02, 0x03, 0xe8));
    }));
    // Sends a masked frame.
    const masking = await rawServer((socket) => socket.end(Buffer.of(0x81, 0x81, 1, 2, 3, 4, 0x41 ^ 1)));
    t.after(() => {
      careless.close();
      masking.close();
    });
    const wrongCode = await runCase(byId('7.9.1'), { target: { host: '127.0.0.1', port: portOf(careless) }, timeouts: fast });
    assert.deepEqual([wrongCode.behavior, wrongCode.behaviorClose, wrongCode.remoteCloseCode], ['FAILED', 'WRONG CODE', 1000]);
    const violation = await runCase(byId('3.1'), { target: { host: '127.0.0.1', port: portOf(masking) }, timeouts: fast });
    assert.equal(violation.behavior, 'FAILED');
    assert.match(violation.result, /masked/);
  });
});

/**
 * A raw HTTP/2 server for the grading: answers every extended CONNECT with 200 (or `status`) and answers
 * the client's close frame with a close frame (1000); `then` decides what becomes of the stream after.
 */
async function rawHttp2Server(then: (stream: ServerHttp2Stream) => void, status = 200): Promise<Http2SecureServer> {
  const server = createSecureServer({ ...FIXTURE_TLS, settings: { enableConnectProtocol: true } });
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': status });
    if (status !== 200) {
      stream.end();
      return;
    }
    stream.on('data', (chunk: Buffer) => {
      if ((chunk[0]! & 0x0f) !== 0x8) return;
      stream.write(Buffer.of(0x88, 0x02, 0x03, 0xe8));
      then(stream);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

describe('the grading over HTTP/2 holds the stream to the close of a TCP connection', () => {
  const run = async (t: { after(fn: () => Promise<void>): void }, server: Http2SecureServer, timeouts = fast): Promise<CaseResult> => {
    const { target, watch } = await openHttp2Session((server.address() as AddressInfo).port);
    t.after(async () => {
      await closeHttp2Session(watch.session, 200);
      server.close();
    });
    return runCase(byId('7.3.3'), { http2: target, timeouts });
  };

  test('END_STREAM after the closing handshake is the server closing TCP: a clean close', async (t) => {
    const result = await run(t, await rawHttp2Server((stream) => stream.end()));
    assert.deepEqual([result.behavior, result.behaviorClose, result.wasClean, result.remoteCloseCode], ['OK', 'OK', true, 1000]);
    assert.equal(result.stream, 'ended by the server (END_STREAM), then by this client');
  });

  test('a RST_STREAM instead of END_STREAM is a dropped connection: UNCLEAN where a clean close is required', async (t) => {
    // The close frame goes out first; the reset comes while the client waits for END_STREAM (up to 5 s).
    const server = await rawHttp2Server((stream) => setTimeout(() => stream.destroy(), 50));
    const result = await run(t, server, { closeHandshake: 5000, serverDrop: 5000 });
    assert.deepEqual([result.behaviorClose, result.wasClean, result.remoteCloseCode, result.droppedByMe], ['UNCLEAN', false, 1000, false]);
    assert.match(result.stream!, /^reset by the server \(RST_STREAM/);
  });

  test('a server that never ends the stream is reset by the client (RST_STREAM CANCEL) after the timeout', async (t) => {
    let rstCode: number | undefined;
    const result = await run(t, await rawHttp2Server((stream) => stream.on('close', () => (rstCode = stream.rstCode))));
    assert.deepEqual([result.behaviorClose, result.wasServerConnectionDropTimeout, result.droppedByMe], ['UNCLEAN', true, true]);
    assert.equal(result.stream, 'reset by this client (RST_STREAM CANCEL)');
    await until(() => rstCode !== undefined, 1000, 'the server stream to close');
    assert.equal(rstCode, http2Constants.NGHTTP2_CANCEL);
  });

  test('an extended CONNECT answered with anything but 200 fails the opening handshake', async (t) => {
    const result = await run(t, await rawHttp2Server(() => undefined, 403));
    assert.deepEqual([result.behavior, result.behaviorClose], ['FAILED', 'FAILED']);
    assert.match(result.result, /:status 403/);
  });
});

/** What a raw client under test does with each frame from the server; `end` closes its TCP side. */
type FrameReaction = (frame: ReturnType<typeof readFrames>[number], write: (bytes: Buffer) => void, end: () => void) => void;

/**
 * A client under test on a raw socket, to misbehave on purpose: sends the handshake `headers` make
 * (a valid one by default), then hands every frame of the server to `react`. Its outcome's summary is
 * the server's status line.
 */
function rawClient(react: FrameReaction, headers?: (key: string) => string): TesteeClient {
  return (url, signal) =>
    new Promise((resolve) => {
      const target = new URL(url);
      const socket = netConnect({ host: target.hostname, port: Number(target.port) });
      const key = randomBytes(16).toString('base64');
      let pending = Buffer.alloc(0);
      let status: string | null = null;
      socket.on('error', () => undefined);
      signal.addEventListener('abort', () => socket.destroy(), { once: true });
      socket.on('close', () => resolve({ summary: status ?? 'no answer', problem: null }));
      socket.write(
        `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\n` +
          (headers?.(key) ?? `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`) +
          '\r\n',
      );
      socket.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        if (status === null) {
          const end = pending.indexOf('\r\n\r\n');
          if (end < 0) return;
          status = pending.subarray(0, pending.indexOf('\r\n')).toString('latin1');
          pending = pending.subarray(end + 4);
        }
        let frames;
        try {
          frames = readFrames(pending);
        } catch {
          return; // a frame is still arriving
        }
        pending = Buffer.alloc(0);
        for (const frame of frames) react(frame, (bytes) => socket.write(bytes), () => socket.end());
      });
    });
}

/** Echoes every frame masked; answers a close frame with 1000; `impatient` then closes TCP itself. */
const echoing = (impatient: boolean, masked = true): FrameReaction => (frame, write, end) => {
  if (frame.opcode !== 0x8) {
    write(buildFrame({ opcode: frame.opcode, payload: frame.payload, ...(masked ? {} : { maskKey: null }) }));
    return;
  }
  write(buildFrame({ opcode: 0x8, payload: Buffer.of(0x03, 0xe8) }));
  if (impatient) end();
};

describe('the grading against a client catches a misbehaving client', () => {
  const run = async (t: { after(fn: () => Promise<void>): void }, client: TesteeClient, id: string, closeGrace = 10): Promise<CaseResult> => {
    const testee = await startClientTestee(client);
    t.after(() => testee.close());
    return runCase(byId(id), { testee, timeouts: { ...fast, closeGrace } });
  };

  test('a raw client that behaves passes; one that sends an unmasked frame fails', async (t) => {
    const good = await run(t, rawClient(echoing(false)), '1.1.2');
    assert.deepEqual([good.behavior, good.behaviorClose, good.wasClean, good.remoteCloseCode], ['OK', 'OK', true, 1000]);
    const unmasked = await run(t, rawClient(echoing(false, false)), '1.1.2');
    assert.equal(unmasked.behavior, 'FAILED');
    assert.match(unmasked.result, /Protocol violation by the client: .*client frame is not masked/);
  });

  test('a client that closes TCP right after the closing handshake is UNCLEAN (RFC 6455 §7.1.1)', async (t) => {
    // 50 ms of grace: the client's FIN follows its close frame at once, well within it.
    const result = await run(t, rawClient(echoing(true)), '1.1.2', 50);
    assert.deepEqual([result.behavior, result.behaviorClose, result.wasClean], ['OK', 'UNCLEAN', false]);
    assert.match(result.wasNotCleanReason ?? '', /instead of waiting for the server to close it/);
  });

  test('a bad opening handshake or offer is answered with 400 and fails the case', async (t) => {
    const version = await run(
      t,
      rawClient(echoing(false), (key) => `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 8\r\n`),
      '1.1.1',
    );
    assert.equal(version.behavior, 'FAILED');
    assert.match(version.result, /Sec-WebSocket-Version is \["8"\], not 13 \(client: HTTP\/1\.1 400 Bad Request\)/);
    const offer = await run(
      t,
      rawClient(
        echoing(false),
        (key) =>
          `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits\r\n',
      ),
      '12.1.1',
    );
    assert.match(offer.result, /invalid permessage-deflate offer from the client: server_max_window_bits must have a value/);
  });

  test('what the client under test reports as its own failure fails the case', async (t) => {
    const result = await run(t, async (url, signal) => ({ ...(await echoClientFor(url, signal)), problem: 'it threw' }), '1.1.1');
    assert.equal(result.behavior, 'FAILED');
    assert.match(result.result, /The client under test failed: it threw/);
  });
});

describe('case selection', () => {
  test('Autobahn patterns: * matches anything, other characters themselves', () => {
    assert.ok(matchesCasePattern('6.4.1', '6.4.*'));
    assert.ok(matchesCasePattern('6.4.1', '*'));
    assert.ok(!matchesCasePattern('6.40.1', '6.4.*'));
    assert.ok(matchesCasePattern('1.1.1', '1.1.1'));
    assert.ok(!matchesCasePattern('1.1.10', '1.1.1'));
    assert.deepEqual(
      selectCases({ patterns: ['6.4.*'] }).map((c) => c.id),
      ['6.4.1', '6.4.2', '6.4.3', '6.4.4'],
    );
  });

  test('cases sort number by number and the numbering has no gap', () => {
    const ids = selectCases().map((c) => c.id);
    assert.equal(ids.indexOf('6.9.1') < ids.indexOf('6.10.1'), true);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(ids.length, 517);
    assert.equal(ids.filter((id) => id.startsWith('6.22.')).length, 34);
    assert.equal(ids.filter((id) => id.startsWith('7.9.')).length, 9);
    // Autobahn's 5 corpora and 7 offer lists, 18 message sizes each.
    assert.equal(ids.filter((id) => id.startsWith('12.')).length, 5 * 18);
    assert.equal(ids.filter((id) => id.startsWith('13.')).length, 7 * 18);
    assert.equal(ids.at(-1), '13.7.18');
  });
});

describe('permessage-deflate in the replay client', () => {
  const AUTOBAHN: DeflateOffer = { clientNoContextTakeover: true, clientMaxWindowBits: true };
  const params = (overrides: Partial<DeflateParameters> = {}): DeflateParameters => ({
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
    ...overrides,
  });
  /** Consecutive slices of the JSON corpus, as 12.1.x sends them. */
  const jsonMessages = (count: number, length: number): Buffer[] => {
    const slicer = new Slicer(loadCorpus(CORPORA[0]!));
    return Array.from({ length: count }, () => Buffer.from(slicer.next(length)));
  };

  test('offers are written as Autobahn writes them', () => {
    assert.equal(formatOffers([AUTOBAHN]), 'permessage-deflate; client_no_context_takeover; client_max_window_bits');
    assert.equal(
      formatOffers([{ ...AUTOBAHN, serverNoContextTakeover: true, serverMaxWindowBits: 9 }, AUTOBAHN]),
      'permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=9, ' +
        'permessage-deflate; client_no_context_takeover; client_max_window_bits',
    );
    assert.deepEqual(parseExtensionList('a; b="9" ,c'), [
      { name: 'a', params: [['b', '9']] },
      { name: 'c', params: [] },
    ]);
  });

  test('a response is checked against the offers (RFC 7692 §7, §7.1)', () => {
    const asked = [{ ...AUTOBAHN, serverNoContextTakeover: true, serverMaxWindowBits: 9 }];
    assert.equal(negotiate([AUTOBAHN], []), null);
    assert.deepEqual(negotiate([AUTOBAHN], ['permessage-deflate']), params());
    assert.deepEqual(
      negotiate(asked, ['permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits=10']),
      params({ serverNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 10 }),
    );
    // 13.7: the response may accept any of the offers; the last one asks for nothing.
    const list = [asked[0]!, { ...AUTOBAHN, serverNoContextTakeover: true }, AUTOBAHN];
    assert.deepEqual(negotiate(list, ['permessage-deflate; client_no_context_takeover']), params({ clientNoContextTakeover: true }));
    // A server may reset its context or narrow its window unasked.
    assert.deepEqual(negotiate([AUTOBAHN], ['permessage-deflate; server_no_context_takeover', ' ']), params({ serverNoContextTakeover: true }));
    const refused: [readonly DeflateOffer[], string, RegExp][] = [
      [[AUTOBAHN], 'x-webkit-deflate-frame', /not offered/],
      [[], 'permessage-deflate', /not offered/],
      [[AUTOBAHN], 'permessage-deflate, permessage-deflate', /2 permessage-deflate elements/],
      [[AUTOBAHN], 'permessage-deflate; mystery', /unknown parameter mystery/],
      [[AUTOBAHN], 'permessage-deflate; server_max_window_bits=16', /8 to 15/],
      [[AUTOBAHN], 'permessage-deflate; client_max_window_bits', /8 to 15/],
      [[AUTOBAHN], 'permessage-deflate; client_max_window_bits=09', /8 to 15/],
      [[AUTOBAHN], 'permessage-deflate; server_no_context_takeover=1', /takes no value/],
      [[AUTOBAHN], 'permessage-deflate; server_no_context_takeover; server_no_context_takeover', /twice/],
      [[{}], 'permessage-deflate; client_max_window_bits=10', /client_max_window_bits was not offered/],
      [asked, 'permessage-deflate; server_max_window_bits=9', /server_no_context_takeover was asked for/],
      [asked, 'permessage-deflate; server_no_context_takeover', /server_max_window_bits=9 was asked for/],
      [asked, 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10', /above the 9 asked for/],
      [[AUTOBAHN], 'permessage-deflate;', /parameter name/],
    ];
    for (const [offers, response, reason] of refused) {
      assert.throws(() => negotiate(offers, [response]), (error: unknown) => error instanceof InvalidExtensionResponse && reason.test(error.message), response);
    }
  });

  test('compressing with context takeover makes one DEFLATE stream a plain zlib inflater reads', () => {
    for (const clientMaxWindowBits of [9, 12, 15]) {
      const codec = new DeflateCodec(params({ clientMaxWindowBits }), 1 << 20);
      const messages = jsonMessages(60, 700);
      const payloads = messages.map((m) => codec.compress(m));
      const whole = inflateRawSync(Buffer.concat(payloads.flatMap((p) => [p, FLUSH_TAIL])), { windowBits: clientMaxWindowBits, finishFlush: constants.Z_SYNC_FLUSH });
      assert.ok(whole.equals(Buffer.concat(messages)), `window ${clientMaxWindowBits}`);
      for (const payload of payloads) assert.ok(farthestDistance(Buffer.concat([payload, FLUSH_TAIL])) <= 2 ** clientMaxWindowBits);
    }
    // Without context takeover every message stands alone.
    const alone = new DeflateCodec(params({ clientNoContextTakeover: true }), 1 << 20);
    for (const message of jsonMessages(5, 300)) {
      assert.ok(inflate(alone.compress(message)).equals(message));
    }
  });

  test('inflating follows the server context takeover and window, and catches a server that breaks them', async () => {
    const messages = jsonMessages(40, 2000);
    /** What a server with one zlib stream sends: each message sync-flushed, the tail stripped. */
    const streamed = async (windowBits: number): Promise<Buffer[]> => {
      const deflate = createDeflateRaw({ windowBits });
      const payloads: Buffer[] = [];
      for (const message of messages) {
        const flushed = await flushThrough(deflate, message);
        payloads.push(flushed.subarray(0, flushed.length - FLUSH_TAIL.length));
      }
      deflate.close();
      return payloads;
    };
    const wide = await streamed(15);
    const kept = new DeflateCodec(params(), 1 << 20);
    assert.ok(wide.every((payload, i) => kept.decompress(payload).equals(messages[i]!)));
    const narrow = await streamed(9);
    const small = new DeflateCodec(params({ serverMaxWindowBits: 9 }), 1 << 20);
    assert.ok(narrow.every((payload, i) => small.decompress(payload).equals(messages[i]!)));
    // The server said server_no_context_takeover and kept its context: a reference into the previous message.
    const reset = new DeflateCodec(params({ serverNoContextTakeover: true }), 1 << 20);
    assert.throws(() => wide.forEach((payload) => reset.decompress(payload)), /invalid distance too far back/);
    // The server said server_max_window_bits=9 and compressed with 32 KiB: caught within the first message.
    const first = new DeflateCodec(params({ serverMaxWindowBits: 9 }), 1 << 20);
    assert.throws(() => first.decompress(wide[0]!), /beyond the 512-byte window of server_max_window_bits=9/);
  });

  test('farthestDistance walks every block type and refuses a stream cut short', () => {
    const json = loadCorpus(CORPORA[0]!).bytes.subarray(0, 20_000);
    for (const level of [0, 1, 6, 9]) {
      for (const strategy of [constants.Z_DEFAULT_STRATEGY, constants.Z_FIXED, constants.Z_HUFFMAN_ONLY]) {
        for (const windowBits of [9, 11, 15]) {
          const stream = deflateRawSync(json, { level, strategy, windowBits, finishFlush: constants.Z_SYNC_FLUSH });
          const farthest = farthestDistance(stream);
          assert.ok(farthest <= 2 ** windowBits, `level ${level}, strategy ${strategy}, window ${windowBits}: ${farthest}`);
          if (level === 0 || strategy === constants.Z_HUFFMAN_ONLY) assert.equal(farthest, 0);
        }
      }
    }
    assert.ok(farthestDistance(deflateRawSync(json, { windowBits: 15 })) > 512);
    const stream = deflateRawSync(json, { finishFlush: constants.Z_SYNC_FLUSH });
    for (const cut of [1, 100, stream.length >> 1]) assert.throws(() => farthestDistance(stream.subarray(0, cut)), RangeError);
  });

  test('the compression cases pass against ws, with context takeover both ways', async (t) => {
    const ws = new WsServer({ port: 0, host: '127.0.0.1', perMessageDeflate: { threshold: 0 } });
    ws.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
    await new Promise<void>((resolve) => ws.once('listening', resolve));
    t.after(() => new Promise<void>((resolve) => ws.close(() => resolve())));
    const target = { host: '127.0.0.1', port: (ws.address() as AddressInfo).port };
    // No client_no_context_takeover in the offer: ws keeps its inflate context, so the client keeps its
    // own; ws compresses with the 512-byte window asked for and keeps its context too.
    const result = await runCase({ ...byId('12.4.1'), offers: [{ clientMaxWindowBits: true, serverMaxWindowBits: 9 }] }, { target });
    assert.deepEqual([result.behavior, result.behaviorClose, result.extension], [
      'OK',
      'OK',
      'permessage-deflate; server_max_window_bits=9; client_max_window_bits=15',
    ]);
  });

  test('no extension is UNIMPLEMENTED; a bad answer fails the handshake; a window too wide fails the case', async (t) => {
    const plain = await serve(async (ws) => {
      await ws.accept();
      for await (const m of ws) await ws.send(m);
    }, { port: 0 });
    const greedy = await rawServer(() => undefined, 'permessage-deflate; server_max_window_bits=12');
    // Negotiates server_max_window_bits=9, then echoes every message compressed with a 32 KiB window.
    const wide = await rawServer((socket) => {
      let pending = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        let frames;
        try {
          frames = readFrames(pending);
        } catch {
          return; // a frame is still arriving
        }
        pending = Buffer.alloc(0);
        for (const frame of frames) {
          if (frame.opcode === 0x8) {
            socket.end(serverFrame({ opcode: 0x8, payload: frame.payload }));
            return;
          }
          socket.write(serverFrame({ opcode: frame.opcode, rsv: 4, payload: compress(inflate(frame.payload), 15) }));
        }
      });
    }, 'permessage-deflate; client_no_context_takeover; server_max_window_bits=9');
    t.after(() => {
      greedy.close();
      wide.close();
      return plain.close({ timeout: 100 });
    });
    const none = await runCase(byId('12.1.1'), { target: { host: '127.0.0.1', port: plain.address()!.port } });
    assert.deepEqual([none.behavior, none.behaviorClose, none.extension], ['UNIMPLEMENTED', 'OK', null]);
    const refused = await runCase(byId('13.3.1'), { target: { host: '127.0.0.1', port: portOf(greedy) }, timeouts: fast });
    assert.equal(refused.behavior, 'FAILED');
    assert.match(refused.result, /invalid Sec-WebSocket-Extensions answer: .*server_max_window_bits=12 is above the 9 asked for/);
    const tooFar = await runCase(byId('13.3.6'), { target: { host: '127.0.0.1', port: portOf(wide) }, timeouts: fast });
    assert.equal(tooFar.behavior, 'FAILED');
    assert.match(tooFar.result, /beyond the 512-byte window of server_max_window_bits=9/);
  });
});

describe('permessage-deflate in the replay server (against a client)', () => {
  const OUR_OFFER = 'permessage-deflate; server_no_context_takeover; client_max_window_bits';
  const acceptancesOf = (id: string) => byId(id).offers!.map(mirrorOffer);

  test("the offer of our client is accepted as Autobahn's fuzzingserver accepts it, case by case", () => {
    const ours = readOffers([OUR_OFFER]);
    const answered = [1, 2, 3, 4, 5, 6, 7].map((j) => acceptOffers(ours, acceptancesOf(`13.${j}.1`))?.response);
    const base = 'permessage-deflate; server_no_context_takeover';
    assert.deepEqual(answered, [
      base,
      `${base}; client_no_context_takeover`,
      `${base}; client_max_window_bits=9`,
      `${base}; client_max_window_bits=15`,
      `${base}; client_no_context_takeover; client_max_window_bits=9`,
      `${base}; client_no_context_takeover; client_max_window_bits=15`,
      `${base}; client_no_context_takeover; client_max_window_bits=9`,
    ]);
    assert.equal(acceptOffers(ours, acceptancesOf('12.3.1'))?.response, base);
    assert.deepEqual(acceptOffers(ours, acceptancesOf('13.5.1'))?.parameters, {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 9,
    });
    // Sections 1 to 10 accept nothing: the server declines the offer.
    assert.equal(acceptOffers(ours, []), null);
  });

  test('without client_max_window_bits in the offer the server cannot choose the client window', () => {
    const bare = readOffers(['permessage-deflate']);
    assert.equal(acceptOffers(bare, acceptancesOf('13.3.1')), null);
    assert.equal(acceptOffers(bare, acceptancesOf('13.7.1'))?.response, 'permessage-deflate; client_no_context_takeover');
    // A value in the offer caps the answer; the first offer that allows an acceptance wins; other
    // extensions are left out.
    const two = readOffers(['x-other; a=1, permessage-deflate; server_max_window_bits=10', 'permessage-deflate; client_max_window_bits=10']);
    assert.equal(two.length, 2);
    assert.equal(acceptOffers(two, [{ clientMaxWindowBits: 15 }])?.response, 'permessage-deflate; client_max_window_bits=10');
    assert.equal(acceptOffers(two, [{}])?.response, 'permessage-deflate; server_max_window_bits=10');
  });

  test('an invalid offer is refused (RFC 7692 §7), as Autobahn fails the handshake on it', () => {
    for (const offer of [
      'permessage-deflate; server_max_window_bits',
      'permessage-deflate; server_max_window_bits=7',
      'permessage-deflate; client_max_window_bits=16',
      'permessage-deflate; client_max_window_bits=010',
      'permessage-deflate; server_no_context_takeover=1',
      'permessage-deflate; client_no_context_takeover; client_no_context_takeover',
      'permessage-deflate; mystery',
      'permessage-deflate;;',
    ]) {
      assert.throws(() => readOffers([offer]), InvalidExtensionOffer, offer);
    }
  });

  test('the server-role codec compresses with the server parameters and holds the client to its window', () => {
    const slicer = new Slicer(loadCorpus(CORPORA[0]!));
    const messages = Array.from({ length: 30 }, () => Buffer.from(slicer.next(1500)));
    const parameters: DeflateParameters = { serverNoContextTakeover: true, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 9 };
    const server = new DeflateCodec(parameters, 1 << 20, 'server');
    const client = new DeflateCodec(parameters, 1 << 20, 'client');
    for (const message of messages) {
      assert.ok(server.decompress(client.compress(message)).equals(message));
      const sent = server.compress(message);
      // server_no_context_takeover: every message of the server stands alone.
      assert.ok(inflate(sent).equals(message));
      assert.ok(client.decompress(sent).equals(message));
    }
    // A client that compresses with a 32 KiB window after agreeing to 512 bytes is caught.
    assert.throws(() => new DeflateCodec(parameters, 1 << 20, 'server').decompress(compress(Buffer.concat(messages.slice(0, 4)), 15)), /window of client_max_window_bits=9/);
  });
});

describe('autobahn:check on an official report (index.json)', () => {
  const small = parseExpectedResults({
    cases: { '1.1.1': 'OK', '6.4.1': 'OK', '7.1.6': 'INFORMATIONAL', '9.3.1': ['OK', 'NON-STRICT'] },
  });
  const entry = (behavior: string, behaviorClose = 'OK') => ({ behavior, behaviorClose, duration: 1, remoteCloseCode: 1000 });

  test('passes when every case is allowed, ignoring unlisted cases that are OK or UNIMPLEMENTED', () => {
    const result = checkReport(
      {
        rfc6455: {
          '1.1.1': entry('OK'),
          '6.4.1': entry('OK'),
          '7.1.6': entry('INFORMATIONAL', 'INFORMATIONAL'),
          '9.3.1': entry('NON-STRICT'),
          '12.1.1': entry('UNIMPLEMENTED', 'FAILED'),
        },
      },
      small,
    );
    assert.equal(result.ok, true);
    assert.deepEqual(result.problems, []);
    assert.equal(result.checked, 5);
  });

  test('lists non-strict, failed, badly closed, missing and unlisted failing cases', () => {
    const result = checkReport(
      {
        rfc6455: {
          '1.1.1': entry('OK', 'UNCLEAN'),
          '6.4.1': entry('NON-STRICT'),
          '9.3.1': entry('FAILED', 'FAILED'),
          '7.9.10': entry('FAILED', 'WRONG CODE'),
        },
      },
      small,
    );
    assert.equal(result.ok, false);
    assert.deepEqual(
      result.problems.map((p) => [p.id, p.problem, p.behavior]),
      [
        ['1.1.1', 'close', 'OK'],
        ['6.4.1', 'behavior', 'NON-STRICT'],
        ['7.1.6', 'missing', null],
        ['7.9.10', 'unlisted', 'FAILED'],
        ['9.3.1', 'behavior', 'FAILED'],
      ],
    );
    const lines = formatCheck(result);
    assert.match(lines.join('\n'), /6\.4\.1: NON-STRICT \(close OK\), expected OK/);
    assert.match(lines.at(-1)!, /5 case\(s\) of rfc6455 are not/);
  });

  test('checks every agent of the report, or the one asked for', () => {
    const index = { rfc6455: { '1.1.1': entry('OK') }, other: { '1.1.1': entry('FAILED') } };
    const one = parseExpectedResults({ cases: { '1.1.1': 'OK' } });
    assert.deepEqual(checkReport(index, one).problems.map((p) => p.agent), ['other']);
    assert.equal(checkReport(index, one, { agent: 'rfc6455' }).ok, true);
    assert.throws(() => checkReport(index, one, { agent: 'missing' }), TypeError);
    assert.throws(() => checkReport([], one), TypeError);
  });

  test('reads <dir>/index.json; the command exits 0, 1 or 2', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rfc6455-autobahn-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const all: Record<string, ReturnType<typeof entry>> = {};
    for (const [id, allowed] of expected.cases) all[id] = entry(allowed[0]!, allowed[0] === 'INFORMATIONAL' ? 'INFORMATIONAL' : 'OK');
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ rfc6455: all }));
    assert.equal(checkReportDir(dir, expected).ok, true);

    const log = t.mock.method(console, 'log', () => undefined);
    const error = t.mock.method(console, 'error', () => undefined);
    assert.equal(checkMain([dir]), 0);
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ rfc6455: { ...all, '5.15': entry('NON-STRICT') } }));
    assert.equal(checkMain([dir]), 1);
    assert.match(String(error.mock.calls.at(-1)?.arguments[0]), /5\.15: NON-STRICT/);
    assert.equal(checkMain([join(dir, 'nowhere')]), 2);
    assert.equal(checkMain([]), 2);
    assert.ok(log.mock.callCount() >= 1);
  });

  test('expected-results.json is well-formed: OK everywhere but the informational cases', () => {
    for (const [id, allowed] of expected.cases) {
      const informational = id === '7.1.6' || id.startsWith('7.13.');
      assert.deepEqual(allowed, [informational ? 'INFORMATIONAL' : 'OK'], id);
    }
    assert.throws(() => parseExpectedResults({ cases: { '1.1.1': 'PASS' } }), TypeError);
    assert.throws(() => parseExpectedResults({ cases: { x: 'OK' } }), TypeError);
  });
});
