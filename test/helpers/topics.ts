/**
 * Helpers for the multi-process topic tests (cluster, Redis): Node's WebSocket client talking the
 * command language of test/fixtures/topic-commands.ts, and a probe that waits until publishes from
 * one server reach the subscribers on another.
 */
import assert from 'node:assert/strict';
import { sleep, WsClient } from './server.ts';

/** Opens a client; the server's first message says which process took the connection. */
export async function openIdentified(port: number, clients: WsClient[]): Promise<{ client: WsClient; pid: number }> {
  const client = await WsClient.connect(`ws://127.0.0.1:${port}/`, undefined, 5000);
  clients.push(client);
  const hello = String(await client.next(5000));
  const match = /^pid (\d+)$/.exec(hello);
  assert.ok(match !== null, hello);
  return { client, pid: Number(match[1]) };
}

/** Sends a command and returns the answer. */
export async function request(client: WsClient, text: string): Promise<string> {
  client.send(text);
  return String(await client.next(5000));
}

/**
 * Publishes `<tag>-<i>` to topic `room` from `publisher` until the first of `remotes` (clients of
 * another server) receives one, then a `<tag>-end` marker, and reads every client up to it: the local
 * subscribers get every message, the remotes all get the same ones (those published once the
 * subscription had crossed), the publisher none of its own. Messages in `late` (published earlier,
 * which may still be on their way) are passed over on the remotes.
 */
export async function crossed(
  publisher: WsClient,
  locals: readonly WsClient[],
  remotes: readonly WsClient[],
  tag: string,
  late: ReadonlySet<string> = new Set(),
): Promise<void> {
  const next = async (client: WsClient, timeout: number): Promise<string> => {
    for (;;) {
      const message = String(await client.next(timeout));
      if (!late.has(message)) return message;
    }
  };
  const first = next(remotes[0]!, 30_000);
  let arrived = false;
  first.then(
    () => (arrived = true),
    () => (arrived = true),
  );
  for (let i = 0; i < 300 && !arrived; i++) {
    assert.match(await request(publisher, `pub room ${tag}-${i}`), /^published \d+$/);
    for (const local of locals) assert.equal(await local.next(5000), `${tag}-${i}`);
    await sleep(50);
  }
  const firstSeen = await first;
  assert.match(firstSeen, new RegExp(`^${tag}-\\d+$`));
  await request(publisher, `pub room ${tag}-end`);
  for (const local of locals) assert.equal(await local.next(5000), `${tag}-end`);
  const seen: string[][] = [];
  for (const [index, remote] of remotes.entries()) {
    const got = index === 0 ? [firstSeen] : [];
    while (got.at(-1) !== `${tag}-end`) got.push(await next(remote, 5000));
    seen.push(got);
  }
  for (const got of seen.slice(1)) assert.deepEqual(got, seen[0], 'every remote subscriber got the same messages');
}
