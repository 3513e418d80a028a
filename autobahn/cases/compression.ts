/**
 * Sections 12 and 13, permessage-deflate (RFC 7692): 1000 compressed messages, each sent after the echo
 * of the previous one, and every echo must come back as it was sent.
 *
 * - 12.1 to 12.5: one corpus each (compression-corpora.ts: JSON, a bitmap, German text, HTML, a PDF),
 *   Autobahn's default offer;
 * - 13.1 to 13.7: the JSON corpus, with the seven offers of `PARAMETER_OFFERS` (the server's context
 *   takeover and window size asked for or not, and a list of three offers);
 * - within each, the 18 message sizes of `MESSAGE_SIZES`: 16 B to 128 KiB in one frame, then 8 to
 *   128 KiB with the compressed payload cut into frames of 256 B to 32 KiB.
 *
 * Graded as Autobahn grades them: OK when all 1000 echoes arrive with the type and bytes sent before the
 * case's time is up, FAILED at the first wrong echo or on the timeout, UNIMPLEMENTED when the server
 * accepts no offer; the client closes with 1000 and the close must be clean. A response to the offers
 * that the client must refuse (deflate-negotiation.ts) fails the opening handshake, and so the case.
 */
import { CloseCode } from '../../src/constants.ts';
import type { DeflateOffer } from '../deflate-negotiation.ts';
import { formatOffers } from '../deflate-negotiation.ts';
import { Behavior, type CaseRun, type ConformanceCase } from '../harness.ts';
import { cases, normalClose } from './common.ts';
import { CORPORA, loadCorpus, Slicer, type Corpus } from './compression-corpora.ts';

/** Messages per case. */
const COUNT = 1000;

interface MessageSize {
  /** Units (bytes, or characters of text) per message. */
  readonly length: number;
  /** Time for the whole case. */
  readonly waitSeconds: number;
  /** Frames of at most this many compressed bytes; 0 sends each message in one frame. */
  readonly fragmentSize: number;
}

/** Autobahn's MSG_SIZES, in order: the last number of a case id is the index here plus one. */
const MESSAGE_SIZES: readonly MessageSize[] = [
  { length: 16, waitSeconds: 60, fragmentSize: 0 },
  { length: 64, waitSeconds: 60, fragmentSize: 0 },
  { length: 256, waitSeconds: 120, fragmentSize: 0 },
  { length: 1024, waitSeconds: 240, fragmentSize: 0 },
  { length: 4096, waitSeconds: 480, fragmentSize: 0 },
  { length: 8192, waitSeconds: 480, fragmentSize: 0 },
  { length: 16384, waitSeconds: 480, fragmentSize: 0 },
  { length: 32768, waitSeconds: 480, fragmentSize: 0 },
  { length: 65536, waitSeconds: 480, fragmentSize: 0 },
  { length: 131072, waitSeconds: 480, fragmentSize: 0 },
  { length: 8192, waitSeconds: 480, fragmentSize: 256 },
  { length: 16384, waitSeconds: 480, fragmentSize: 256 },
  { length: 32768, waitSeconds: 480, fragmentSize: 256 },
  { length: 65536, waitSeconds: 480, fragmentSize: 256 },
  { length: 131072, waitSeconds: 480, fragmentSize: 256 },
  { length: 131072, waitSeconds: 480, fragmentSize: 1024 },
  { length: 131072, waitSeconds: 480, fragmentSize: 4096 },
  { length: 131072, waitSeconds: 480, fragmentSize: 32768 },
];

/**
 * Autobahn's offer: besides what a case asks of the server, every offer says `client_no_context_takeover`
 * and `client_max_window_bits`, leaving both to the server.
 */
const offer = (asked: Pick<DeflateOffer, 'serverNoContextTakeover' | 'serverMaxWindowBits'> = {}): DeflateOffer => ({
  clientNoContextTakeover: true,
  clientMaxWindowBits: true,
  ...asked,
});

