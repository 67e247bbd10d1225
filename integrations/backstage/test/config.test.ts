/**
 * `catalog.providers.catalogd` in both forms Backstage's providers accept,
 * mistakes named by key, and the declared schema (`configSchema`, what
 * `backstage-cli config:check` validates with) agreeing with the reader.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ConfigReader } from '@backstage/config';
import type { JsonValue } from '@backstage/types';
import { loadConfigSchema } from '@backstage/config-loader';
import { readProviderConfigs } from '../src/config';

const url = 'http://bitbucket-catalogd:7007';

function read(catalogd: JsonValue) {
  return readProviderConfigs(new ConfigReader({ catalog: { providers: { catalogd } } }));
}

test('a single provider gets the id default', () => {
  assert.deepEqual(read({ baseUrl: url, waitSeconds: 5 }), [
    { id: 'default', baseUrl: url, token: undefined, waitSeconds: 5 },
  ]);
});

test('a map of ids gives one provider each', () => {
  assert.deepEqual(
    read({ a: { baseUrl: url }, b: { baseUrl: 'https://other', token: 't' } }).map(p => [p.id, p.baseUrl, p.token]),
    [
      ['a', url, undefined],
      ['b', 'https://other', 't'],
    ],
  );
});

test('no section means no provider', () => {
  assert.deepEqual(readProviderConfigs(new ConfigReader({})), []);
});

const mistakes: Array<[string, JsonValue, RegExp]> = [
  ['a string instead of an object', 'http://x', /'catalog\.providers\.catalogd': expected an object/],
  ['an empty map', {}, /'catalog\.providers\.catalogd': no provider/],
  ['a map entry without baseUrl', { main: { token: 't' } }, /'catalog\.providers\.catalogd\.main\.baseUrl': missing/],
  ['a map entry that is a string', { main: url }, /'catalog\.providers\.catalogd\.main': expected a provider object/],
  ['a baseUrl that is no URL', { baseUrl: 'bitbucket-catalogd:7007x' }, /'catalog\.providers\.catalogd\.baseUrl': expected an http\(s\) URL/],
  ['a misspelt key', { baseUrl: url, waitSecond: 5 }, /'catalog\.providers\.catalogd\.waitSecond': unknown key/],
  ['a wait over 30 s', { main: { baseUrl: url, waitSeconds: 60 } }, /'catalog\.providers\.catalogd\.main\.waitSeconds': expected a whole number/],
];

for (const [what, catalogd, message] of mistakes) {
  test(`a mistake is named by its key: ${what}`, () => {
    assert.throws(() => read(catalogd), message);
  });
}

test('the declared schema accepts both forms and rejects the mistakes', async () => {
  const schema = await loadConfigSchema({
    dependencies: [],
    packagePaths: [join(__dirname, '..', '..', 'package.json')],
  });
  // What the schemas of the module's own dependencies require besides.
  const base = { app: { baseUrl: 'http://localhost:3000' }, backend: { baseUrl: 'http://localhost:7007', database: { client: 'pg', connection: 'postgres://localhost' } } };
  const check = (catalogd: JsonValue) =>
    schema.process([{ data: { ...base, catalog: { providers: { catalogd } } }, context: 'test' }]);
  check({ baseUrl: url, token: 't', waitSeconds: 25 });
  check({ main: { baseUrl: url }, other: { baseUrl: url, token: 't' } });
  for (const bad of [{ main: { token: 't' } }, { main: url }, { baseUrl: url, waitSeconds: 60 }]) {
    assert.throws(() => check(bad), /catalogd/, JSON.stringify(bad));
  }
  // The token is a secret in either form: Backstage redacts it from its logs.
  for (const catalogd of [{ baseUrl: url, token: 's3cret' }, { main: { baseUrl: url, token: 's3cret' } }]) {
    const [secrets] = schema.process([{ data: { ...base, catalog: { providers: { catalogd } } }, context: 'test' }], {
      visibility: ['secret'],
    });
    assert.match(JSON.stringify(secrets.data), /s3cret/);
    assert.doesNotMatch(JSON.stringify(secrets.data), /bitbucket-catalogd:7007/);
  }
});
