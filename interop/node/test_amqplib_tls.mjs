// AMQP over TLS through amqplib, unchanged: a broker of its own (WARREN_BIN, which
// interop/run.sh sets) with certificates made by openssl at test time, a PLAIN login over TLS,
// an EXTERNAL login as the user the client certificate names, and a certificate of another
// authority refused. Run: WARREN_BIN=target/release/warren node --test interop/node/test_amqplib_tls.mjs

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import { startBroker } from './warren_process.mjs';

const BIN = process.env.WARREN_BIN;
const TEST_OPTS = { skip: BIN ? false : 'WARREN_BIN is not set (run via interop/run.sh)', timeout: 60_000 };

let dir;
let broker;
let port;

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 60_000 });
}

function authority(name) {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`);
}

// An X.509 v3 certificate: for a server with `san`, else for a client.
function issue(ca, name, cn, san) {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  const usage = san ? `subjectAltName=${san}\nextendedKeyUsage=serverAuth` : 'extendedKeyUsage=clientAuth';
  writeFileSync(join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n${usage}\n`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
}

const file = (name) => readFileSync(join(dir, name));

before(async () => {
  if (!BIN) return;
  dir = mkdtempSync(join(tmpdir(), 'warren-amqplib-tls-'));
  authority('ca');
  authority('stranger');
  issue('ca', 'server', 'localhost', 'DNS:localhost,IP:127.0.0.1');
  issue('ca', 'client', 'guest');
  issue('stranger', 'mallory', 'guest');
  writeFileSync(join(dir, 'warren.toml'), `[tls]
cert_file = "${dir}/server.pem"
key_file = "${dir}/server.key"
ca_file = "${dir}/ca.pem"
verify_peer = true
amqps_port = 0
`);
  const started = await startBroker(dir, join(dir, 'warren.toml'));
  broker = started.process;
  port = started.ports.amqps;
});

after(() => {
  if (broker) broker.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function roundTrip(conn) {
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  ch.sendToQueue(queue, Buffer.from('over tls'));
  for (let i = 0; i < 100; i++) {
    const m = await ch.get(queue, { noAck: true });
    if (m) return assert.equal(m.content.toString(), 'over tls');
  }
  assert.fail('the message never came back');
}

test('a PLAIN login over TLS', TEST_OPTS, async () => {
  const conn = await amqp.connect(`amqps://guest:guest@localhost:${port}`, { ca: [file('ca.pem')] });
  try {
    await roundTrip(conn);
  } finally {
    await conn.close();
  }
});

test('an EXTERNAL login as the user the client certificate names', TEST_OPTS, async () => {
  const conn = await amqp.connect(`amqps://localhost:${port}`, {
    ca: [file('ca.pem')], cert: file('client.pem'), key: file('client.key'),
    credentials: amqp.credentials.external(),
  });
  try {
    await roundTrip(conn);
  } finally {
    await conn.close();
  }
});

test('a client certificate of another authority is refused', TEST_OPTS, async () => {
  await assert.rejects(amqp.connect(`amqps://localhost:${port}`, {
    ca: [file('ca.pem')], cert: file('mallory.pem'), key: file('mallory.key'),
    credentials: amqp.credentials.external(),
  }));
});
