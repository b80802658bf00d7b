/**
 * A TCP proxy on 127.0.0.1 between the S3 client and the real server, for faults the server
 * won't produce on demand: connection resets after N bytes, stalls, and cutting all traffic.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** Small seeded PRNG, so a "5% reset rate" run is the same run every time. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FaultProxyOptions {
  /** probability of resetting a connection for each MiB it carries toward the server */
  resetPerMiB?: number;
  seed?: number;
}

export class FaultProxy {
  endpoint = '';
  resets = 0;
  connections = 0;
  private server!: Server;
  private readonly live = new Set<[Socket, Socket]>();
  private cutUntil = 0;
  private readonly random: () => number;

  private constructor(
    private readonly target: { host: string; port: number },
    private readonly opts: FaultProxyOptions,
  ) {
    this.random = mulberry32(opts.seed ?? 1);
  }

  static async start(targetUrl: string, opts: FaultProxyOptions = {}): Promise<FaultProxy> {
    const u = new URL(targetUrl);
    if (!/^(127\.|localhost$|\[::1\]$)/.test(u.hostname)) throw new Error(`the fault proxy only fronts loopback servers, not ${u.hostname}`);
    const p = new FaultProxy({ host: u.hostname, port: Number(u.port || 80) }, opts);
    p.server = createServer((client) => p.accept(client));
    await new Promise<void>((r) => p.server.listen(0, '127.0.0.1', r));
    p.endpoint = `http://127.0.0.1:${(p.server.address() as AddressInfo).port}`;
    return p;
  }

  /** Cut all traffic for `ms`: open connections are reset, new ones are reset on arrival. */
  cut(ms: number): void {
    this.cutUntil = Date.now() + ms;
    for (const pair of this.live) this.kill(pair);
  }

  restore(): void {
    this.cutUntil = 0;
  }

  set resetPerMiB(p: number) {
    this.opts.resetPerMiB = p;
  }

  async close(): Promise<void> {
    for (const pair of this.live) this.kill(pair);
    await new Promise((r) => this.server.close(r));
  }

  private kill(pair: [Socket, Socket]): void {
    pair[0].resetAndDestroy();
    pair[1].destroy();
    this.live.delete(pair);
  }

  private accept(client: Socket): void {
    this.connections++;
    if (Date.now() < this.cutUntil) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(this.target.port, this.target.host);
    const pair: [Socket, Socket] = [client, upstream];
    this.live.add(pair);
    let carried = 0;
    client.on('data', (chunk: Buffer) => {
      const before = Math.floor(carried / (1024 * 1024));
      carried += chunk.length;
      const crossed = Math.floor(carried / (1024 * 1024)) - before;
      for (let i = 0; i < crossed; i++) {
        if (this.random() < (this.opts.resetPerMiB ?? 0)) {
          this.resets++;
          // Forward part of what arrived, so the server sees a truncated body, then reset.
          upstream.write(chunk.subarray(0, chunk.length >> 1));
          this.kill(pair);
          return;
        }
      }
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    const close = () => {
      if (this.live.has(pair)) {
        this.live.delete(pair);
        client.destroy();
        upstream.destroy();
      }
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  }
}
