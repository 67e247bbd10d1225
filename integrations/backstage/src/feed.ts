/**
 * The daemon's change feed (`GET /api/catalog/changes`), as this module
 * reads it: pages of upserts and deletes in sequence order, a cursor to
 * continue from, `410 Gone` when the cursor can no longer be followed.
 */
import type { Entity } from '@backstage/catalog-model';

/** One change: an entity as it is now, or a ref that is gone. */
export type FeedItem =
  | { sequence: number; type: 'upsert'; entityRef: string; entity: Entity }
  | { sequence: number; type: 'delete'; entityRef: string };

export type FeedPage = { items: FeedItem[]; cursor: string; hasMore: boolean };

/** The cursor cannot be followed: start again from the full set. */
export class FeedGoneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FeedGoneError';
  }
}

export type FeedOptions = {
  baseUrl: string;
  token?: string;
  /** Items per page (the daemon allows up to 10,000). */
  limit?: number;
  fetch?: typeof fetch;
};

/**
 * One page after `cursor` (the full set when `undefined`); `waitSeconds`
 * long-polls until something changes.
 */
export async function readFeed(
  options: FeedOptions,
  cursor: string | undefined,
  waitSeconds: number,
  signal?: AbortSignal,
): Promise<FeedPage> {
  const url = new URL('/api/catalog/changes', options.baseUrl);
  if (cursor !== undefined) url.searchParams.set('after', cursor);
  url.searchParams.set('limit', String(options.limit ?? 1000));
  if (waitSeconds > 0) url.searchParams.set('wait', String(waitSeconds));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const response = await (options.fetch ?? fetch)(url, { headers, signal });
  if (response.status === 410) {
    const body = await response.json().catch(() => undefined);
    throw new FeedGoneError(body?.error?.message ?? `${url} answered 410`);
  }
  if (!response.ok) {
    const text = (await response.text().catch(() => '')).slice(0, 500);
    throw new Error(`${url} answered ${response.status}: ${text}`);
  }
  const page = (await response.json()) as FeedPage;
  if (!Array.isArray(page.items) || typeof page.cursor !== 'string') {
    throw new Error(`${url} did not answer with a change feed page`);
  }
  return page;
}
