/**
 * A WAN between an S3 client and the local gateway, on loopback:
 *   node benchmarks/wan-proxy.mjs <listen port> <target host:port> <one-way delay ms> <per-connection bytes/s> <link bytes/s>
 * Every byte in either direction arrives `delay` ms after it was sent (so each request costs a
 * round trip of 2 × delay, and each new connection one more before its first byte is answered).
 * Uploaded bytes then pass two token buckets: one per connection (what a TCP window allows over
 * that round trip) and one for the whole link, served round-robin so connections share it fairly.
 * A connection's reads pause while more than its bandwidth-delay product is queued, as a full TCP
 * window would: a client sees back-pressure, not an infinite buffer.
 * Prints "ready <port>" once listening; SIGTERM stops it. Loopback only.
 */
import net from 'node:net';

const [port, target, delayArg, connArg, linkArg] = process.argv.slice(2);
const [host, targetPort] = target.split(':');
const delay = Number(delayArg);
const connRate = Number(connArg) / 1000; // bytes per ms
const linkRate = Number(linkArg) / 1000;
const PIECE = 16 * 1024;
// Buckets hold a few ms of their rate: a timer tick that comes late does not lower the cap.
const connBurst = Math.max(64 * 1024, connRate * 4);
const linkBurst = Math.max(64 * 1024, linkRate * 4);
const window = Math.max(256 * 1024, connRate * 2 * delay);
const now = () => performance.now();

/** @type {Set<Conn>} */
const conns = new Set();
let linkTokens = 0;
let last = now();
let timer;

class Conn {
  constructor(client) {
    this.client = client;
    this.tokens = 0;
    /** uploaded bytes waiting: { buf, readyAt } */
    this.q = [];
    this.queued = 0;
    this.ended = false;
    this.up = net.connect({ host, port: Number(targetPort) });
    this.up.setNoDelay(true);
    client.setNoDelay(true);
    client.on('data', (buf) => {
      this.q.push({ buf, readyAt: now() + delay });
      this.queued += buf.length;
      if (this.queued > window) client.pause();
      kick();
    });
    client.on('end', () => {
      this.ended = true;
      kick();
    });
    // Answers come back after the same delay, unthrottled (they are small).
    this.up.on('data', (buf) => setTimeout(() => client.writable && client.write(buf), delay));
    this.up.on('end', () => setTimeout(() => client.end(), delay));
    const close = () => {
      conns.delete(this);
      client.destroy();
      this.up.destroy();
    };
    client.on('error', close);
    client.on('close', close);
    this.up.on('error', close);
    this.up.on('close', () => setTimeout(close, delay));
    this.up.on('drain', kick);
    conns.add(this);
  }
}

function kick() {
  if (!timer) timer = setTimeout(tick, 0);
}

function tick() {
  timer = undefined;
  const t = now();
  const dt = t - last;
  last = t;
  linkTokens = Math.min(linkTokens + dt * linkRate, linkBurst);
  let nextReady = Infinity;
  let waiting = false;
  for (const c of conns) c.tokens = Math.min(c.tokens + dt * connRate, connBurst);
  for (let progress = true; progress && linkTokens >= 1; ) {
    progress = false;
    for (const c of conns) {
      const head = c.q[0];
      if (!head) continue;
      if (head.readyAt > t) {
        nextReady = Math.min(nextReady, head.readyAt);
        continue;
      }
      waiting = true;
      if (c.up.writableLength > 1024 * 1024) continue; // the gateway is behind: its drain kicks
      const n = Math.min(head.buf.length, PIECE, Math.floor(c.tokens), Math.floor(linkTokens));
      if (n <= 0) continue;
      c.up.write(n === head.buf.length ? head.buf : head.buf.subarray(0, n));
      if (n === head.buf.length) c.q.shift();
      else head.buf = head.buf.subarray(n);
      c.tokens -= n;
      sent += n;
      linkTokens -= n;
      c.queued -= n;
      if (c.queued <= window && c.client.isPaused()) c.client.resume();
      progress = true;
    }
  }
  for (const c of conns) {
    if (c.ended && c.q.length === 0 && !c.up.writableEnded) c.up.end();
    if (c.q.length && c.q[0].readyAt <= t) waiting = true;
  }
  if (waiting) timer = setTimeout(tick, 1);
  else if (nextReady !== Infinity) timer = setTimeout(tick, Math.max(0, nextReady - now()));
}

let sent = 0;
if (process.env.WAN_DEBUG) setInterval(() => { if (sent) console.error(`${(sent / 1e6).toFixed(1)} MB/s over ${conns.size} connections`); sent = 0; }, 1000).unref();
const server = net.createServer((client) => new Conn(client));
server.listen(Number(port), '127.0.0.1', () => console.log(`ready ${server.address().port}`));
process.on('SIGTERM', () => {
  for (const c of conns) {
    c.client.destroy();
    c.up.destroy();
  }
  server.close(() => process.exit(0));
});
