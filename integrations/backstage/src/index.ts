/**
 * A catalog module for Backstage's new backend system that ingests the
 * entities of one or more bitbucket-catalogd daemons through their change
 * feed. Configure it under `catalog.providers.catalogd`:
 *
 * ```yaml
 * catalog:
 *   providers:
 *     catalogd:
 *       main:
 *         baseUrl: http://bitbucket-catalogd:7007
 *         token: ${CATALOGD_TOKEN}   # optional
 * ```
 */
import {
  coreServices,
  createBackendModule,
} from '@backstage/backend-plugin-api';
import { catalogProcessingExtensionPoint } from '@backstage/plugin-catalog-node';
import { CatalogdEntityProvider } from './provider';

export { CatalogdEntityProvider } from './provider';
export { readFeed, FeedGoneError } from './feed';

export const catalogModuleCatalogd = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'catalogd',
  register(env) {
    env.registerInit({
      deps: {
        catalog: catalogProcessingExtensionPoint,
        config: coreServices.rootConfig,
        logger: coreServices.logger,
        lifecycle: coreServices.lifecycle,
      },
      async init({ catalog, config, logger, lifecycle }) {
        const section = config.getOptionalConfig('catalog.providers.catalogd');
        if (!section) {
          logger.warn('catalog.providers.catalogd is not configured; no daemon is followed');
          return;
        }
        for (const id of section.keys()) {
          const entry = section.getConfig(id);
          const provider = new CatalogdEntityProvider({
            id,
            baseUrl: entry.getString('baseUrl'),
            token: entry.getOptionalString('token'),
            waitSeconds: entry.getOptionalNumber('waitSeconds'),
            logger,
          });
          catalog.addEntityProvider(provider);
          lifecycle.addShutdownHook(() => provider.stop());
        }
      },
    });
  },
});

export default catalogModuleCatalogd;
