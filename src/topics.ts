/**
 * Topics (publish/subscribe) for one server, and the Backplane interface that carries publishes to
 * other processes. A publish encodes its frame once (and compresses it once per set of deflate
 * parameters, see PreparedMessage) and writes the same buffers to every subscriber; each delivery
 * obeys the connection's slow-consumer policy, exactly as `broadcast()` does.
 *
 * Memory: subscriptions live here, not on the connection. A connection that subscribes to nothing has
 * no entry at all; each subscription is one entry in its topic's Set, plus the connection's own record
 * of its topics (so its subscriptions can end with it): the topic string itself for one topic, an
 * array of exactly its topics for more (rebuilt on change: a connection has few, and a growable array
 * would keep slack for each).
 */
import { Opcode } from './constants.ts';
import { prepareMessage, PreparedMessage } from './protocol/frame-encoder.ts';
import { isValidUtf8 } from './protocol/utf8.ts';
import type { WebSocket } from './websocket.ts';

/** What a publish did on this server: every subscriber it considered is counted in exactly one field. */
export interface PublishResult {
  /** Subscribers the message was written to. */
  readonly sent: number;
  /** Subscribers over `maxBufferedAmount` that were skipped (policy `skip`). */
  readonly skipped: number;
  /** Subscribers over `maxBufferedAmount` closed with 1008 (policy `close`). */
  readonly closed: number;
}

/** What a server gives its backplane when it starts: where messages from other servers go. */
export interface BackplaneHost {
  /**
   * Delivers a message published on another server to this server's subscribers of `topic`. `binary`
   * false means `data` is UTF-8 text: text that is not valid UTF-8 is not delivered (TypeError).
   */
  deliver(topic: string, data: Uint8Array, binary: boolean): void;
  /** Closes the server gracefully (1001 to every client), as `server.close()` does. */
  close(): Promise<void>;
}

/**
 * Carries publishes between servers (worker processes, machines). The server calls `start` once,
 * `subscribe` when a topic gets its first local subscriber and `unsubscribe` when it loses its last
 * (so only topics someone here listens to cross the wire), `publish` for every local publish, and
 * `close` when the server closes. Delivery is at most once, in order per publisher per topic; a
 * backplane never hands a server back its own publishes (the server delivered those locally). Its
 * methods should not throw for a transport failure: a backplane reports those itself (its `onError`)
 * and recovers; what they throw reaches the caller of `subscribe` or `publish`.
 */
export interface Backplane {
  start(host: BackplaneHost): void;
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  publish(topic: string, data: Uint8Array, binary: boolean): void;
  close(): Promise<void>;
}

/** Options of `server.publish()`. */
export interface PublishOptions {
  /** A connection not to deliver to (`ws.publish()` passes itself). */
  readonly exclude?: WebSocket;
}

const NO_TOPICS: readonly string[] = Object.freeze([]);

/** Throws TypeError for a topic that is not a non-empty string. */
export function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string' || topic.length === 0) {
    throw new TypeError(`a topic must be a non-empty string, got ${typeof topic === 'string' ? "''" : typeof topic}`);
  }
}

/** One server's subscriptions and its backplane. */
export class TopicHub {
  private readonly subscribers = new Map<string, Set<WebSocket>>();
  /** The topics of each connection with at least one subscription, in the order subscribed: one topic, or an array of two or more. */
  private readonly topicsOfConnection = new Map<WebSocket, string | readonly string[]>();
  private readonly backplane: Backplane | null;

  constructor(backplane: Backplane | null) {
    this.backplane = backplane;
  }

  /** Subscribes `ws` to `topic`: true if it was not subscribed yet. A closed connection stays out. */
  subscribe(ws: WebSocket, topic: string): boolean {
    checkTopic(topic);
    if (ws.state === 'closed') return false;
    let subscribers = this.subscribers.get(topic);
    if (subscribers === undefined) {
      subscribers = new Set();
      this.subscribers.set(topic, subscribers);
      this.backplane?.subscribe(topic);
    } else if (subscribers.has(ws)) {
      return false;
    }
    subscribers.add(ws);
    const topics = this.topicsOfConnection.get(ws);
    this.topicsOfConnection.set(ws, topics === undefined ? topic : typeof topics === 'string' ? [topics, topic] : [...topics, topic]);
    return true;
  }

