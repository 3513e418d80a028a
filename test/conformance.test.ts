/**
 * The Autobahn conformance suite in `npm test`: the quick selection (every section, small sizes, the
 * deliberate waits shortened) against an in-process echo server, each case OK as expected-results.json
 * requires; and `autobahn:check` on small synthetic Autobahn reports.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ALL_CASES, SECTIONS, sectionOf } from '../autobahn/cases/index.ts';
import { checkReport, checkReportDir, formatCheck, main as checkMain } from '../autobahn/check.ts';
import { loadExpectedResults, parseExpectedResults } from '../autobahn/expected.ts';
import { matchesCasePattern, passes, runCase, type CaseResult, type ConformanceCase } from '../autobahn/harness.ts';
import { findRegressions, runSuite, selectCases, startEchoServer } from '../autobahn/suite.ts';
import { serve, type WebSocketServer } from '../src/index.ts';
import { acceptKey } from '../src/protocol/index.ts';

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

describe('the grading catches a misbehaving server', () => {
  const byId = (id: string): ConformanceCase => ALL_CASES.find((c) => c.id === id)!;

  /** A TCP server that answers the opening handshake, then hands the socket to `then`. */
  async function rawServer(then: (socket: Socket) => void): Promise<Server> {
    const server = createServer((socket) => {
      let head = '';
      socket.on('error', () => undefined);
      const onData = (chunk: Buffer): void => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        socket.off('data', onData);
        const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? '';
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`);
        then(socket);
      };
      socket.on('data', onData);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return server;
  }
  const portOf = (server: Server): number => (server.address() as AddressInfo).port;
  const fast = { closeHandshake: 200, serverDrop: 200 };

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
    assert.equal(ids.length, 301);
    assert.equal(ids.filter((id) => id.startsWith('6.22.')).length, 34);
    assert.equal(ids.filter((id) => id.startsWith('7.9.')).length, 9);
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
