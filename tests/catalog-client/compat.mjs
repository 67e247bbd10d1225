// Runs the real @backstage/catalog-client against a bitbucket-catalogd at
// argv[2] (e.g. http://127.0.0.1:12345) and prints what every method
// returned as one JSON document; tests/catalog_client.rs asserts on it.
import { CatalogClient } from '@backstage/catalog-client';

const base = process.argv[2];
const client = new CatalogClient({
  discoveryApi: { getBaseUrl: async () => `${base}/api/catalog` },
});

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
  await client.removeLocationById(added.location.id);
  out.afterRemove = (await client.getEntityByRef('component:default/imported')) === undefined;
}

process.stdout.write(JSON.stringify(out));
