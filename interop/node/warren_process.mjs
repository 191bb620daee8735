// A Warren process for the amqplib tests that need a broker of their own (to give it a
// configuration, or to raise its alarms): started from WARREN_BIN on ports 0 with a data
// directory of its own, its addresses read from its "ready" log line.

import { spawn } from 'node:child_process';
import { join } from 'node:path';

const READY_TIMEOUT_MS = 30_000;

// Starts `warren server` in `dir` (with config file `config`, if given); resolves to
// { process, ports: { amqp, http, amqps } } once it is ready. With a config, it waits for the
// AMQPS listener too unless `tls` is false.
export async function startBroker(dir, config, { tls = Boolean(config) } = {}) {
  const args = ['server', '--amqp-port', '0', '--http-port', '0', '--data-dir', join(dir, 'data')];
  if (config) args.push('-c', config);
  const child = spawn(process.env.WARREN_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const ports = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker not ready: ${log}`)), READY_TIMEOUT_MS);
    const read = (chunk) => {
      log += chunk.toString().replace(/\x1b\[[0-9;]*m/g, '');
      const port = (name) => log.match(new RegExp(`${name}_addr="?[^" ]*:(\\d+)`));
      const [amqp, http, amqps] = [port('amqp'), port('http'), port('amqps')];
      if (amqp && http && (!tls || amqps)) {
        clearTimeout(timer);
        resolve({ amqp: Number(amqp[1]), http: Number(http[1]), amqps: amqps ? Number(amqps[1]) : undefined });
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => reject(new Error(`broker exited ${code}: ${log}`)));
  });
  return { process: child, ports };
}
