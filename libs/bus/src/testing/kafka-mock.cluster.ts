/**
 * A Kafka broker for tests with no JVM and no Docker: librdkafka's mock
 * cluster, started by Debian's kcat (a consumer on a topic of its own keeps
 * it alive). It speaks Kafka's wire protocol, creates a topic with 4
 * partitions on first use, and runs consumer groups and idempotent producers.
 *
 * One defect of the mock in librdkafka 2.0.2 (Debian 12's kcat) is patched on
 * the wire: Metadata answers name controller 0 while its brokers are numbered
 * from 1, and kafkajs sends an idempotent producer's InitProducerId to the
 * controller, so `connect()` fails with "Broker 0 not found in the cached
 * metadata". A proxy in front of the broker rewrites that one field (and the
 * broker's advertised port, so clients keep coming through the proxy);
 * everything else passes through untouched.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface KafkaMockCluster {
  /** bootstrap servers for clients (the proxy) */
  brokers: string[];
  /**
   * SIGKILLs the mock's process, as a broker host that dies: the proxy stays,
   * so open connections drop and new ones are closed as soon as they open.
   */
  kill(): Promise<void>;
  /**
   * The network to the broker fails while the broker keeps its topics,
   * offsets and groups: every open connection drops and new ones are closed
   * as soon as they open, until `reconnect()`.
   */
  disconnect(): void;
  reconnect(): void;
  /**
   * The broker hangs (SIGSTOP): connections open and requests go out, and
   * nothing answers until `thaw()` (SIGCONT), when it goes on where it was.
   */
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const METADATA = 3;

export async function startKafkaMockCluster(): Promise<KafkaMockCluster> {
  const kcat = spawn('kcat', ['-X', 'test.mock.num.brokers=1', '-b', 'dummy:9092', '-C', '-t', 'nexo.mock.keepalive', '-o', 'end', '-q'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let upstreamPort: number;
  try {
    upstreamPort = await mockPort(kcat);
  } catch (error) {
    await kill(kcat);
    throw error;
  }
  const proxy = await startProxy(upstreamPort);
  return {
    brokers: [`127.0.0.1:${proxy.port}`],
    kill: () => kill(kcat, 'SIGKILL'),
    disconnect: () => proxy.cut(true),
    reconnect: () => proxy.cut(false),
    freeze: () => void kcat.kill('SIGSTOP'),
    thaw: () => void kcat.kill('SIGCONT'),
    async stop() {
      kcat.kill('SIGCONT');
      await proxy.close();
      await kill(kcat);
    },
  };
}

/** The mock's port, from the line librdkafka logs when it starts it. */
function mockPort(kcat: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`kcat did not report a mock cluster within ${START_TIMEOUT_MS} ms; it said: ${seen.slice(-500)}`)), START_TIMEOUT_MS);
    kcat.on('error', (error: NodeJS.ErrnoException) =>
      fail(
        error.code === 'ENOENT'
          ? new Error('kcat is not installed: the Kafka adapter tests run against librdkafka\'s mock cluster started by kcat. Install it with `apt-get install -y kcat` (.ci/run does).')
          : error,
      ),
    );
    kcat.on('exit', (code, signal) => fail(new Error(`kcat exited (${signal ?? code}) before starting the mock cluster: ${seen.slice(-500)}`)));
    // Read to the end, always: a full stderr pipe would block kcat.
    kcat.stderr!.on('data', (chunk: Buffer) => {
      if (seen.length < 10_000) seen += chunk.toString();
      const m = /Mock cluster .*?(?:bootstrap\.servers=|replaced with )127\.0\.0\.1:(\d+)/.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
}

async function kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(force);
}

async function startProxy(upstreamPort: number): Promise<{ port: number; cut(on: boolean): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let port = 0;
  let cut = false;
  const server: Server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);

    // Responses carry only the correlation id: remember what each request was.
    const asked = new Map<number, { apiKey: number; version: number }>();
    framed(client, (frame) => {
      asked.set(frame.readInt32BE(8), { apiKey: frame.readInt16BE(4), version: frame.readInt16BE(6) });
      upstream.write(frame);
    });
    framed(upstream, (frame) => {
      const correlationId = frame.readInt32BE(4);
      const request = asked.get(correlationId);
      asked.delete(correlationId);
      if (request?.apiKey === METADATA) patchMetadata(frame, request.version, port);
      client.write(frame);
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
  port = (server.address() as { port: number }).port;
  return {
    port,
    cut(on) {
      cut = on;
      if (on) for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Calls `onFrame` with each size-prefixed Kafka frame (prefix included). */
function framed(socket: Socket, onFrame: (frame: Buffer) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
      const size = 4 + pending.readInt32BE(0);
      onFrame(Buffer.from(pending.subarray(0, size)));
      pending = pending.subarray(size);
    }
  });
}

/**
 * Rewrites, in place, a Metadata response (versions 1 to 8, the
 * non-flexible ones kafkajs uses): every broker's port to the proxy's, and a
 * controller id that names no broker to the first broker's id.
 */
function patchMetadata(frame: Buffer, version: number, proxyPort: number): void {
  if (version < 1 || version > 8) return;
  let at = 8; // size, correlation id
  if (version >= 3) at += 4; // throttle_time_ms
  const count = frame.readInt32BE(at);
  at += 4;
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    ids.push(frame.readInt32BE(at));
    at += 4;
    at += 2 + frame.readInt16BE(at); // host
    frame.writeInt32BE(proxyPort, at);
    at += 4;
    const rack = frame.readInt16BE(at);
    at += 2 + Math.max(rack, 0);
  }
  if (version >= 2) {
    const clusterId = frame.readInt16BE(at);
    at += 2 + Math.max(clusterId, 0);
  }
  if (ids.length > 0 && !ids.includes(frame.readInt32BE(at))) frame.writeInt32BE(ids[0], at);
}
