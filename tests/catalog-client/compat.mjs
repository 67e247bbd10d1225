// Runs the real @backstage/catalog-client against a bitbucket-catalogd at
// argv[2] (e.g. http://127.0.0.1:12345) and prints what every method
// returned as one JSON document; tests/it/catalog_client.rs asserts on it.
// argv[3]: a file to register; argv[4]: another to move it to; argv[5]: a
// repository without a catalog file.
import { CatalogClient } from '@backstage/catalog-client';

const base = process.argv[2];
// Every method the client has is called below; the proxy records which.
const called = new Set();
const client = new Proxy(new CatalogClient({
  discoveryApi: { getBaseUrl: async () => `${base}/api/catalog` },
}), {
  get(target, name, receiver) {
    const value = Reflect.get(target, name, receiver);
    if (typeof value === 'function' && typeof name === 'string') called.add(name);
    return value;
  },
});
const internal = name => name === 'constructor' || name.startsWith('request') || name === 'getFilterValue';
const methods = Object.getOwnPropertyNames(CatalogClient.prototype).filter(n => !internal(n));

const names = entities => entities.map(e => e.metadata.name);
const out = {};

out.getEntities = names((await client.getEntities()).items);
out.getEntitiesFiltered = names(
  (await client.getEntities({
    filter: [{ kind: 'component', 'spec.type': 'service' }, { kind: 'api' }],
    order: [{ field: 'metadata.name', order: 'desc' }],
  })).items,
);
out.getEntitiesFields = (await client.getEntities({
  filter: { kind: 'component' },
  fields: ['metadata.name', 'metadata.annotations.backstage.io/managed-by-location'],
  limit: 2,
  offset: 1,
  order: { field: 'metadata.name', order: 'asc' },
})).items;

// Cursor paging with a filter, a sort and a full-text term, page by page.
const pages = [];
let response = await client.queryEntities({
  filter: { kind: 'component' },
  orderFields: { field: 'metadata.name', order: 'asc' },
  limit: 2,
});
out.queryTotal = response.totalItems;
pages.push(names(response.items));
while (response.pageInfo.nextCursor) {
  response = await client.queryEntities({ cursor: response.pageInfo.nextCursor, limit: 2 });
  pages.push(names(response.items));
}
out.queryPages = pages;
if (response.pageInfo.prevCursor) {
  out.queryPrevious = names((await client.queryEntities({ cursor: response.pageInfo.prevCursor, limit: 2 })).items);
}
out.queryFullText = names((await client.queryEntities({
  fullTextFilter: { term: 'BILL', fields: ['metadata.name'] },
})).items);

if (typeof client.streamEntities === 'function') {
  const streamed = [];
  for await (const page of client.streamEntities({ pageSize: 2 })) {
    streamed.push(...names(page));
  }
  out.streamEntities = streamed;
}

const refs = await client.getEntitiesByRefs({
  entityRefs: ['component:default/billing', 'component:default/does-not-exist', 'api:default/billing-api'],
  fields: ['kind', 'metadata.name'],
});
out.getEntitiesByRefs = refs.items.map(e => (e ? `${e.kind}:${e.metadata.name}` : null));

out.getEntityByRef = (await client.getEntityByRef('component:default/billing'))?.metadata.name ?? null;
out.getEntityByRefObject = (await client.getEntityByRef({ kind: 'Component', namespace: 'default', name: 'BILLING' }))?.metadata.name ?? null;
out.getEntityByRefMissing = (await client.getEntityByRef('component:default/nope')) === undefined;

out.getEntityFacets = (await client.getEntityFacets({ facets: ['kind', 'spec.type'], filter: { kind: ['component', 'api'] } })).facets;
out.getEntityFacetsByPredicate = (await client.getEntityFacets({
  facets: ['spec.type'],
  query: { $all: [{ kind: 'component' }, { $not: { 'spec.type': 'website' } }] },
})).facets;
out.queryEntitiesByPredicate = names((await client.queryEntities({
  query: { 'metadata.tags': { $in: ['money'] } },
  orderFields: { field: 'metadata.name', order: 'asc' },
})).items);
out.getEntityByName = (await client.getEntityByName({ kind: 'Component', namespace: 'default', name: 'checkout' }))?.metadata.name ?? null;

const ancestry = await client.getEntityAncestors({ entityRef: 'component:default/billing' });
out.getEntityAncestors = { root: ancestry.rootEntityRef, items: ancestry.items.map(i => [i.entity.metadata.name, i.parentEntityRefs]) };
out.getLocationByEntity = (await client.getLocationByEntity('component:default/billing'))?.target ?? null;
out.getLocationByEntityMissing = (await client.getLocationByEntity('component:default/nope')) === undefined;

