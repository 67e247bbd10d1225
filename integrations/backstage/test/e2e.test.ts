/**
 * The module against the real thing: Backstage's catalog backend
 * (`startTestBackend` with `@backstage/plugin-catalog-backend`, its
 * database on the local PostgreSQL), following a spawned bitbucket-catalogd
 * fed by the simulator. Run by the daemon's `tests/it/backstage_module.rs`,
 * which starts both and passes their URLs:
 *
 *   CATALOGD_URL, SIM_URL, PUSH_REPOSITORY and REMOVE_REPOSITORY
 *   (`PROJECT/slug`), and optionally PGHOST / PGPORT / PGUSER.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { Client } from 'pg';
import catalogModuleCatalogd from '../src';

const daemon = required('CATALOGD_URL');
const sim = required('SIM_URL');
const database = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
};
// Backstage creates `<prefix>catalog`; one per run, dropped at the end.
const prefix = `catalogd_e2e_${process.pid}_`;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through tests/it/backstage_module.rs`);
  return value;
}

async function json(url: string, init?: RequestInit): Promise<any> {
  const response = await fetch(url, init);
  assert.ok(response.ok, `${url} answered ${response.status}: ${await response.clone().text()}`);
  return response.json();
}

type Ref = string;
function refsOf(entities: any[]): Set<Ref> {
  return new Set(
    entities
      .filter(e => e.kind.toLowerCase() !== 'location')
      .map(e => `${e.kind}:${e.metadata.namespace ?? 'default'}/${e.metadata.name}`.toLowerCase()),
  );
}

async function until(what: string, check: () => Promise<boolean>, seconds = 60): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > seconds * 1000) throw new Error(`${what} did not happen within ${seconds}s`);
    await new Promise(r => setTimeout(r, 100));
  }
  return Date.now() - started;
}

async function startBackstage() {
  return startTestBackend({
    features: [
      import('@backstage/plugin-catalog-backend'),
      catalogModuleCatalogd,
      mockServices.rootConfig.factory({
        data: {
          backend: {
            baseUrl: 'http://localhost:7007',
            database: { client: 'pg', prefix, connection: database },
          },
          catalog: { providers: { catalogd: { e2e: { baseUrl: daemon, waitSeconds: 5 } } } },
        },
      }),
    ],
  });
}

async function push(repository: string, content: string) {
  const [project, slug] = repository.split('/');
  const answer = await json(`${sim}/__sim/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      repository: { server: { project, slug } },
      content,
      webhook: { url: `${daemon}/api/events/http/bitbucketServer` },
    }),
  });
  assert.equal(answer.delivered, 202, JSON.stringify(answer));
}

function component(name: string): string {
  return `apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: ${name}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n`;
}

async function dropDatabases() {
  const client = new Client({ ...database, database: 'postgres' });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${prefix}%`]);
    for (const row of rows) await client.query(`DROP DATABASE IF EXISTS "${row.datname}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

test('a Backstage catalog mirrors the daemon and follows its changes', async () => {
  await fetch(`${sim}/__sim/stats/reset`, { method: 'POST' });
  let backend = await startBackstage();
  try {
    const backstageRefs = async () =>
      refsOf(await json(`http://localhost:${backend.server.port()}/api/catalog/entities`));
    const daemonRefs = async () => refsOf(await json(`${daemon}/api/catalog/entities`));

    // The full set arrives.
    const expected = await daemonRefs();
    assert.ok(expected.size > 0);
    const synced = await until('the full set arriving in Backstage', async () =>
      equal(await backstageRefs(), expected),
    );
    console.log(`full sync: ${expected.size} entities visible in Backstage after ${synced} ms`);
    const served = (await backstageRefs()).size;
    assert.equal(served, expected.size, 'no duplicates');

    // A changed file (through a webhook) shows up within seconds.
    await push(required('PUSH_REPOSITORY'), component('backstage-pushed'));
    const seen = await until('the pushed entity in Backstage', async () =>
      (await backstageRefs()).has('component:default/backstage-pushed'), 30);
    console.log(`push → visible in Backstage: ${seen} ms`);

    // A repository whose file is emptied loses its entities in Backstage too.
    await push(required('REMOVE_REPOSITORY'), '');
    await until('the emptied repository leaving Backstage', async () =>
      equal(await backstageRefs(), await daemonRefs()), 30);

    // A Backstage restart resynchronises without duplicates.
    await backend.stop();
    backend = await startBackstage();
    const after = await daemonRefs();
    await until('the same set after a restart', async () => equal(await backstageRefs(), after));

    // Every Bitbucket request was the daemon's: one file read per push.
    const stats = await json(`${sim}/__sim/stats`);
    assert.equal(stats.requests, 2, `Bitbucket requests while Backstage followed: ${JSON.stringify(stats)}`);
  } finally {
    await backend.stop();
    await dropDatabases();
  }
});

function equal(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every(x => b.has(x));
}
