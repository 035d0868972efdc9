/**
 * A throwaway PostgreSQL cluster that checks passwords — the shared test server
 * trusts every connection, so a login there proves nothing. initdb with
 * scram-sha-256 for TCP and trust on its own Unix socket (where Capstan's
 * target connects as postgres), TLS with a self-signed certificate for
 * 127.0.0.1, on a free port. About a second to start; `stop()` removes it all.
 */
import { execa } from 'execa';
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface ScramCluster {
  readonly port: number;
  /** The Unix socket directory (trust for postgres). */
  readonly socketDir: string;
  /** The self-signed server certificate, which is its own CA. */
  readonly certFile: string;
  stop(): Promise<void>;
}

async function pgBin(): Promise<string> {
  const versions = (await readdir('/usr/lib/postgresql')).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  return path.join('/usr/lib/postgresql', versions[0]!, 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export async function startScramCluster(): Promise<ScramCluster> {
  const bin = await pgBin();
  const base = await mkdtemp(path.join(os.tmpdir(), 'capstan-pg-'));
  const data = path.join(base, 'data');
  const asRoot = process.getuid?.() === 0;
  // initdb refuses to run as root: run the cluster as the postgres account.
  const run = (argv: string[]) => (asRoot ? execa('runuser', ['-u', 'postgres', '--', ...argv]) : execa(argv[0]!, argv.slice(1)));
  if (asRoot) {
    const { stdout } = await execa('id', ['-u', 'postgres']);
    const { stdout: gid } = await execa('id', ['-g', 'postgres']);
    await chown(base, Number(stdout), Number(gid));
  }
  const port = await freePort();
  const certFile = path.join(base, 'server.crt');
  const keyFile = path.join(base, 'server.key');
  try {
    await run([path.join(bin, 'initdb'), '-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8']);
    await run([
      'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile, '-out', certFile,
    ]);
    await run(['chmod', '0600', keyFile]);
    await run([
      path.join(bin, 'pg_ctl'), '-D', data, '-w', '-l', path.join(base, 'log'), '-o',
      `-p ${port} -k ${base} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=${certFile} -c ssl_key_file=${keyFile} -c fsync=off`,
      'start',
    ]);
  } catch (err) {
    await rm(base, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    socketDir: base,
    certFile,
    async stop() {
      await run([path.join(bin, 'pg_ctl'), '-D', data, '-w', '-m', 'immediate', 'stop']).catch(() => undefined);
      await rm(base, { recursive: true, force: true });
    },
  };
}
