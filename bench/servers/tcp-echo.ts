/**
 * The plain TCP echo server: the ceiling of this machine for the end-to-end benchmarks. No framing, no
 * parsing: the load generator sends it the same masked frames it sends the WebSocket servers and
 * checks they come back byte for byte.
 *
 * It is only a ceiling if it does no more work per byte than a WebSocket server could: everything read
 * from a socket in one turn of the event loop is written back together (cork on the first read of the
 * turn, uncork in setImmediate: one writev), as the rfc6455 connection layer does with its replies. It
 * stops reading while more than 1 MiB waits to be written and resumes on 'drain', as rfc6455 does with
 * its default outboundHighWaterMark:
 * pausing at the stream's 16 KiB high-water mark would stop and restart reading after every 64 KiB read.
 */
import { createServer, type Socket } from 'node:net';
import { announce, HOST, listenPort } from './common.ts';

const MAX_PENDING_WRITE = 1024 * 1024;

function echo(socket: Socket): void {
  socket.setNoDelay(true);
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  socket.on('data', (chunk: Buffer) => {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    socket.write(chunk);
    if (socket.writableLength > MAX_PENDING_WRITE && !socket.isPaused()) {
      socket.pause();
      socket.once('drain', () => socket.resume());
    }
  });
  socket.on('end', () => socket.end());
  socket.on('error', () => socket.destroy());
}

const server = createServer(echo);
server.listen(listenPort(), HOST, () => {
  const address = server.address();
  announce('tcp echo', typeof address === 'object' && address !== null ? address.port : 0, { library: 'node:net' });
});
