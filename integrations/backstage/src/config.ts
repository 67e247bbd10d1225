/**
 * `catalog.providers.catalogd` in either of the forms Backstage's own
 * providers accept (`readProviderConfigs` in their modules): a single
 * provider object, which gets the id `default`, or a map of id → provider.
 * Every mistake throws at start-up with the full key it concerns, so a
 * wrong config stops Backstage with a message instead of failing later.
 */
import type { Config } from '@backstage/config';

export const CONFIG_ROOT = 'catalog.providers.catalogd';

/** The longest long-poll the daemon allows. */
export const MAX_WAIT_SECONDS = 30;

const KEYS = new Set(['baseUrl', 'token', 'waitSeconds']);

export type CatalogdProviderConfig = {
  id: string;
  baseUrl: string;
  token?: string;
  waitSeconds?: number;
};

/** A config mistake, naming the key. */
export class CatalogdConfigError extends Error {
  constructor(key: string, problem: string) {
    super(`Invalid config at '${key}': ${problem}`);
    this.name = 'CatalogdConfigError';
  }
}

/** The configured providers; none when the section is absent. */
export function readProviderConfigs(root: Config): CatalogdProviderConfig[] {
  const value = root.getOptional(CONFIG_ROOT);
  if (value === undefined) return [];
  if (!isObject(value)) {
    throw new CatalogdConfigError(CONFIG_ROOT, 'expected an object with baseUrl, or a map of provider ids to such objects');
  }
  const section = root.getConfig(CONFIG_ROOT);
  // The single form carries the provider's own keys.
  if (section.has('baseUrl')) return [readProviderConfig('default', section, CONFIG_ROOT)];
  const ids = section.keys();
  if (ids.length === 0) {
    throw new CatalogdConfigError(CONFIG_ROOT, 'no provider: give baseUrl, or one entry per daemon (<id>.baseUrl)');
  }
  return ids.map(id => {
    const key = `${CONFIG_ROOT}.${id}`;
    if (!isObject(section.getOptional(id))) {
      throw new CatalogdConfigError(
        key,
        `expected a provider object with baseUrl (or '${CONFIG_ROOT}.baseUrl' for a single provider)`,
      );
    }
    return readProviderConfig(id, section.getConfig(id), key);
  });
}

function readProviderConfig(id: string, config: Config, key: string): CatalogdProviderConfig {
  for (const name of config.keys()) {
    if (!KEYS.has(name)) {
      throw new CatalogdConfigError(`${key}.${name}`, `unknown key; expected one of ${[...KEYS].join(', ')}`);
    }
  }
  const baseUrl = config.getOptional('baseUrl');
  if (baseUrl === undefined) throw new CatalogdConfigError(`${key}.baseUrl`, 'missing; the daemon\'s URL, e.g. http://bitbucket-catalogd:7007');
  if (typeof baseUrl !== 'string' || !isHttpUrl(baseUrl)) {
    throw new CatalogdConfigError(`${key}.baseUrl`, `expected an http(s) URL, got ${JSON.stringify(baseUrl)}`);
  }
  const token = config.getOptional('token');
  if (token !== undefined && (typeof token !== 'string' || token === '')) {
    // Never echo the value: it is a secret.
    throw new CatalogdConfigError(`${key}.token`, 'expected a non-empty string');
  }
  const waitSeconds = config.getOptional('waitSeconds');
  if (
    waitSeconds !== undefined &&
    (typeof waitSeconds !== 'number' || !Number.isInteger(waitSeconds) || waitSeconds < 0 || waitSeconds > MAX_WAIT_SECONDS)
  ) {
    throw new CatalogdConfigError(
      `${key}.waitSeconds`,
      `expected a whole number of seconds from 0 to ${MAX_WAIT_SECONDS}, got ${JSON.stringify(waitSeconds)}`,
    );
  }
  return { id, baseUrl, token: token as string | undefined, waitSeconds: waitSeconds as number | undefined };
}

function isObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