/** The offers of 13.1 to 13.7, in order. */
const PARAMETER_OFFERS: readonly (readonly DeflateOffer[])[] = [
  [offer()],
  [offer({ serverNoContextTakeover: true })],
  [offer({ serverMaxWindowBits: 9 })],
  [offer({ serverMaxWindowBits: 15 })],
  [offer({ serverNoContextTakeover: true, serverMaxWindowBits: 9 })],
  [offer({ serverNoContextTakeover: true, serverMaxWindowBits: 15 })],
  [offer({ serverNoContextTakeover: true, serverMaxWindowBits: 9 }), offer({ serverNoContextTakeover: true }), offer()],
];

/** The cases of the quick selection: small messages, a fragmented one, and every kind of offer. */
const QUICK = new Set(['12.1.1', '12.2.1', '12.4.1', '12.1.11', '13.2.1', '13.3.1', '13.5.2', '13.7.1']);

/** A case's progress: where the next message comes from, how many were sent, the echo awaited. */
interface Progress {
  readonly slicer: Slicer;
  sent: number;
  expected: Buffer;
}

function compressionCase(id: string, corpus: Corpus, size: MessageSize, offers: readonly DeflateOffer[]): ConformanceCase {
  const kind = corpus.binary ? 'binary' : 'text';
  const units = corpus.binary ? 'bytes' : 'characters';
  const framing = size.fragmentSize === 0 ? 'one frame each' : `compressed payload cut into frames of ${size.fragmentSize} bytes`;
  const progress = new WeakMap<CaseRun, Progress>();

  const sendOne = (run: CaseRun, state: Progress): void => {
    state.expected = state.slicer.next(size.length);
    state.sent++;
    run.client.sendMessage(state.expected, corpus.binary, size.fragmentSize === 0 ? undefined : size.fragmentSize);
  };

  return {
    id,
    description:
      `Send ${COUNT} compressed ${kind} messages of ${size.length} ${units} from "${corpus.title}" (${framing}), ` +
      `each after the echo of the previous one. Offer: ${formatOffers(offers)}.`,
    expectation: `Every message comes back with the type and bytes sent; the case ends within ${size.waitSeconds} s; clean close with 1000.`,
    offers,
    reportTime: true,
    limit: size.waitSeconds + 30,
    ...(QUICK.has(id) ? { quick: true } : {}),
    onOpen(run) {
      run.expectClose(normalClose);
      if (run.client.deflate === null) {
        run.behavior = Behavior.Unimplemented;
        run.result = 'The server accepted none of the permessage-deflate offers.';
        run.client.sendClose(CloseCode.NormalClosure);
        return;
      }
      run.behavior = Behavior.Failed;
      run.result = `The case did not finish within ${size.waitSeconds} s.`;
      run.closeAfter(size.waitSeconds);
      const state: Progress = { slicer: new Slicer(loadCorpus(corpus)), sent: 0, expected: Buffer.alloc(0) };
      progress.set(run, state);
      sendOne(run, state);
    },
    onMessage(run, received) {
      const state = progress.get(run);
      // A message after the case has closed (or before it started) changes nothing.
      if (state === undefined || run.behavior !== Behavior.Failed || run.client.state !== 'open') return;
      const sent = state.expected;
      if (received.binary !== corpus.binary) {
        run.result = `Echo ${state.sent} is a ${received.binary ? 'binary' : 'text'} message, ${kind} was sent.`;
      } else if (received.data.length !== sent.length) {
        run.result = `Echo ${state.sent} has ${received.data.length} bytes, ${sent.length} were sent.`;
      } else if (!received.data.equals(sent)) {
        run.result = `Echo ${state.sent} has other bytes than were sent (same length, ${sent.length} bytes).`;
      } else if (state.sent < COUNT) {
        sendOne(run, state);
        return;
      } else {
        run.behavior = Behavior.OK;
        run.result = `All ${COUNT} messages came back unchanged in time.`;
      }
      run.client.sendClose(CloseCode.NormalClosure);
    },
  };
}

export default cases([
  ...CORPORA.flatMap((corpus, j) =>
    MESSAGE_SIZES.map((size, i) => compressionCase(`12.${j + 1}.${i + 1}`, corpus, size, [offer()])),
  ),
  ...PARAMETER_OFFERS.flatMap((offers, j) =>
    MESSAGE_SIZES.map((size, i) => compressionCase(`13.${j + 1}.${i + 1}`, CORPORA[0]!, size, offers)),
  ),
]);
