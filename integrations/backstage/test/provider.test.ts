/**
 * The provider against a scripted change feed: a full mutation first,
 * deltas as the feed moves, a full resynchronisation after `410 Gone`,
 * retries when the daemon is unreachable, and Location entities kept out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import type { LoggerService } from '@backstage/backend-plugin-api';
import type { EntityProviderMutation } from '@backstage/plugin-catalog-node';
import { CatalogdEntityProvider } from '../src/provider';

// Quiet; `mockServices.logger.mock()` needs jest.
const logger: LoggerService = {
  info() {},
  warn() {},
  error() {},
  debug() {},
  child: () => logger,
};

function entity(kind: string, name: string) {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind,
    metadata: { name, namespace: 'default', uid: 'u', etag: 'e', annotations: { 'backstage.io/managed-by-location': 'url:https://b/x' } },
    spec: {},
    relations: [],
  };
}

function upsert(sequence: number, kind: string, name: string) {
  return { sequence, type: 'upsert', entityRef: `${kind.toLowerCase()}:default/${name}`, entity: entity(kind, name) };
}

test('full set, deltas, and a full resynchronisation after 410', async () => {
  // Each request answers the next scripted response.
  const script: Array<(req: IncomingMessage, res: ServerResponse) => void> = [
    (req, res) => {
      assert.equal(new URL(req.url!, 'http://x').searchParams.get('after'), null);
      res.end(JSON.stringify({ items: [upsert(1, 'Component', 'a'), upsert(2, 'Location', 'generated-x')], cursor: '2', hasMore: true }));
    },
    (req, res) => {
      assert.equal(new URL(req.url!, 'http://x').searchParams.get('after'), '2');
      res.end(JSON.stringify({ items: [upsert(3, 'Component', 'b')], cursor: '3', hasMore: false }));
    },
    (req, res) => {
      const params = new URL(req.url!, 'http://x').searchParams;
      assert.equal(params.get('after'), '3');
      assert.ok(Number(params.get('wait')) > 0, 'follows by long-polling');
      res.end(JSON.stringify({ items: [upsert(4, 'Component', 'c'), { sequence: 5, type: 'delete', entityRef: 'component:default/a' }], cursor: '5', hasMore: false }));
    },
    (_req, res) => {
      res.statusCode = 410;
      res.end(JSON.stringify({ error: { name: 'GoneError', message: 'cursor 5 is older than the retained changes' } }));
    },
    (req, res) => {
      assert.equal(new URL(req.url!, 'http://x').searchParams.get('after'), null, 'starts again from the full set');
      res.end(JSON.stringify({ items: [upsert(9, 'Component', 'c')], cursor: '9', hasMore: false }));
    },
  ];
  const server = createServer((req, res) => {
    const next = script.shift();
    res.setHeader('content-type', 'application/json');
    if (next) next(req, res);
    else setTimeout(() => res.end(JSON.stringify({ items: [], cursor: '9', hasMore: false })), 200);
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const mutations: EntityProviderMutation[] = [];
  const provider = new CatalogdEntityProvider({
    id: 'test',
    baseUrl: `http://127.0.0.1:${port}`,
    waitSeconds: 1,
    logger,
  });
  await provider.connect({ applyMutation: async m => void mutations.push(m), refresh: async () => {} });
  const deadline = Date.now() + 10_000;
  while (mutations.length < 3 && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
  await provider.stop();
  server.close();

  assert.equal(mutations.length, 3, JSON.stringify(mutations));
  const [full, delta, resync] = mutations;
  assert.equal(full.type, 'full');
  if (full.type === 'full') {
    assert.deepEqual(full.entities.map(e => e.entity.metadata.name).sort(), ['a', 'b'], 'Location entities stay out');
    assert.equal(full.entities[0].locationKey, 'catalogd:test');
    assert.equal(full.entities[0].entity.metadata.uid, undefined, 'Backstage assigns its own uid');
    assert.equal((full.entities[0].entity as any).relations, undefined);
    assert.ok(full.entities[0].entity.metadata.annotations?.['backstage.io/managed-by-location']);
  }
  assert.equal(delta.type, 'delta');
  if (delta.type === 'delta') {
    assert.deepEqual(delta.added.map(e => e.entity.metadata.name), ['c']);
    assert.deepEqual(delta.removed, [{ entityRef: 'component:default/a', locationKey: 'catalogd:test' }]);
  }
  assert.equal(resync.type, 'full');
  if (resync.type === 'full') assert.deepEqual(resync.entities.map(e => e.entity.metadata.name), ['c']);
});

test('an unreachable daemon is retried and nothing is applied meanwhile', async () => {
  const mutations: EntityProviderMutation[] = [];
  const provider = new CatalogdEntityProvider({
    id: 'down',
    baseUrl: 'http://127.0.0.1:9',
    logger,
  });
  await provider.connect({ applyMutation: async m => void mutations.push(m), refresh: async () => {} });
  await new Promise(r => setTimeout(r, 300));
  await provider.stop();
  assert.equal(mutations.length, 0);
});
