/**
 * Backstage following a large daemon: the time until a full set is
 * visible through Backstage's catalog API, change → visible for a series
 * of pushes, and the Bitbucket requests made meanwhile (all the daemon's:
 * one read per push). Started by the daemon's `cargo bench --bench
 * backstage`, which passes CATALOGD_URL, SIM_URL, PUSHES (JSON list of
 * `PROJECT/slug`) and EXPECTED (the entity count).
 */
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { Client } from 'pg';
import catalogModuleCatalogd from '../src';

const daemon = process.env.CATALOGD_URL!;
const sim = process.env.SIM_URL!;
const pushes: string[] = JSON.parse(process.env.PUSHES ?? '[]');
const expected = Number(process.env.EXPECTED);
const database = { host: '127.0.0.1', port: 5432, user: 'postgres' };
const prefix = `catalogd_bench_${process.pid}_`;

async function count(port: number): Promise<number> {
  const r = await fetch(`http://localhost:${port}/api/catalog/entities/by-query?limit=1&filter=kind=component`);
  const body: any = await r.json();
  return body.totalItems ?? 0;
}

async function visible(port: number, name: string): Promise<boolean> {
  const r = await fetch(`http://localhost:${port}/api/catalog/entities/by-name/component/default/${name}`);
  if (!r.ok) return false;
  const body: any = await r.json();
  return body.metadata?.description === 'pushed';
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * q) - 1))];
}

async function main() {
  await fetch(`${sim}/__sim/stats/reset`, { method: 'POST' });
  const started = Date.now();
  const backend = await startTestBackend({
    features: [
      import('@backstage/plugin-catalog-backend'),
      catalogModuleCatalogd,
      mockServices.rootConfig.factory({
        data: {
          backend: { baseUrl: 'http://localhost:7007', database: { client: 'pg', prefix, connection: database } },
          catalog: { providers: { catalogd: { bench: { baseUrl: daemon } } } },
        },
      }),
    ],
  });
  const port = backend.server.port();
  try {
    let seen = 0;
    while ((seen = await count(port)) < expected) {
      if (Date.now() - started > 30 * 60_000) throw new Error(`only ${seen} of ${expected} after 30 min`);
      await new Promise(r => setTimeout(r, 500));
    }
    const full = Date.now() - started;
    console.log(`full sync: ${expected} components visible in Backstage ${(full / 1000).toFixed(1)} s after it started`);
    const latencies: number[] = [];
    for (const repository of pushes) {
      const [project, slug] = repository.split('/');
      const name = `${project.toLowerCase()}-${slug}`;
      const content = `apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: ${name}\n  description: pushed\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n`;
      const pushed = Date.now();
      const answer: any = await (await fetch(`${sim}/__sim/push`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ repository: { server: { project, slug } }, content, webhook: { url: `${daemon}/api/events/http/bitbucketServer` } }),
      })).json();
      if (answer.delivered !== 202) throw new Error(JSON.stringify(answer));
      while (!(await visible(port, name))) {
        if (Date.now() - pushed > 60_000) throw new Error(`${name} not visible after 60 s`);
        await new Promise(r => setTimeout(r, 20));
      }
      latencies.push(Date.now() - pushed);
    }
    latencies.sort((a, b) => a - b);
    console.log(`push → visible in Backstage over ${latencies.length} pushes: p50 ${percentile(latencies, 0.5)} ms, p99 ${percentile(latencies, 0.99)} ms, max ${latencies[latencies.length - 1]} ms`);
    const stats: any = await (await fetch(`${sim}/__sim/stats`)).json();
    console.log(`Bitbucket requests while Backstage synced and followed: ${stats.requests} (the daemon's reads for ${pushes.length} pushes: ${pushes.length}); made for Backstage: ${stats.requests - pushes.length}`);
  } finally {
    await backend.stop();
    const client = new Client({ ...database, database: 'postgres' });
    await client.connect();
    const { rows } = await client.query('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${prefix}%`]);
    for (const row of rows) await client.query(`DROP DATABASE IF EXISTS "${row.datname}" WITH (FORCE)`);
    await client.end();
  }
}

main().then(
  () => process.exit(0),
  error => {
    console.error(error);
    process.exit(1);
  },
);
