/**
 * An entity provider that mirrors one bitbucket-catalogd: a full mutation
 * from the feed's full set, then delta mutations as the feed long-polls,
 * and a full resynchronisation whenever the feed answers `410`. Backstage
 * makes no Bitbucket request for these entities: the daemon has already
 * read the files (and followed their Location targets), so Location
 * entities are not handed on for Backstage to read again.
 */
import type { Entity } from '@backstage/catalog-model';
import type {
  EntityProvider,
  EntityProviderConnection,
} from '@backstage/plugin-catalog-node';
import type { LoggerService } from '@backstage/backend-plugin-api';
import { FeedGoneError, FeedItem, FeedOptions, readFeed } from './feed';

export type CatalogdProviderOptions = FeedOptions & {
  /** `catalog.providers.catalogd.<id>`. */
  id: string;
  logger: LoggerService;
  /** Seconds each long-poll waits (the daemon allows up to 30). */
  waitSeconds?: number;
};

const MAX_BACKOFF_MS = 30_000;

/** What Backstage is given: the daemon's entity without what the catalog assigns itself. */
export function toDeferred(entity: Entity, locationKey: string) {
  const { uid: _uid, etag: _etag, ...metadata } = entity.metadata as Entity['metadata'] & {
    etag?: string;
  };
  const { relations: _relations, ...rest } = entity as Entity & { relations?: unknown };
  return { entity: { ...rest, metadata } as Entity, locationKey };
}

/** Location entities were already followed by the daemon. */
function handedOn(entity: Entity): boolean {
  return entity.kind.toLowerCase() !== 'location';
}

export class CatalogdEntityProvider implements EntityProvider {
  private connection?: EntityProviderConnection;
  private readonly abort = new AbortController();
  private running?: Promise<void>;

  constructor(private readonly options: CatalogdProviderOptions) {}

  getProviderName(): string {
    return `catalogd:${this.options.id}`;
  }

  /** One key for everything this daemon serves, so Backstage's conflict rules treat it as one source. */
  private get locationKey(): string {
    return `catalogd:${this.options.id}`;
  }

  async connect(connection: EntityProviderConnection): Promise<void> {
    this.connection = connection;
    this.running = this.follow();
  }

  /** Stops following (the backend is shutting down). */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }

  private async follow(): Promise<void> {
    const { logger } = this.options;
    let cursor: string | undefined;
    let backoff = 1000;
    while (!this.abort.signal.aborted) {
      try {
        cursor = cursor === undefined ? await this.fullSync() : await this.followFrom(cursor);
        backoff = 1000;
      } catch (error) {
        if (this.abort.signal.aborted) return;
        if (error instanceof FeedGoneError) {
          logger.info(`catalogd ${this.options.id}: ${error.message}; resynchronising`);
          cursor = undefined;
          continue;
        }
        logger.warn(
          `catalogd ${this.options.id}: reading ${this.options.baseUrl} failed (${error}); retrying in ${backoff / 1000}s`,
        );
        await sleep(backoff, this.abort.signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  /** The whole set as one full mutation; returns the cursor to follow from. */
  private async fullSync(): Promise<string> {
    const entities = new Map<string, Entity>();
    let cursor: string | undefined;
    for (;;) {
      const page = await readFeed(this.options, cursor, 0, this.abort.signal);
      for (const item of page.items) {
        if (item.type === 'upsert') entities.set(item.entityRef.toLowerCase(), item.entity);
        else entities.delete(item.entityRef.toLowerCase());
      }
      cursor = page.cursor;
      if (!page.hasMore) break;
    }
    await this.connection!.applyMutation({
      type: 'full',
      entities: [...entities.values()].filter(handedOn).map(e => toDeferred(e, this.locationKey)),
    });
    this.options.logger.info(
      `catalogd ${this.options.id}: synchronised ${entities.size} entities from ${this.options.baseUrl}`,
    );
    return cursor;
  }

  /** One long-poll's worth of changes as a delta mutation. */
  private async followFrom(cursor: string): Promise<string> {
    const page = await readFeed(this.options, cursor, this.options.waitSeconds ?? 25, this.abort.signal);
    if (page.items.length > 0) {
      await this.connection!.applyMutation(this.delta(page.items));
    }
    return page.cursor;
  }

  private delta(items: FeedItem[]) {
    const added = [];
    const removed = [];
    for (const item of items) {
      if (item.type === 'upsert' && handedOn(item.entity)) {
        added.push(toDeferred(item.entity, this.locationKey));
      } else if (item.type === 'delete') {
        removed.push({ entityRef: item.entityRef, locationKey: this.locationKey });
      }
    }
    return { type: 'delta' as const, added, removed };
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
