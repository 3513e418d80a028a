/**
 * Where an idle connection's memory goes: runs an echo server (rfc6455 or ws) in this process, opens N
 * idle connections with the load generator (in a worker thread, whose heap is separate), and diffs two
 * V8 heap snapshots (before and after) by object type and constructor name. Prints the top entries per
 * connection. A diagnostic for the memory section's figures, not part of `npm run bench`.
 *
 *   node --expose-gc --import tsx bench/idle-heap.ts [--server=rfc6455|ws] [--connections=2000] [--top=30]
 *     [--owners='array: (object properties),closure: ']   count those by what holds them
 */
import { once } from 'node:events';
import { getHeapSnapshot } from 'node:v8';
import { parseArgs } from 'node:util';
import { WebSocketServer as WsServer } from 'ws';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatBytes, formatTable } from './format.ts';
import { LoadSession } from './loadgen.ts';
import { BUILD_DIR, buildServers, serverRuntime } from './servers/control.ts';

type Library = typeof import('../src/index.ts');

/** The library as users run it: compiled by tsc (see servers/control.ts), unless BENCH_SERVER_RUNTIME=tsx. */
async function loadLibrary(): Promise<Library> {
  if (serverRuntime() === 'tsx') return import('../src/index.ts');
  buildServers();
  return (await import(pathToFileURL(join(BUILD_DIR, 'src', 'index.js')).href)) as Library;
}

interface HeapSnapshot {
  snapshot: {
    meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

type Census = Map<string, { count: number; size: number }>;

/**
 * Objects counted by type and name; with `owners`, objects of the types listed there are counted by
 * what holds them instead (`array: (object properties) <- object: Foo.properties`), to find which
 * objects are in dictionary mode and where anonymous closures hang.
 */
async function census(owners: readonly string[] = []): Promise<Census> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const stream = getHeapSnapshot();
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const snapshot = JSON.parse(Buffer.concat(chunks).toString('utf8')) as HeapSnapshot;
  const fields = snapshot.snapshot.meta.node_fields;
  const width = fields.length;
  const typeIndex = fields.indexOf('type');
  const nameIndex = fields.indexOf('name');
  const sizeIndex = fields.indexOf('self_size');
  const types = snapshot.snapshot.meta.node_types[0];
  const result: Census = new Map();
  const nodes = snapshot.nodes;
  const owner = new Map<number, string>();
  if (owners.length > 0) {
    const edgeFields = snapshot.snapshot.meta.edge_fields;
    const edgeWidth = edgeFields.length;
    const edgeTypes = snapshot.snapshot.meta.edge_types[0];
    const edgeTypeIndex = edgeFields.indexOf('type');
    const edgeNameIndex = edgeFields.indexOf('name_or_index');
    const toIndex = edgeFields.indexOf('to_node');
    const edgeCountIndex = fields.indexOf('edge_count');
    let edge = 0;
    for (let i = 0; i < nodes.length; i += width) {
      const count = nodes[i + edgeCountIndex]!;
      for (let e = 0; e < count; e++, edge += edgeWidth) {
        const edgeType = edgeTypes[snapshot.edges[edge + edgeTypeIndex]!] ?? '?';
        if (edgeType === 'weak') continue;
        const to = snapshot.edges[edge + toIndex]!;
        if (owner.has(to)) continue;
        const toType = types[nodes[to + typeIndex]!] ?? '?';
        const toName = snapshot.strings[nodes[to + nameIndex]!] ?? '?';
        if (!owners.some((wanted) => `${toType}: ${toName}`.startsWith(wanted))) continue;
        const edgeNameRaw = snapshot.edges[edge + edgeNameIndex]!;
        const edgeName = edgeType === 'element' || edgeType === 'hidden' ? `[${edgeNameRaw}]` : (snapshot.strings[edgeNameRaw] ?? '?');
        owner.set(to, `${types[nodes[i + typeIndex]!] ?? '?'}: ${snapshot.strings[nodes[i + nameIndex]!] ?? '?'}.${edgeName}`);
      }
    }
  }
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeIndex]!] ?? '?';
    let name = snapshot.strings[nodes[i + nameIndex]!] ?? '?';
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(strings)';
    else if (type === 'number') name = '(heap numbers)';
    else if (name.length > 60) name = `${name.slice(0, 57)}...`;
    const heldBy = owner.get(i);
    if (heldBy !== undefined) name = `${name} <- ${heldBy.length > 70 ? `${heldBy.slice(0, 67)}...` : heldBy}`;
    const key = `${type}: ${name}`;
    const entry = result.get(key);
    const size = nodes[i + sizeIndex]!;
    if (entry === undefined) result.set(key, { count: 1, size });
    else {
      entry.count++;
      entry.size += size;
    }
  }
  return result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      server: { type: 'string', default: 'rfc6455' },
      connections: { type: 'string', default: '2000' },
      top: { type: 'string', default: '30' },
      owners: { type: 'string', default: '' },
    },
  });
  const connections = Number(values.connections);
  let port: number;
  let stop: () => Promise<void>;
  if (values.server === 'ws') {
    const server = new WsServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * 1024 * 1024, perMessageDeflate: false });
    server.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('error', () => undefined);
    });
    await once(server, 'listening');
    const address = server.address();
    port = typeof address === 'object' && address !== null ? address.port : 0;
    stop = async () => {
      for (const client of server.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    };
  } else {
    const { serve } = await loadLibrary();
    const server = await serve(
      async (ws) => {
        await ws.accept();
        for await (const message of ws) await ws.send(message);
      },
      { port: 0, host: '127.0.0.1', maxMessageSize: 64 * 1024 * 1024 },
    );
    port = server.address()!.port;
    stop = () => server.close({ timeout: 100 });
  }
  const warm = await LoadSession.open({ port, connections: 100, inFlight: 0, size: 0, warmupMs: 0, durationMs: 0 });
  await warm.close();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const owners = values.owners === '' ? [] : values.owners.split(',');
  const before = await census(owners);
  const session = await LoadSession.open({ port, connections, inFlight: 0, size: 0, warmupMs: 0, durationMs: 0 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const after = await census(owners);
  const rss = process.memoryUsage().rss;
  const rows: { key: string; count: number; size: number }[] = [];
  let total = 0;
  for (const [key, entry] of after) {
    const base = before.get(key) ?? { count: 0, size: 0 };
    const size = (entry.size - base.size) / session.report!.opened;
    const count = (entry.count - base.count) / session.report!.opened;
    total += size;
    if (Math.abs(size) >= 1) rows.push({ key, count, size });
  }
  rows.sort((a, b) => b.size - a.size);
  console.log(`${values.server} (${values.server === 'ws' ? 'node_modules' : serverRuntime()}): ${session.report!.opened} idle connections; V8 heap per connection ${formatBytes(total)} (self sizes, after GC); process RSS ${formatBytes(rss)}`);
  console.log(
    formatTable(
      ['type: constructor or name', 'objects/conn', 'bytes/conn'],
      rows.slice(0, Number(values.top)).map((row) => [row.key, row.count.toFixed(2), row.size.toFixed(0)]),
    ),
  );
  await session.close();
  await stop();
  process.exit(0);
}

await main();
