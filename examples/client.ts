/**
 * The client beside the server: connects to the echo server of `npm start`, sends a text message, a
 * binary one and a message in fragments, prints the echoes, and closes.
 *
 *   npm start                                           # in one terminal
 *   node --import tsx examples/client.ts                # in another: ws://127.0.0.1:9001
 *   node --import tsx examples/client.ts ws://127.0.0.1:9002/chat
 */
import { connect, HandshakeError } from '../src/index.ts';

/** Runs the conversation against `url` and returns what was printed (the test checks it). */
export async function talk(url: string, print: (line: string) => void = console.log): Promise<void> {
  const ws = await connect(url, { perMessageDeflate: true, handshakeTimeout: 5000 });
  print(`connected to ${ws.url} (extensions: ${ws.extensions || 'none'})`);

  await ws.send('hello');
  print(`text echo: ${await ws.receiveText()}`);

  await ws.send(Uint8Array.of(1, 2, 3));
  print(`binary echo: ${(await ws.receiveBytes()).toString('hex')}`);

  await ws.sendFragments(['one message ', 'in ', 'three frames']);
  print(`fragmented echo: ${await ws.receiveText()}`);

  await ws.close(1000, 'done');
  print(`closed: ${ws.state}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    await talk(process.argv[2] ?? 'ws://127.0.0.1:9001');
  } catch (error) {
    // A refusal carries the server's status and body; anything else is a network error.
    if (error instanceof HandshakeError) console.error(`refused: HTTP ${error.status} ${error.body?.toString() ?? ''}`);
    else console.error(error);
    process.exitCode = 1;
  }
}
