/**
 * A JSON-RPC proxy on 127.0.0.1 in front of a real node, to make it misbehave
 * the way hosted RPCs do: refuse eth_getLogs over too many blocks, or go down
 * (every connection cut) and come back. Everything else is passed through.
 */
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RpcProxy {
  readonly url: string;
  /** While true every request has its connection cut, as a dead node would. */
  down: boolean;
  /** eth_getLogs over more blocks than this is answered with a JSON-RPC error. */
  maxLogRange: number | undefined;
  /** The refusal's wording; Infura's by default. */
  refusalMessage: string;
  /** After this many more eth_getLogs requests the proxy goes down (to fail in the middle of a step). */
  downAfterLogs: number | undefined;
  /** Requests seen, by method. */
  readonly calls: Map<string, number>;
  close(): Promise<void>;
}

interface RpcRequest {
  id: unknown;
  method: string;
  params?: unknown[];
}

export async function startRpcProxy(target: string): Promise<RpcProxy> {
  const sockets = new Set<Socket>();
  const state = {
    down: false,
    maxLogRange: undefined as number | undefined,
    refusalMessage: 'query returned more than 10000 results',
    downAfterLogs: undefined as number | undefined,
    calls: new Map<string, number>(),
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (state.down) {
      req.socket.destroy();
      return;
    }
    const body = Buffer.concat(chunks).toString('utf8');
    const call = JSON.parse(body) as RpcRequest;
    state.calls.set(call.method, (state.calls.get(call.method) ?? 0) + 1);
    if (call.method === 'eth_getLogs') {
      if (state.downAfterLogs !== undefined && state.downAfterLogs-- <= 0) {
        state.down = true;
        state.downAfterLogs = undefined;
        req.socket.destroy();
        return;
      }
      const filter = (call.params?.[0] ?? {}) as { fromBlock?: string; toBlock?: string };
      const span = Number(filter.toBlock) - Number(filter.fromBlock) + 1;
      if (state.maxLogRange !== undefined && !(span <= state.maxLogRange)) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: call.id, error: { code: -32005, message: state.refusalMessage } }));
        return;
      }
    }
    const upstream = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    res.writeHead(upstream.status, { 'content-type': 'application/json' });
    res.end(await upstream.text());
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => req.socket.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const s of sockets) s.destroy();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  });
}