  /** Ends one subscription: true if `ws` was subscribed to `topic`. */
  unsubscribe(ws: WebSocket, topic: string): boolean {
    checkTopic(topic);
    const topics = this.topicsOfConnection.get(ws);
    if (topics === undefined) return false;
    if (typeof topics === 'string') {
      if (topics !== topic) return false;
      this.topicsOfConnection.delete(ws);
    } else {
      const index = topics.indexOf(topic);
      if (index === -1) return false;
      const rest = topics.filter((_, i) => i !== index);
      this.topicsOfConnection.set(ws, rest.length === 1 ? rest[0]! : rest);
    }
    this.leave(ws, topic);
    return true;
  }

  /** The topics `ws` is subscribed to, in the order subscribed (a copy). */
  topicsOf(ws: WebSocket): readonly string[] {
    const topics = this.topicsOfConnection.get(ws);
    return topics === undefined ? NO_TOPICS : typeof topics === 'string' ? [topics] : topics.slice();
  }

  /** Number of local subscribers of `topic`. */
  subscriberCount(topic: string): number {
    return this.subscribers.get(topic)?.size ?? 0;
  }

  /** The connection closed: its subscriptions end with it. */
  dropConnection(ws: WebSocket): void {
    const topics = this.topicsOfConnection.get(ws);
    if (topics === undefined) return;
    this.topicsOfConnection.delete(ws);
    if (typeof topics === 'string') this.leave(ws, topics);
    else for (const topic of topics) this.leave(ws, topic);
  }

  /** Publishes to the local subscribers (except `exclude`) and, through the backplane, to every other server. */
  publish(topic: string, data: string | Uint8Array | PreparedMessage, exclude: WebSocket | undefined): PublishResult {
    checkTopic(topic);
    const prepared = data instanceof PreparedMessage ? data : prepareMessage(data);
    this.backplane?.publish(topic, prepared.data, prepared.opcode === Opcode.Binary);
    return this.deliver(topic, prepared, exclude);
  }

  /** A message from another server (see BackplaneHost.deliver): to the local subscribers only. */
  readonly receive = (topic: string, data: Uint8Array, binary: boolean): void => {
    if (!this.subscribers.has(topic)) return;
    // RFC 6455 §8.1: a text frame must carry UTF-8. A peer on the bus could publish anything; a frame
    // of invalid text would make every subscriber fail the connection (1007), so it is not sent.
    if (!binary && !isValidUtf8(data)) {
      throw new TypeError(`a text message from the backplane for topic ${JSON.stringify(topic)} is not valid UTF-8`);
    }
    this.deliver(topic, new PreparedMessage(binary ? Opcode.Binary : Opcode.Text, data), undefined);
  };

  private deliver(topic: string, prepared: PreparedMessage, exclude: WebSocket | undefined): PublishResult {
    const subscribers = this.subscribers.get(topic);
    let sent = 0;
    let skipped = 0;
    let closed = 0;
    if (subscribers === undefined) return { sent, skipped, closed };
    for (const ws of subscribers) {
      if (ws === exclude) continue;
      const delivery = ws.deliver(prepared);
      if (delivery === 'sent') sent++;
      else if (delivery === 'skipped') skipped++;
      else if (delivery === 'closed') closed++;
    }
    return { sent, skipped, closed };
  }

  private leave(ws: WebSocket, topic: string): void {
    const subscribers = this.subscribers.get(topic);
    if (subscribers === undefined) return;
    subscribers.delete(ws);
    if (subscribers.size === 0) {
      this.subscribers.delete(topic);
      this.backplane?.unsubscribe(topic);
    }
  }
}