// What is served carries relations, which a catalog file may not (Backstage's
// NoForeignRootFieldsEntityPolicy): validate what the file holds.
const { relations: _relations, ...billing } = await client.getEntityByRef('component:default/billing');
out.validateEntityValid = await client.validateEntity(billing, billing.metadata.annotations['backstage.io/managed-by-location']);
out.validateEntityServed = (await client.validateEntity({ ...billing, relations: [] }, billing.metadata.annotations['backstage.io/managed-by-location'])).valid;
const invalid = await client.validateEntity(
  { apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name: 'Not A Name!' }, spec: { type: 'service', owner: 'x', lifecycle: 'y' } },
  billing.metadata.annotations['backstage.io/managed-by-location'],
);
out.validateEntityInvalid = { valid: invalid.valid, names: invalid.errors.map(e => e.name), mentionsName: invalid.errors.some(e => e.message.includes('metadata.name')) };

const paged = await client.queryLocations({ limit: 4, query: { type: 'url' } });
out.queryLocations = { total: paged.totalItems, first: paged.items.length, next: typeof paged.pageInfo.nextCursor };
const streamedLocations = [];
for await (const page of client.streamLocations({ limit: 4 })) {
  streamedLocations.push(...page.map(l => l.target));
}
out.streamLocations = streamedLocations.sort();
out.getLocationByRef = (await client.getLocationByRef(`url:${out.getLocationByEntity}`))?.target ?? null;

// "Schedule entity refresh": re-reads the entity's repository only.
await client.refreshEntity('component:default/billing');
out.refreshEntity = 'ok';
try {
  await client.refreshEntity('component:default/nope');
  out.refreshEntityMissing = 'no error';
} catch (error) {
  out.refreshEntityMissing = { name: error.name, status: error.response?.status };
}

const locations = await client.getLocations();
out.getLocations = locations.items.map(l => l.target).sort();
out.getLocationById = (await client.getLocationById(locations.items[0].id))?.target ?? null;
out.getLocationByIdMissing = (await client.getLocationById('00000000-0000-0000-0000-000000000000')) === undefined;

try {
  await client.getEntities({ filter: { '': 'x' } });
  out.badFilter = 'no error';
} catch (error) {
  out.badFilter = { name: error.name, status: error.response?.status };
}

// catalog-import: register a location (dry run first), then remove it.
const target = process.argv[3];
if (target) {
  const dry = await client.addLocation({ type: 'url', target, dryRun: true });
  out.addLocationDryRun = { exists: dry.exists, target: dry.location.target, kinds: dry.entities.map(e => e.kind) };
  const added = await client.addLocation({ type: 'url', target });
  out.addLocation = { target: added.location.target, kinds: added.entities.map(e => e.kind) };
  out.afterAdd = (await client.getEntityByRef('component:default/imported'))?.metadata.name ?? null;
  out.afterAddLocation = (await client.getLocationById(added.location.id))?.target ?? null;
  try {
    await client.addLocation({ type: 'url', target });
    out.addAgain = 'no error';
  } catch (error) {
    out.addAgain = { name: error.name, status: error.response?.status };
  }
  const importedAncestry = await client.getEntityAncestors({ entityRef: 'component:default/imported' });
  out.importedAncestry = importedAncestry.items.map(i => [i.entity.kind, i.parentEntityRefs.length]);
  out.analyzeRegistered = (await client.analyzeLocation({ location: { type: 'url', target } }))
    .existingEntityFiles.map(f => [f.entity.metadata.name, f.isRegistered, f.location.target]);

  // The registered location moves to another file: its old entities go.
  const moved = process.argv[4];
  const updated = await client.updateLocation(added.location.id, { type: 'url', target: moved });
  out.updateLocation = {
    target: updated.target,
    idChanged: updated.id !== added.location.id,
    found: (await client.getLocationById(added.location.id))?.target ?? null,
  };
  out.afterUpdate = {
    old: (await client.getEntityByRef('component:default/imported')) === undefined,
    now: (await client.getEntityByRef('component:default/imported2'))?.metadata.name ?? null,
  };
  await client.removeLocationById(updated.id);
  out.afterRemove = (await client.getEntityByRef('component:default/imported2')) === undefined;
}

const bare = process.argv[5];
if (bare) {
  out.analyzeBare = await client.analyzeLocation({ location: { type: 'url', target: bare } });
}

// Unregister: the entity stops being served at once.
const search = await client.getEntityByRef('component:default/search');
await client.removeEntityByUid(search.metadata.uid);
out.removeEntityByUid = (await client.getEntityByRef('component:default/search')) === undefined;
try {
  await client.removeEntityByUid(search.metadata.uid);
  out.removeEntityByUidAgain = 'no error';
} catch (error) {
  out.removeEntityByUidAgain = { name: error.name, status: error.response?.status };
}

out.methods = methods.length;
out.uncalled = methods.filter(n => !called.has(n));
process.stdout.write(JSON.stringify(out));
