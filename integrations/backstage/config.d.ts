/**
 * The module's config, read by Backstage (`configSchema` in package.json)
 * for `backstage-cli config:check`, the frontend/backend visibility rules
 * and the redaction of secrets in logs.
 */
export interface Config {
  catalog?: {
    providers?: {
      /**
       * bitbucket-catalogd daemons to follow: one provider (id `default`),
       * or a map of provider ids to providers.
       */
      catalogd?: CatalogdProvider | { [id: string]: CatalogdProvider };
    };
  };
}

/** One daemon. */
interface CatalogdProvider {
  /** The daemon's URL, e.g. http://bitbucket-catalogd:7007. */
  baseUrl: string;
  /**
   * Sent as `Authorization: Bearer` when the daemon's API requires a token.
   * @visibility secret
   */
  token?: string;
  /**
   * Seconds each long-poll of the change feed waits (0 to 30; default 25).
   * @minimum 0
   * @maximum 30
   */
  waitSeconds?: number;
}
