/**
 * The replay against a client (Autobahn's fuzzingserver mode, without Python): the conformance peer
 * plays the server on 127.0.0.1 and a free port, and our own client, `connect()` from src/, is the
 * client under test, in this process. For each case the client connects to
 * `/runCase?case=<id>&agent=rfc6455` (the path Autobahn's client runners use), offers permessage-deflate
 * (the peer accepts it in sections 12 and 13 as the case says, and declines it elsewhere, as Autobahn
 * does) and echoes every message until the connection closes.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect, WebSocketDisconnect, type WebSocket } from '../src/index.ts';
import { ConformanceClient, DEFAULT_TIMEOUTS, HandshakeFailed, type ClientTimeouts } from './client.ts';
import { mirrorOffer } from './deflate-negotiation.ts';
import type { ClientUnderTest, ConformanceCase, TesteeConnection, TesteeOutcome } from './harness.ts';

const HOST = '127.0.0.1';
const AGENT = 'rfc6455';
/** Section 9 sends messages of up to 16 MiB: a limit well above keeps 9.x a test of the echo. */
const MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
/**
 * After the peer's socket closed, how long the client has to see its connection end. Its own close
 * timeout (5 s by default) only matters when the peer never closes TCP, which it always does.
 */
const SETTLE_TIMEOUT_MS = 6000;

/** The client under test and the port the peer listens on. */
export interface ClientTestee extends ClientUnderTest {
  readonly port: number;
  /** Stops listening and drops any connection still open. */
  close(): Promise<void>;
}

/** Why an error is worth a line: its name and message. */
const describe = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

/**
 * A client under test, run for one case: connects to `url` and echoes every message until the
 * connection ends. Resolves (never rejects) with how it ended and what went wrong in the client, if
 * anything; `signal` aborts when it takes too long, and the client must then drop its connection.
 */
export type TesteeClient = (url: string, signal: AbortSignal) => Promise<TesteeOutcome>;

/** Our client: `connect()` from src/, then `for await (const m of ws) await ws.send(m)`. */
export const echoClient: TesteeClient = async (url, signal) => {
  let ws: WebSocket;
  try {
    ws = await connect(url, {
      maxMessageSize: MAX_MESSAGE_SIZE,
      perMessageDeflate: true,
      // Socket errors (a reset by the peer when it fails the connection) end the connection with 1006;
      // the case grades that, not a line on the console.
      onError: () => undefined,
      signal,
    });
  } catch (error) {
    // The peer refused the handshake (and failed the case) or the client refused the peer's answer.
    return { summary: `connect() rejected: ${describe(error)}`, problem: null };
  }
  signal.addEventListener('abort', () => ws.terminate(), { once: true });
  let summary: string;
  let problem: string | null = null;
  try {
    for await (const message of ws) await ws.send(message);
    summary = 'the message loop ended (normal close)';
  } catch (error) {
    if (error instanceof WebSocketDisconnect) {
      summary = `WebSocketDisconnect ${error.code} (${error.initiator})${error.reason === '' ? '' : ` "${error.reason}"`}`;
    } else {
      summary = `the message loop threw ${describe(error)}`;
      problem = summary;
    }
  }
  await ws.whenClosed();
  return { summary, problem };
};

/**
 * The client's outcome once its connection has ended. Bounded: when it has not ended
 * SETTLE_TIMEOUT_MS after the peer's socket closed, the client's connection is terminated and the
 * outcome says so as a problem of the client.
 */
function settle(finished: Promise<TesteeOutcome>, peerClosed: Promise<void>, abort: AbortController): Promise<TesteeOutcome> {
  return new Promise<TesteeOutcome>((resolve) => {
    let timer: NodeJS.Timeout | null = null;
    let ended = false;
    void finished.then((outcome) => {
      ended = true;
      if (timer !== null) clearTimeout(timer);
      resolve(outcome);
    });
    void peerClosed.then(() => {
      if (ended) return;
      timer = setTimeout(() => {
        abort.abort();
        resolve({ summary: 'still open', problem: `its connection had not ended ${SETTLE_TIMEOUT_MS} ms after the server closed TCP` });
      }, SETTLE_TIMEOUT_MS);
    });
  });
}

/** Starts listening on 127.0.0.1 and a free port; `open` then runs `client` (ours by default) for one case. */
export async function startClientTestee(client: TesteeClient = echoClient): Promise<ClientTestee> {
  const waiting: ((socket: Socket) => void)[] = [];
  const open = new Set<Socket>();
  const server: Server = createServer((socket) => {
    // Until the peer takes the socket over (and after), an error is the case's business, not a crash.
    socket.on('error', () => undefined);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    const taker = waiting.shift();
    // Only the connection a case is waiting for is served; anything else is dropped.
    if (taker === undefined) socket.destroy();
    else taker(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const nextConnection = (ms: number): Promise<Socket> =>
    new Promise<Socket>((resolve, reject) => {
      const taker = (socket: Socket): void => {
        clearTimeout(timer);
        resolve(socket);
      };
      const timer = setTimeout(() => {
        waiting.splice(waiting.indexOf(taker), 1);
        reject(new HandshakeFailed(`the client did not connect within ${ms} ms`));
      }, ms);
      waiting.push(taker);
    });

  return {
    port,
    async open(definition: ConformanceCase, timeouts: Partial<ClientTimeouts>): Promise<TesteeConnection> {
      const path = `/runCase?case=${definition.id}&agent=${AGENT}`;
      const accepted = nextConnection(timeouts.open ?? DEFAULT_TIMEOUTS.open);
      const abort = new AbortController();
      // A client that throws instead of resolving has failed the case all the same.
      const finished = client(`ws://${HOST}:${port}${path}`, abort.signal).catch(
        (error: unknown): TesteeOutcome => ({ summary: 'threw', problem: `the client threw ${describe(error)}` }),
      );
      let peer: ConformanceClient;
      try {
        const acceptances = (definition.offers ?? []).map(mirrorOffer);
        peer = await ConformanceClient.accept(await accepted, { path, host: `${HOST}:${port}`, acceptances }, timeouts);
      } catch (error) {
        // The client's side ends too (connect() rejects): say how, and let nothing run on into the next
        // case. A client still trying to connect is aborted.
        const timer = setTimeout(() => abort.abort(), SETTLE_TIMEOUT_MS);
        const outcome = await finished;
        clearTimeout(timer);
        throw new HandshakeFailed(`${error instanceof Error ? error.message : String(error)} (client: ${outcome.summary})`);
      }
      return { peer, done: settle(finished, peer.closed, abort) };
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
